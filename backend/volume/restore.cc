#include "backend/volume/restore.h"

#include <atomic>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/parallel.h"
#include "backend/services/replica_owner.h"
#include "backend/volume/volume.h"

namespace cairn {
absl::StatusOr<RestoreReport> RestoreVolume(BackupStore& store, RemoteBlobStore& replica,
                                            const BackupManifest& manifest,
                                            const std::string& volume_dir,
                                            const RestoreOptions& options) {
  Env* const env = options.io.env;
  const std::string dir = AbsolutePath(volume_dir);
  const std::string marker = dir + "/" + kRestoreMarkerName;
  const std::string marker_text =
      absl::StrCat("volume ", manifest.volume_id, " backup ", manifest.backup_id, "\n");
  bool resuming = false;
  if (env->Exists(marker)) {
    absl::StatusOr<std::string> text = ReadFileToString(env, marker);
    if (!text.ok()) return text.status();
    if (*text != marker_text) {
      return FsError(FsErrorKind::kExists,
                     absl::StrCat(dir, " holds an interrupted restore of another backup (",
                                  absl::StripSuffix(*text, "\n"),
                                  "); restore that one again, or delete the directory and its "
                                  "disks and start over"));
    }
    resuming = true;
  } else if (absl::StatusOr<std::vector<std::string>> names = env->ListDir(dir);
             names.ok() && !names->empty()) {
    return FsError(FsErrorKind::kExists,
                   absl::StrCat(dir, IsVolumeDir(dir, env) ? " already holds a cairn volume"
                                                      : " is not empty",
                                "; restore into a new directory"));
  }
  if (!resuming) {
    if (absl::Status s = CreateDirs(env, dir); !s.ok()) return s;
    // First of all: a half-built volume is never mounted.
    if (absl::Status s = WriteFileSynced(env, marker, marker_text); !s.ok()) return s;
    if (absl::Status s = env->SyncDir(dir); !s.ok()) return s;
  }
  if (!IsVolumeDir(dir, env)) {
    FormatOptions format;
    format.disks = options.disks;
    format.redundancy = options.redundancy;
    format.volume_id = manifest.volume_id;
    format.restoring = true;
    // Never erases: a disk directory in use stops the restore (a crash
    // inside the format itself leaves its disks to empty by hand).
    absl::StatusOr<VolumeConfig> formatted = FormatVolume(dir, format, options.io);
    if (!formatted.ok()) return formatted.status();
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(dir, "", env);
  if (!config.ok()) return config.status();
  if (config->volume_id != manifest.volume_id) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat(dir, " was prepared for volume ",
                                                       config->volume_id, ", not ",
                                                       manifest.volume_id));
  }

  // The namespace: downloaded beside, checked, then put in place.
  const std::string ns_dir = dir + "/namespace";
  const std::string download = dir + "/namespace.restore";
  if (!env->Exists(dir + "/namespace.restored")) {
    if (absl::Status s = RemoveAll(env, download); !s.ok()) return s;
    if (absl::Status s = CreateDirs(env, download); !s.ok()) return s;
    if (absl::Status s = store.FetchCheckpoint(manifest, download); !s.ok()) return s;
    if (absl::Status s = RemoveAll(env, ns_dir); !s.ok()) return s;
    if (absl::Status s = env->Rename(download, ns_dir); !s.ok()) {
      return FsError(FsErrorKind::kIo,
                     absl::StrCat("cannot move the namespace into place: ", s.message()));
    }
    if (absl::Status s = WriteFileSynced(env, dir + "/namespace.restored", ""); !s.ok()) return s;
    if (absl::Status s = env->SyncDir(dir); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<NeededBlob>> needed = store.ReadBlobList(manifest);
  if (!needed.ok()) return needed.status();

  VolumeConfig local = *config;
  local.tier.reset();
  local.replica.reset();
  absl::StatusOr<std::unique_ptr<Volume>> volume =
      Volume::Open(dir, local, options.io, {.restoring = true});
  if (!volume.ok()) return volume.status();
  NamespaceStore& ns = (*volume)->ns();
  BlobStore& blobs = (*volume)->local_blobs();

  RestoreReport report;
  report.backup_id = manifest.backup_id;
  absl::flat_hash_map<BlobId, NeededBlob> by_id;
  std::vector<BlobId> ids;
  for (const NeededBlob& blob : *needed) {
    by_id[blob.id] = blob;
    ids.push_back(blob.id);
  }
  std::atomic<uint64_t> done{0}, bytes{0}, fetched_bytes{0}, kept{0};
  absl::Status fetched = RunInParallel(
      ids.size(), options.parallel,
      [&](size_t i) -> absl::Status {
        const BlobId id = ids[i];
        const NeededBlob& blob = by_id.at(id);
        if (resuming) {
          absl::StatusOr<std::string> there = blobs.Read(id, 0, blob.length);
          if (there.ok() && Crc32c(*there) == blob.crc32c) {
            kept++;
            bytes += blob.length;
            return absl::OkStatus();
          }
        }
        absl::StatusOr<std::string> data =
            replica.ReadExpecting(id, 0, blob.length, blob.length, blob.crc32c);
        if (!data.ok() && IsNotFoundError(data.status())) {
          return FsError(FsErrorKind::kNotFound,
                         absl::StrCat("blob ", id, " is missing from the replica: backup ",
                                      manifest.backup_id, " cannot be restored whole (cairn "
                                      "restore --verify lists what is missing); choose another "
                                      "with --backup"));
        }
        if (!data.ok()) {
          return FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, " from the replica: ",
                                                        data.status().message()));
        }
        if (Crc32c(*data) != blob.crc32c) {
          return FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, " in the replica does not "
                                                        "match its checksum"));
        }
        if (absl::StatusOr<BlobInfo> put = blobs.Put(id, *data); !put.ok()) {
          return put.status();
        }
        bytes += blob.length;
        fetched_bytes += blob.length;
        return absl::OkStatus();
      },
      [&](size_t) {
        uint64_t n = ++done;
        if (options.progress) options.progress(n, ids.size(), bytes, manifest.blob_bytes);
      });
  if (!fetched.ok() && IsNotFoundError(fetched)) return fetched;
  if (!fetched.ok()) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat(fetched.message(), "; run the same cairn restore again to go on "
                                "(blobs already stored are kept)"));
  }
  report.already_there = kept;
  report.blobs = ids.size() - kept;
  report.bytes = fetched_bytes;

  // The namespace now describes this machine: every blob is local, nothing
  // waits for the old replica or repair queue, and new blob ids start past
  // any the lost volume may have used after the backup.
  std::vector<BlobId> garbage;
  absl::Status relocated = ForEachBlobRecord(ns, [&](BlobId id, const BlobRecord& record) {
    if (!by_id.contains(id)) {
      garbage.push_back(id);
      return absl::OkStatus();
    }
    if (record.location == BlobLocation::kLocal) return absl::OkStatus();
    return ns.SetBlobLocation(id, BlobLocation::kLocal);
  });
  if (!relocated.ok()) return relocated;
  if (absl::Status s = ns.ForgetBlobs(garbage); !s.ok()) return s;
  absl::Status cleared = ForEachQueuedReplication(
      ns, [&](const QueuedReplication& q) { return ns.ClearReplication(q.id); });
  if (!cleared.ok()) return cleared;
  for (;;) {
    absl::StatusOr<std::vector<BlobId>> repairs = ns.PendingRepairs(0, 4096);
    if (!repairs.ok()) return repairs.status();
    if (repairs->empty()) break;
    for (BlobId id : *repairs) {
      if (absl::Status s = ns.ClearRepair(id); !s.ok()) return s;
    }
  }
  absl::StatusOr<std::vector<BlobId>> in_replica = replica.ListIds(0);
  if (!in_replica.ok()) return in_replica.status();
  if (!in_replica->empty()) {
    if (absl::Status s = ns.SkipBlobIdsBelow(in_replica->back() + 1); !s.ok()) return s;
  }
  // Another copy of the volume: its own owner token. Taking over, it
  // claims the replica, and the old copy, should it come back, stops
  // writing there.
  const std::string token = NewReplicaOwnerToken();
  if (absl::Status s = ns.SetVolumeMeta(kReplicaOwnerKey, token); !s.ok()) return s;
  if (options.take_over) {
    if (absl::Status s = ns.RecordReplicaTarget(ReplicaTargetName(*options.take_over)); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = ns.Sync(); !s.ok()) return s;
  absl::StatusOr<NamespaceStats> stats = ns.Stats();
  if (stats.ok()) report.inodes = stats->inode_count;
  volume->reset();
  if (options.take_over) {
    ReplicaOwner owner(store.client(),
                       absl::StrCat(options.take_over->prefix, manifest.volume_id, "/"), token,
                       options.io.clock);
    if (absl::Status s = owner.Claim(); !s.ok()) return s;
  }

  VolumeConfig final_config = *config;
  final_config.replica = options.take_over;
  if (absl::Status s = SaveVolumeConfig(dir, final_config, env); !s.ok()) return s;
  if (absl::Status s = env->Remove(dir + "/namespace.restored"); !s.ok()) return s;
  // The last step: the volume may be mounted from here on.
  if (absl::Status s = env->Remove(marker); !s.ok()) return s;
  if (absl::Status s = env->SyncDir(dir); !s.ok()) return s;
  return report;
}

}  // namespace cairn

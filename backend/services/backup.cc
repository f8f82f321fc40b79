#include "backend/services/backup.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"

namespace cairn {

namespace {

constexpr char kManifestMagic[] = "cairn-backup 1";
constexpr size_t kBlobEntryBytes = 16;  // see EncodeBlobList

bool IsHex(std::string_view text, size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(c) != 0; });
}

// Blob list entries: id (fixed64), length (fixed32: blobs are far below
// 4 GiB), CRC32C (fixed32).
std::string EncodeBlobList(const std::vector<NeededBlob>& blobs) {
  std::string out;
  out.reserve(blobs.size() * kBlobEntryBytes);
  for (const NeededBlob& blob : blobs) {
    PutFixed64(&out, blob.id);
    PutFixed32(&out, static_cast<uint32_t>(blob.length));
    PutFixed32(&out, blob.crc32c);
  }
  return out;
}

absl::Status DataLoss(std::string_view what) {
  return FsError(FsErrorKind::kIo, what);
}



// The time to the microsecond: ids sort oldest first even for backups
// taken within one second (they are serialised, so never in the same
// microsecond); the suffix keeps ids of volumes sharing a prefix apart.
std::string NewBackupId(absl::Time now) {
  std::random_device random;
  int64_t micros = absl::ToUnixMicros(now) % 1000000;
  return absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%S", now, absl::UTCTimeZone()),
                      absl::StrFormat(".%06dZ-%04x", micros, random() & 0xffff));
}

}  // namespace

uint64_t BackupManifest::StoredBytes() const {
  uint64_t total = blob_list_size;
  for (const BackupFile& file : files) total += file.size;
  return total;
}

std::string BackupManifest::Encode() const {
  std::string out = absl::StrCat(kManifestMagic, "\n");
  absl::StrAppend(&out, "backup_id ", backup_id, "\n", "volume_id ", volume_id, "\n",
                  "created ", created_sec, "\n", "inodes ", inodes, "\n", "data_bytes ",
                  data_bytes, "\n", "blobs ", blob_count, " ", blob_bytes, "\n", "blob_list ",
                  blob_list_size, " ", blob_list_crc32c, "\n");
  for (const BackupFile& file : files) {
    absl::StrAppend(&out, "file ", file.name, " ", file.size, " ", file.crc32c, "\n");
  }
  absl::StrAppend(&out, "end\n");
  return out;
}

absl::StatusOr<BackupManifest> BackupManifest::Parse(std::string_view text) {
  std::vector<std::string> lines =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '\n', absl::SkipEmpty());
  if (lines.empty() || lines.front() != kManifestMagic) {
    return DataLoss("not a cairn backup manifest (or one of a newer cairn)");
  }
  if (lines.back() != "end") return DataLoss("backup manifest is truncated");
  BackupManifest manifest;
  bool ok = true;
  for (size_t i = 1; i + 1 < lines.size() && ok; ++i) {
    std::vector<std::string> words = absl::StrSplit(lines[i], ' ');
    const std::string& key = words[0];
    if (key == "backup_id" && words.size() == 2) {
      manifest.backup_id = words[1];
    } else if (key == "volume_id" && words.size() == 2) {
      manifest.volume_id = words[1];
    } else if (key == "created" && words.size() == 2) {
      ok = absl::SimpleAtoi(words[1], &manifest.created_sec);
    } else if (key == "inodes" && words.size() == 2) {
      ok = absl::SimpleAtoi(words[1], &manifest.inodes);
    } else if (key == "data_bytes" && words.size() == 2) {
      ok = absl::SimpleAtoi(words[1], &manifest.data_bytes);
    } else if (key == "blobs" && words.size() == 3) {
      ok = absl::SimpleAtoi(words[1], &manifest.blob_count) &&
           absl::SimpleAtoi(words[2], &manifest.blob_bytes);
    } else if (key == "blob_list" && words.size() == 3) {
      ok = absl::SimpleAtoi(words[1], &manifest.blob_list_size) &&
           absl::SimpleAtoi(words[2], &manifest.blob_list_crc32c);
    } else if (key == "file" && words.size() == 4) {
      BackupFile file;
      file.name = words[1];
      ok = !file.name.empty() && file.name.find('/') == std::string::npos &&
           file.name[0] != '.' && absl::SimpleAtoi(words[2], &file.size) &&
           absl::SimpleAtoi(words[3], &file.crc32c);
      manifest.files.push_back(std::move(file));
    } else {
      ok = false;
    }
  }
  if (!ok || manifest.backup_id.empty() || !IsHex(manifest.volume_id, 32) ||
      manifest.files.empty()) {
    return DataLoss("backup manifest is damaged");
  }
  return manifest;
}

BackupStore::BackupStore(s3::ObjectStore& client, std::string prefix, std::string volume_id,
                         Env* env)
    : client_(client),
      env_(env),
      volume_id_(std::move(volume_id)),
      root_(absl::StrCat(prefix, volume_id_, "/backups/")) {}

std::string BackupStore::ObjectKey(const std::string& id, const std::string& name) const {
  return absl::StrCat(root_, id, "/", name);
}

absl::StatusOr<std::vector<BackupListing>> BackupStore::List() {
  absl::StatusOr<std::vector<s3::ObjectEntry>> objects = client_.ListObjects(root_);
  if (!objects.ok()) return objects.status();
  std::map<std::string, bool> backups;  // id -> has its manifest
  for (const s3::ObjectEntry& object : *objects) {
    std::string_view rest = std::string_view(object.key).substr(root_.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) continue;
    std::string id(rest.substr(0, slash));
    bool& complete = backups[id];
    if (rest.substr(slash + 1) == "manifest") complete = true;
  }
  std::vector<BackupListing> out;
  for (const auto& [id, complete] : backups) out.push_back(BackupListing{id, complete});
  return out;
}

absl::StatusOr<BackupManifest> BackupStore::ReadManifest(const std::string& id) {
  absl::StatusOr<std::string> text = client_.GetObject(ObjectKey(id, "manifest"));
  if (!text.ok()) return text.status();
  absl::StatusOr<BackupManifest> manifest = BackupManifest::Parse(*text);
  if (!manifest.ok()) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("backup ", id, ": ", manifest.status().message()));
  }
  if (manifest->backup_id != id || manifest->volume_id != volume_id_) {
    return FsError(FsErrorKind::kIo, absl::StrCat("backup ", id, ": its manifest names another "
                                                  "backup or volume"));
  }
  return manifest;
}

absl::StatusOr<BackupManifest> BackupStore::Choose(const std::string& id) {
  absl::StatusOr<std::vector<BackupListing>> listed = List();
  if (!listed.ok()) return listed.status();
  std::vector<std::string> complete;
  bool incomplete = false;
  for (const BackupListing& backup : *listed) {
    if (backup.complete) complete.push_back(backup.id);
    if (backup.id == id && !backup.complete) incomplete = true;
  }
  if (id.empty()) {
    if (complete.empty()) {
      return FsError(FsErrorKind::kNotFound,
                     absl::StrCat("the replica holds no complete backup of volume ", volume_id_,
                                  listed->empty() ? "" : " (only interrupted ones)",
                                  "; take one with cairn backup VOLUME_DIR"));
    }
    return ReadManifest(complete.back());
  }
  if (std::find(complete.begin(), complete.end(), id) == complete.end()) {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat("backup ", id,
                                incomplete ? " was interrupted and is not usable"
                                           : " does not exist",
                                "; complete backups: ",
                                complete.empty() ? "none" : absl::StrJoin(complete, ", ")));
  }
  return ReadManifest(id);
}

absl::StatusOr<std::vector<NeededBlob>> BackupStore::ReadBlobList(
    const BackupManifest& manifest) {
  absl::StatusOr<std::string> data = client_.GetObject(ObjectKey(manifest.backup_id, "blobs"));
  if (!data.ok()) return data.status();
  if (data->size() != manifest.blob_list_size || Crc32c(*data) != manifest.blob_list_crc32c ||
      data->size() != manifest.blob_count * kBlobEntryBytes) {
    return FsError(FsErrorKind::kIo, absl::StrCat("backup ", manifest.backup_id,
                                                  ": its blob list is damaged"));
  }
  std::vector<NeededBlob> blobs(manifest.blob_count);
  for (size_t i = 0; i < blobs.size(); ++i) {
    const char* entry = data->data() + i * kBlobEntryBytes;
    blobs[i].id = DecodeFixed64(entry);
    blobs[i].length = DecodeFixed32(entry + 8);
    blobs[i].crc32c = DecodeFixed32(entry + 12);
  }
  return blobs;
}

absl::Status BackupStore::Delete(const std::string& id) {
  if (absl::Status s = client_.DeleteObject(ObjectKey(id, "manifest")); !s.ok()) return s;
  absl::StatusOr<std::vector<s3::ObjectEntry>> objects =
      client_.ListObjects(absl::StrCat(root_, id, "/"));
  if (!objects.ok()) return objects.status();
  std::vector<std::string> keys;
  for (const s3::ObjectEntry& object : *objects) keys.push_back(object.key);
  if (keys.empty()) return absl::OkStatus();
  return client_.DeleteObjects(keys);
}

absl::StatusOr<BackupManifest> TakeBackup(NamespaceStore& ns, BackupStore& store,
                                          RemoteBlobStore& replica,
                                          const BackupOptions& options) {
  absl::MutexLock lock(&store.mutex());
  if (absl::Status s = store.CheckOwner(); !s.ok()) return s;
  Env* const env = options.env;
  const absl::Time now = options.clock->Now();
  BackupManifest manifest;
  manifest.backup_id = NewBackupId(now);
  manifest.volume_id = store.volume_id();
  manifest.created_sec = absl::ToUnixSeconds(now);

  // Leftovers of a backup a crash interrupted go first.
  if (absl::Status s = RemoveAll(env, options.work_dir); !s.ok()) return s;
  if (absl::Status s = CreateDirs(env, options.work_dir); !s.ok()) return s;
  const std::string checkpoint = absl::StrCat(options.work_dir, "/", manifest.backup_id);
  struct RemoveAfter {
    Env* env;
    std::string dir;
    ~RemoveAfter() {
      // Only space is at stake: the next backup removes what is left.
      RemoveAll(env, dir).IgnoreError();
    }
  } remove_after{env, checkpoint};
  if (absl::Status s = ns.CreateCheckpoint(checkpoint); !s.ok()) return s;

  // The files as the checkpoint wrote them (before opening it adds any).
  absl::StatusOr<std::vector<std::string>> names = env->ListDir(checkpoint);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    absl::StatusOr<FileInfo> info = env->Stat(checkpoint + "/" + name);
    if (!info.ok()) return info.status();
    if (info->is_regular) manifest.files.push_back({name, 0, 0});
  }
  std::sort(manifest.files.begin(), manifest.files.end(),
            [](const BackupFile& a, const BackupFile& b) { return a.name < b.name; });

  // What the checkpoint needs: every referenced blob, and which of them
  // were still on their way to the replica.
  std::vector<NeededBlob> needed;
  std::vector<BlobId> were_queued;
  {
    NamespaceOptions read_only;
    read_only.read_only = true;
    read_only.env = env;
    read_only.clock = options.clock;
    absl::StatusOr<std::unique_ptr<NamespaceStore>> copy = NamespaceStore::Open(checkpoint, read_only);
    if (!copy.ok()) return copy.status();
    absl::Status listed = ForEachBlobRecord(**copy, [&](BlobId id, const BlobRecord& record) {
      if (record.refcount == 0) return absl::OkStatus();  // garbage: a restore drops it
      needed.push_back(NeededBlob{id, record.length, record.crc32c});
      manifest.blob_bytes += record.length;
      return absl::OkStatus();
    });
    if (!listed.ok()) return listed;
    absl::Status queued = ForEachQueuedReplication(**copy, [&](const QueuedReplication& q) {
      were_queued.push_back(q.id);
      return absl::OkStatus();
    });
    if (!queued.ok()) return queued;
    absl::StatusOr<NamespaceStats> stats = (*copy)->Stats();
    if (!stats.ok()) return stats.status();
    manifest.inodes = stats->inode_count;
    manifest.data_bytes = stats->data_bytes;
  }
  manifest.blob_count = needed.size();

  // The blob list, then the checkpoint's files, each with its CRC32C for
  // the server to check.
  std::string blob_list = EncodeBlobList(needed);
  manifest.blob_list_size = blob_list.size();
  manifest.blob_list_crc32c = Crc32c(blob_list);
  if (absl::Status s = store.client().PutObject(store.ObjectKey(manifest.backup_id, "blobs"),
                                                blob_list, manifest.blob_list_crc32c);
      !s.ok()) {
    return s;
  }
  blob_list.clear();
  blob_list.shrink_to_fit();
  for (BackupFile& file : manifest.files) {
    if (options.should_stop && options.should_stop()) {
      return FsError(FsErrorKind::kBusy, "the backup was stopped (the daemon is shutting down)");
    }
    absl::StatusOr<std::string> data = ReadFileToString(env, checkpoint + "/" + file.name);
    if (!data.ok()) return data.status();
    file.size = data->size();
    file.crc32c = Crc32c(*data);
    if (absl::Status s = store.client().PutObject(
            store.ObjectKey(manifest.backup_id, "db/" + file.name), *data, file.crc32c);
        !s.ok()) {
      return s;
    }
  }

  // Blobs queued at the checkpoint: the replicator copies them (the volume
  // keeps each until it is copied).
  const absl::Time give_up = options.clock->Now() + absl::Seconds(options.replication_wait_seconds);
  for (BlobId id : were_queued) {
    for (;;) {
      absl::StatusOr<std::vector<QueuedReplication>> still = ns.PendingReplications(id, 1);
      if (!still.ok()) return still.status();
      if (still->empty() || still->front().id != id) break;
      if (options.should_stop && options.should_stop()) {
        return FsError(FsErrorKind::kBusy, "the backup was stopped (the daemon is shutting down)");
      }
      if (options.clock->Now() > give_up) {
        return FsError(FsErrorKind::kBusy,
                       absl::StrCat("blob ", id, " the backup needs has not reached the replica "
                                    "within ", options.replication_wait_seconds,
                                    " s (is the replica reachable? see cairn status); the "
                                    "backup is not usable and will be taken again"));
      }
      options.clock->SleepFor(absl::Milliseconds(200));
    }
  }
  // Belt and braces: the manifest names only blobs the replica lists.
  absl::StatusOr<std::vector<BlobId>> present = replica.ListIds(0);
  if (!present.ok()) return present.status();
  uint64_t missing = 0;
  BlobId first_missing = kNoBlob;
  for (const NeededBlob& blob : needed) {
    if (!std::binary_search(present->begin(), present->end(), blob.id)) {
      if (missing++ == 0) first_missing = blob.id;
    }
  }
  if (missing > 0) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat(missing, " blobs the backup needs are not in the replica (blob ",
                                first_missing, " first); the backup is not usable. cairn fsck "
                                "on the unmounted volume checks the queue"));
  }

  if (absl::Status s = store.CheckOwner(); !s.ok()) return s;
  // The commit point: from here the backup is listed as usable.
  const std::string manifest_text = manifest.Encode();
  if (absl::Status s = store.client().PutObject(store.ObjectKey(manifest.backup_id, "manifest"),
                                                manifest_text, Crc32c(manifest_text));
      !s.ok()) {
    return s;
  }
  ns.SetVolumeMeta(kLastBackupKey, absl::StrCat(manifest.backup_id, " ", manifest.created_sec))
      .IgnoreError();
  return manifest;
}

absl::Status BackupStore::FetchCheckpoint(const BackupManifest& manifest, const std::string& dir) {
  const bool write = !dir.empty();
  for (const BackupFile& file : manifest.files) {
    absl::StatusOr<std::string> data =
        client_.GetObject(ObjectKey(manifest.backup_id, "db/" + file.name));
    if (!data.ok()) {
      return FsError(FsErrorKind::kIo, absl::StrCat("backup ", manifest.backup_id, ": file ",
                                                    file.name, ": ", data.status().message()));
    }
    if (data->size() != file.size || Crc32c(*data) != file.crc32c) {
      return FsError(FsErrorKind::kIo, absl::StrCat("backup ", manifest.backup_id, ": file ",
                                                    file.name, " is damaged in the replica"));
    }
    if (write) {
      if (absl::Status s = WriteFileSynced(env_, dir + "/" + file.name, *data); !s.ok()) return s;
    }
  }
  if (write) return env_->SyncDir(dir);
  return absl::OkStatus();
}

absl::StatusOr<ReplicaVolume> FindReplicaVolume(s3::ObjectStore& client, const std::string& prefix) {
  std::string base = prefix;
  while (!base.empty() && base.back() == '/') base.pop_back();
  // s3://B/P/<volume id>: the volume itself.
  size_t slash = base.rfind('/');
  std::string last = slash == std::string::npos ? base : base.substr(slash + 1);
  if (IsHex(last, 32)) {
    return ReplicaVolume{slash == std::string::npos ? "" : base.substr(0, slash + 1), last};
  }
  std::string parent = base.empty() ? "" : base + "/";
  absl::StatusOr<std::vector<std::string>> children = client.ListPrefixes(parent);
  if (!children.ok()) return children.status();
  std::set<std::string> found;
  for (const std::string& child : *children) {
    std::string_view name = std::string_view(child).substr(parent.size());
    if (!name.empty() && name.back() == '/') name.remove_suffix(1);
    if (IsHex(name, 32)) found.emplace(name);
  }
  if (found.empty()) {
    // Some servers (s3rver) answer a delimited listing with nothing: the
    // whole listing then, which only such small test servers pay for.
    absl::StatusOr<std::vector<s3::ObjectEntry>> objects = client.ListObjects(parent);
    if (!objects.ok()) return objects.status();
    for (const s3::ObjectEntry& object : *objects) {
      std::string_view rest = std::string_view(object.key).substr(parent.size());
      std::string_view name = rest.substr(0, rest.find('/'));
      if (IsHex(name, 32) && name.size() < rest.size()) found.emplace(name);
    }
  }
  std::vector<std::string> volumes(found.begin(), found.end());
  if (volumes.empty()) {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat("no cairn volume under prefix '", parent,
                                "' of the bucket; give the bucket and prefix of the volume's "
                                "[replica] section (s3://BUCKET/PREFIX)"));
  }
  if (volumes.size() > 1) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("prefix '", parent, "' holds ", volumes.size(),
                                " volumes (", absl::StrJoin(volumes, ", "),
                                "); name one: s3://BUCKET/", parent, "VOLUME_ID"));
  }
  return ReplicaVolume{parent, volumes.front()};
}

}  // namespace cairn

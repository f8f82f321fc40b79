#include "backend/namespace_backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/base/json.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"

namespace cairn {
namespace fsys = std::filesystem;

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

absl::StatusOr<std::string> ReadLocalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FsError(FsErrorKind::kIo, absl::StrCat("cannot read ", path));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return FsError(FsErrorKind::kIo, absl::StrCat("cannot read ", path));
  return data;
}

absl::Status WriteLocalFileDurably(const std::string& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return FsError(FsErrorKind::kIo, absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return FsError(err == ENOSPC ? FsErrorKind::kNoSpace : FsErrorKind::kIo,
                     absl::StrCat("cannot write ", path, ": ", strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  int synced = fsync(fd);
  close(fd);
  if (synced != 0) return FsError(FsErrorKind::kIo, absl::StrCat("cannot sync ", path));
  return absl::OkStatus();
}

void SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

// The time to the microsecond: ids sort oldest first even for backups
// taken within one second (they are serialised, so never in the same
// microsecond); the suffix keeps ids of volumes sharing a prefix apart.
std::string NewBackupId() {
  std::random_device random;
  absl::Time now = absl::Now();
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

BackupStore::BackupStore(s3::S3Client& client, std::string prefix, std::string volume_id)
    : client_(client),
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
  const int64_t now = options.now_sec ? options.now_sec() : absl::ToUnixSeconds(absl::Now());
  BackupManifest manifest;
  manifest.backup_id = NewBackupId();
  manifest.volume_id = store.volume_id();
  manifest.created_sec = now;

  // Leftovers of a backup a crash interrupted go first.
  std::error_code ec;
  fsys::create_directories(options.work_dir, ec);
  for (const auto& entry : fsys::directory_iterator(options.work_dir, ec)) {
    fsys::remove_all(entry.path(), ec);
  }
  const std::string checkpoint = absl::StrCat(options.work_dir, "/", manifest.backup_id);
  struct RemoveAfter {
    std::string dir;
    ~RemoveAfter() {
      std::error_code ignored;
      fsys::remove_all(dir, ignored);
    }
  } remove_after{checkpoint};
  if (absl::Status s = ns.CreateCheckpoint(checkpoint); !s.ok()) return s;

  // The files as the checkpoint wrote them (before opening it adds any).
  for (const auto& entry : fsys::directory_iterator(checkpoint, ec)) {
    if (entry.is_regular_file(ec)) manifest.files.push_back({entry.path().filename(), 0, 0});
  }
  if (ec) return FsError(FsErrorKind::kIo, absl::StrCat("cannot list ", checkpoint, ": ", ec.message()));
  std::sort(manifest.files.begin(), manifest.files.end(),
            [](const BackupFile& a, const BackupFile& b) { return a.name < b.name; });

  // What the checkpoint needs: every referenced blob, and which of them
  // were still on their way to the replica.
  std::vector<NeededBlob> needed;
  std::vector<BlobId> were_queued;
  {
    NamespaceOptions read_only;
    read_only.read_only = true;
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
    absl::StatusOr<std::string> data = ReadLocalFile(checkpoint + "/" + file.name);
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
  const absl::Time give_up = absl::Now() + absl::Seconds(options.replication_wait_seconds);
  for (BlobId id : were_queued) {
    for (;;) {
      absl::StatusOr<std::vector<QueuedReplication>> still = ns.PendingReplications(id, 1);
      if (!still.ok()) return still.status();
      if (still->empty() || still->front().id != id) break;
      if (options.should_stop && options.should_stop()) {
        return FsError(FsErrorKind::kBusy, "the backup was stopped (the daemon is shutting down)");
      }
      if (absl::Now() > give_up) {
        return FsError(FsErrorKind::kBusy,
                       absl::StrCat("blob ", id, " the backup needs has not reached the replica "
                                    "within ", options.replication_wait_seconds,
                                    " s (is the replica reachable? see cairn status); the "
                                    "backup is not usable and will be taken again"));
      }
      absl::SleepFor(absl::Milliseconds(200));
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

absl::StatusOr<ReplicaGcReport> CollectReplicaGarbage(NamespaceStore& ns, BackupStore& store,
                                                      RemoteBlobStore& replica, int keep) {
  absl::MutexLock lock(&store.mutex());
  if (absl::Status s = store.CheckOwner(); !s.ok()) return s;
  ReplicaGcReport report;
  absl::StatusOr<std::vector<BackupListing>> listed = store.List();
  if (!listed.ok()) return listed.status();
  // Nothing is being taken (we hold the lock): an incomplete backup is an
  // interrupted one, and never completes.
  std::vector<std::string> complete;
  for (const BackupListing& backup : *listed) {
    if (backup.complete) {
      complete.push_back(backup.id);
    } else {
      if (absl::Status s = store.Delete(backup.id); !s.ok()) return s;
      report.backups_deleted++;
    }
  }
  const size_t keep_count = static_cast<size_t>(std::max(keep, 1));
  while (complete.size() > keep_count) {
    if (absl::Status s = store.Delete(complete.front()); !s.ok()) return s;
    complete.erase(complete.begin());
    report.backups_deleted++;
  }
  report.backups_kept = complete.size();

  // The objects first: any blob uploaded after this listing is not
  // considered, and any listed one was committed before it (the replicator
  // copies only committed blobs), so the records read next show it unless
  // it was freed since.
  absl::StatusOr<std::vector<BlobId>> objects = replica.ListIds(0);
  if (!objects.ok()) return objects.status();
  report.objects_listed = objects->size();
  // A sorted vector, not a set: a million ids cost 8 MB, not 40.
  std::vector<BlobId> needed;
  for (const std::string& id : complete) {
    absl::StatusOr<BackupManifest> manifest = store.ReadManifest(id);
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<std::vector<NeededBlob>> blobs = store.ReadBlobList(*manifest);
    if (!blobs.ok()) return blobs.status();
    for (const NeededBlob& blob : *blobs) needed.push_back(blob.id);
  }
  absl::Status recorded = ForEachBlobRecord(ns, [&](BlobId id, const BlobRecord&) {
    needed.push_back(id);
    return absl::OkStatus();
  });
  if (!recorded.ok()) return recorded;
  absl::Status queued = ForEachQueuedReplication(ns, [&](const QueuedReplication& q) {
    needed.push_back(q.id);
    return absl::OkStatus();
  });
  if (!queued.ok()) return queued;
  std::sort(needed.begin(), needed.end());
  std::vector<std::string> keys;
  for (BlobId id : *objects) {
    if (!std::binary_search(needed.begin(), needed.end(), id)) keys.push_back(replica.KeyOf(id));
  }
  for (size_t i = 0; i < keys.size(); i += 1000) {
    std::vector<std::string> batch(keys.begin() + i,
                                   keys.begin() + std::min(keys.size(), i + 1000));
    if (absl::Status s = store.client().DeleteObjects(batch); !s.ok()) return s;
    report.objects_deleted += batch.size();
  }
  return report;
}

absl::StatusOr<ReplicaVolume> FindReplicaVolume(s3::S3Client& client, const std::string& prefix) {
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

namespace {

// Downloads and checks every file of the backup's checkpoint into `dir`.
absl::Status FetchCheckpoint(BackupStore& store, const BackupManifest& manifest,
                             const std::string& dir, bool write) {
  for (const BackupFile& file : manifest.files) {
    absl::StatusOr<std::string> data =
        store.client().GetObject(store.ObjectKey(manifest.backup_id, "db/" + file.name));
    if (!data.ok()) {
      return FsError(FsErrorKind::kIo, absl::StrCat("backup ", manifest.backup_id, ": file ",
                                                    file.name, ": ", data.status().message()));
    }
    if (data->size() != file.size || Crc32c(*data) != file.crc32c) {
      return FsError(FsErrorKind::kIo, absl::StrCat("backup ", manifest.backup_id, ": file ",
                                                    file.name, " is damaged in the replica"));
    }
    if (write) {
      if (absl::Status s = WriteLocalFileDurably(dir + "/" + file.name, *data); !s.ok()) return s;
    }
  }
  if (write) SyncDirectory(dir);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifyReport> VerifyBackup(BackupStore& store, RemoteBlobStore& replica,
                                          const BackupManifest& manifest, int parallel,
                                          const RestoreProgress& progress) {
  VerifyReport report;
  report.backup_id = manifest.backup_id;
  if (absl::Status s = FetchCheckpoint(store, manifest, "", false); !s.ok()) {
    report.problems.push_back(std::string(s.message()));
  }
  absl::StatusOr<std::vector<NeededBlob>> blobs = store.ReadBlobList(manifest);
  if (!blobs.ok()) {
    report.problems.push_back(std::string(blobs.status().message()));
    return report;
  }
  absl::StatusOr<std::vector<BlobId>> present = replica.ListIds(0);
  if (!present.ok()) return present.status();
  absl::Mutex mu;
  std::atomic<uint64_t> done{0}, bytes{0};
  std::vector<BlobId> ids;
  absl::flat_hash_map<BlobId, NeededBlob> by_id;
  for (const NeededBlob& blob : *blobs) {
    if (!std::binary_search(present->begin(), present->end(), blob.id)) {
      report.missing++;
      if (report.problems.size() < 100) {
        report.problems.push_back(absl::StrCat("blob ", blob.id, ": missing from the replica"));
      }
      continue;
    }
    ids.push_back(blob.id);
    by_id[blob.id] = blob;
  }
  // A damaged blob is counted, not fatal: the walk goes on.
  absl::Status walked = RunInParallel(
      ids.size(), parallel,
      [&](size_t i) {
        const BlobId id = ids[i];
        const NeededBlob& blob = by_id.at(id);
        absl::Status s = replica.Verify(id, blob.length, blob.crc32c);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          report.damaged++;
          if (report.problems.size() < 100) {
            report.problems.push_back(absl::StrCat("blob ", id, ": ", s.message()));
          }
        }
        bytes += blob.length;
        return absl::OkStatus();
      },
      [&](size_t) {
        uint64_t n = ++done;
        if (progress) progress(n, ids.size(), bytes, manifest.blob_bytes);
      });
  if (!walked.ok()) return walked;
  report.blobs = blobs->size();
  report.bytes = manifest.blob_bytes;
  return report;
}

absl::StatusOr<RestoreReport> RestoreVolume(BackupStore& store, RemoteBlobStore& replica,
                                            const BackupManifest& manifest,
                                            const std::string& volume_dir,
                                            const RestoreOptions& options) {
  const std::string dir = fsys::absolute(volume_dir).lexically_normal().string();
  const std::string marker = dir + "/" + kRestoreMarkerName;
  const std::string marker_text =
      absl::StrCat("volume ", manifest.volume_id, " backup ", manifest.backup_id, "\n");
  std::error_code ec;
  bool resuming = false;
  if (fsys::exists(marker, ec)) {
    absl::StatusOr<std::string> text = ReadLocalFile(marker);
    if (!text.ok()) return text.status();
    if (*text != marker_text) {
      return FsError(FsErrorKind::kExists,
                     absl::StrCat(dir, " holds an interrupted restore of another backup (",
                                  absl::StripSuffix(*text, "\n"),
                                  "); restore that one again, or delete the directory and its "
                                  "disks and start over"));
    }
    resuming = true;
  } else if (fsys::exists(dir, ec) && !fsys::is_empty(dir, ec)) {
    return FsError(FsErrorKind::kExists,
                   absl::StrCat(dir, IsVolumeDir(dir) ? " already holds a cairn volume"
                                                      : " is not empty",
                                "; restore into a new directory"));
  }
  if (!resuming) {
    fsys::create_directories(dir, ec);
    if (ec) return FsError(FsErrorKind::kIo, absl::StrCat("cannot create ", dir, ": ", ec.message()));
    // First of all: a half-built volume is never mounted.
    if (absl::Status s = WriteLocalFileDurably(marker, marker_text); !s.ok()) return s;
    SyncDirectory(dir);
  }
  if (!IsVolumeDir(dir)) {
    FormatOptions format;
    format.disks = options.disks;
    format.redundancy = options.redundancy;
    format.volume_id = manifest.volume_id;
    format.restoring = true;
    // Never erases: a disk directory in use stops the restore (a crash
    // inside the format itself leaves its disks to empty by hand).
    absl::StatusOr<VolumeConfig> formatted = FormatVolume(dir, format);
    if (!formatted.ok()) return formatted.status();
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(dir);
  if (!config.ok()) return config.status();
  if (config->volume_id != manifest.volume_id) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat(dir, " was prepared for volume ",
                                                       config->volume_id, ", not ",
                                                       manifest.volume_id));
  }

  // The namespace: downloaded beside, checked, then put in place.
  const std::string ns_dir = dir + "/namespace";
  const std::string download = dir + "/namespace.restore";
  if (!fsys::exists(dir + "/namespace.restored", ec)) {
    fsys::remove_all(download, ec);
    fsys::create_directories(download, ec);
    if (absl::Status s = FetchCheckpoint(store, manifest, download, true); !s.ok()) return s;
    fsys::remove_all(ns_dir, ec);
    fsys::rename(download, ns_dir, ec);
    if (ec) return FsError(FsErrorKind::kIo, absl::StrCat("cannot move the namespace into place: ", ec.message()));
    if (absl::Status s = WriteLocalFileDurably(dir + "/namespace.restored", ""); !s.ok()) return s;
    SyncDirectory(dir);
  }
  absl::StatusOr<std::vector<NeededBlob>> needed = store.ReadBlobList(manifest);
  if (!needed.ok()) return needed.status();

  VolumeConfig local = *config;
  local.tier.reset();
  local.replica.reset();
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(dir, local, /*restoring=*/true);
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
    ReplicaOwner owner(store.client(), absl::StrCat(options.take_over->prefix, manifest.volume_id, "/"),
                       token);
    if (absl::Status s = owner.Claim(); !s.ok()) return s;
  }

  VolumeConfig final_config = *config;
  final_config.replica = options.take_over;
  if (absl::Status s = SaveVolumeConfig(dir, final_config); !s.ok()) return s;
  fsys::remove(dir + "/namespace.restored", ec);
  // The last step: the volume may be mounted from here on.
  fsys::remove(marker, ec);
  if (ec) return FsError(FsErrorKind::kIo, absl::StrCat("cannot remove ", marker, ": ", ec.message()));
  SyncDirectory(dir);
  return report;
}

}  // namespace cairn

namespace cairn {

BackupService::BackupService(NamespaceStore& ns, BackupStore& store, RemoteBlobStore& replica,
                             Options options)
    : ns_(ns), store_(store), replica_(replica), options_(std::move(options)) {
  options_.backup.should_stop = [this] { return stopped_.HasBeenNotified(); };
  absl::StatusOr<std::optional<std::string>> last = ns_.GetVolumeMeta(kLastBackupKey);
  if (last.ok() && last->has_value()) {
    std::vector<std::string> words = absl::StrSplit(**last, ' ');
    absl::MutexLock lock(&mu_);
    if (words.size() == 2 && absl::SimpleAtoi(words[1], &last_time_)) last_id_ = words[0];
  }
  if (options_.background && options_.interval_seconds > 0) {
    thread_ = std::thread([this] { Loop(); });
  }
}

BackupService::~BackupService() {
  stopped_.Notify();
  if (thread_.joinable()) thread_.join();
}

void BackupService::NoteError(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  errors_++;
  last_error_ = std::string(status.message());
  last_error_time_ = absl::ToUnixSeconds(absl::Now());
}

absl::StatusOr<BackupService::Result> BackupService::RunNow() {
  absl::StatusOr<BackupManifest> manifest = TakeBackup(ns_, store_, replica_, options_.backup);
  if (!manifest.ok()) {
    NoteError(manifest.status());
    LogWarning("namespace backup failed: %s", manifest.status().message());
    return manifest.status();
  }
  Result result;
  result.manifest = *manifest;
  {
    absl::MutexLock lock(&mu_);
    last_id_ = manifest->backup_id;
    last_time_ = manifest->created_sec;
    last_stored_bytes_ = manifest->StoredBytes();
  }
  LogInfo("namespace backup %s: %d inodes, %d blobs", manifest->backup_id, manifest->inodes,
          manifest->blob_count);
  absl::StatusOr<ReplicaGcReport> gc = CollectNow();
  if (gc.ok()) {
    result.gc = *gc;
  } else {
    result.gc_error = std::string(gc.status().message());
  }
  return result;
}

absl::StatusOr<ReplicaGcReport> BackupService::CollectNow() {
  absl::StatusOr<ReplicaGcReport> gc =
      CollectReplicaGarbage(ns_, store_, replica_, options_.keep);
  if (!gc.ok()) {
    NoteError(gc.status());
    LogWarning("replica garbage collection failed: %s", gc.status().message());
    return gc;
  }
  absl::MutexLock lock(&mu_);
  gc_deleted_ += gc->objects_deleted;
  kept_ = gc->backups_kept;
  return gc;
}

void BackupService::Loop() {
  // A volume never backed up gets its first backup a few minutes after the
  // mount, once the replicator has had a start; after a failure the next
  // try comes sooner than the interval, backing off up to it.
  const int64_t started = absl::ToUnixSeconds(absl::Now());
  int64_t retry = 60;
  for (;;) {
    int64_t due;
    {
      absl::MutexLock lock(&mu_);
      due = last_time_ > 0 ? last_time_ + options_.interval_seconds
                           : started + std::min<int64_t>(300, options_.interval_seconds);
      if (last_error_time_ > last_time_) due = std::min(due, last_error_time_ + retry);
    }
    int64_t now = absl::ToUnixSeconds(absl::Now());
    if (now < due) {
      if (stopped_.WaitForNotificationWithTimeout(absl::Seconds(due - now))) return;
      continue;  // due may have moved (a backup on request)
    }
    absl::StatusOr<Result> result = RunNow();
    retry = result.ok() ? 60
                        : std::min<int64_t>(retry * 2,
                                            std::max<int64_t>(60, options_.interval_seconds));
    if (stopped_.HasBeenNotified()) return;
  }
}

std::string ReplicaGcJson(const ReplicaGcReport& r) {
  return absl::StrFormat(
      "{\"backups_deleted\": %d, \"backups_kept\": %d, \"objects_listed\": %d, "
      "\"objects_deleted\": %d}",
      r.backups_deleted, r.backups_kept, r.objects_listed, r.objects_deleted);
}

std::string BackupManifestJson(const BackupManifest& m) {
  return absl::StrFormat(
      "{\"backup_id\": %s, \"volume_id\": %s, \"created\": %d, \"inodes\": %d, "
      "\"data_bytes\": %d, \"blobs\": %d, \"blob_bytes\": %d, \"stored_bytes\": %d}",
      JsonString(m.backup_id), JsonString(m.volume_id), m.created_sec, m.inodes, m.data_bytes,
      m.blob_count, m.blob_bytes, m.StoredBytes());
}

std::string BackupService::ResultJson(const Result& result) {
  return absl::StrFormat("{\"backup\": %s, \"gc\": %s, \"gc_error\": %s}",
                         BackupManifestJson(result.manifest), ReplicaGcJson(result.gc),
                         JsonString(result.gc_error));
}

std::string BackupService::StatsJsonFields() {
  absl::MutexLock lock(&mu_);
  return absl::StrFormat(
      "\"last_backup\": %s, \"last_backup_time\": %d, \"last_backup_bytes\": %d, "
      "\"backups_kept\": %d, \"backup_errors\": %d, \"last_backup_error\": %s, "
      "\"last_backup_error_time\": %d, \"gc_deleted_objects\": %d",
      JsonString(last_id_), last_time_, last_stored_bytes_, kept_, errors_,
      JsonString(last_error_), last_error_time_, gc_deleted_);
}

}  // namespace cairn

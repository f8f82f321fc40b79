// Namespace backups in the replica bucket.
//
// A backup is a RocksDB checkpoint of the namespace (one consistent instant)
// plus the list of blobs it needs, next to the blob objects the replicator
// writes:
//
//   PREFIX<volume id>/blobs/...                   the blobs (remote_blob_store.h)
//   PREFIX<volume id>/backups/<id>/db/<file>      the checkpoint's files
//   PREFIX<volume id>/backups/<id>/blobs          needed blobs: id, length, CRC32C
//   PREFIX<volume id>/backups/<id>/manifest       written last
//
// Promises:
// - A backup is usable exactly when its manifest exists. The manifest goes
//   up last, and only once every file is uploaded and every blob the backup
//   needs is listed in the replica; it carries each file's size and CRC32C.
//   An interrupted backup has no manifest: it is never listed as usable,
//   and the next clean-up deletes it.
// - Deletes reach the replica only through CollectReplicaGarbage
//   (replica_gc.h): an object
//   goes once no kept backup and no blob record of the volume needs it.
//   Backups and the garbage collection take one lock (BackupStore::mutex),
//   so none collects what a backup being taken still needs.
// - Backup ids are the UTC time of the checkpoint to the microsecond
//   (YYYYMMDDTHHMMSS.uuuuuuZ) and a random suffix: they sort oldest first.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/s3/object_store.h"
#include "backend/services/replica_owner.h"

namespace cairn {

struct BackupFile {
  std::string name;  // as in the checkpoint directory
  uint64_t size = 0;
  uint32_t crc32c = 0;
};

struct BackupManifest {
  std::string backup_id;
  std::string volume_id;
  int64_t created_sec = 0;      // the checkpoint's time
  uint64_t inodes = 0;
  uint64_t data_bytes = 0;      // file data the namespace holds
  uint64_t blob_count = 0;      // blobs the backup needs
  uint64_t blob_bytes = 0;
  uint64_t blob_list_size = 0;  // the "blobs" object
  uint32_t blob_list_crc32c = 0;
  std::vector<BackupFile> files;
  // The checkpoint's bytes in the bucket (its files plus the blob list).
  uint64_t StoredBytes() const;

  std::string Encode() const;
  // kDataLoss for a damaged or truncated manifest (it must end in "end").
  static absl::StatusOr<BackupManifest> Parse(std::string_view text);
};

// A blob a backup needs, as the backup's namespace records it.
struct NeededBlob {
  BlobId id = kNoBlob;
  uint64_t length = 0;
  uint32_t crc32c = 0;
};

// A backup found in the bucket.
struct BackupListing {
  std::string id;
  bool complete = false;  // has its manifest
};

// One volume's backups in a replica bucket.
class BackupStore {
 public:
  // `prefix` as in the [replica] section ("cairn/"); the volume's objects
  // are under PREFIX<volume id>/.
  // `env` is where FetchCheckpoint writes.
  BackupStore(s3::ObjectStore& client, std::string prefix, std::string volume_id,
              Env* env = Env::Default());

  s3::ObjectStore& client() { return client_; }
  const std::string& volume_id() const { return volume_id_; }
  // "PREFIX<volume id>/backups/".
  const std::string& root() const { return root_; }

  // Every backup, complete or not, oldest first.
  absl::StatusOr<std::vector<BackupListing>> List();
  absl::StatusOr<BackupManifest> ReadManifest(const std::string& id);
  // The manifest of `id`, or of the newest complete backup when `id` is
  // empty. Errors name the backups there are.
  absl::StatusOr<BackupManifest> Choose(const std::string& id);
  // The blob list of a backup, checked against its manifest.
  absl::StatusOr<std::vector<NeededBlob>> ReadBlobList(const BackupManifest& manifest);
  // Downloads every file of the backup's checkpoint into `dir` (which must
  // exist), checking each against the manifest; with `dir` empty, only
  // checks them.
  absl::Status FetchCheckpoint(const BackupManifest& manifest, const std::string& dir);
  // Deletes a backup: the manifest first, so a half-deleted one is never
  // taken for usable.
  absl::Status Delete(const std::string& id);

  std::string ObjectKey(const std::string& id, const std::string& name) const;

  // Held while a backup is taken or garbage collected.
  absl::Mutex& mutex() { return mu_; }

  // Backups and collections first check the replica is this copy's (null:
  // not checked).
  void set_owner(ReplicaOwner* owner) { owner_ = owner; }
  absl::Status CheckOwner() {
    return owner_ != nullptr ? owner_->Check(/*fresh=*/true) : absl::OkStatus();
  }

 private:
  s3::ObjectStore& client_;
  Env* const env_;
  const std::string volume_id_;
  const std::string root_;
  absl::Mutex mu_;
  ReplicaOwner* owner_ = nullptr;
};

struct BackupOptions {
  // Checkpoints are made here (on the namespace's filesystem: its table
  // files are then hard links) and deleted after the upload.
  std::string work_dir;
  // How long to wait for the replicator to copy the blobs the checkpoint
  // needs that were still queued when it was taken.
  int64_t replication_wait_seconds = 600;
  // Where the work dir is, and the time the backup is taken at.
  Env* env = Env::Default();
  Clock* clock = Clock::Default();
  // True when the caller is shutting down: the backup gives up its wait.
  std::function<bool()> should_stop;
};

// Takes a backup of `ns` into `store` (see the promises above) and records
// it as the volume's last backup (volume meta kLastBackupKey). Takes the
// store's mutex.
absl::StatusOr<BackupManifest> TakeBackup(NamespaceStore& ns, BackupStore& store,
                                          RemoteBlobStore& replica, const BackupOptions& options);

// Volume meta: "ID UNIX_SECONDS" of the last backup taken.
inline constexpr char kLastBackupKey[] = "last_backup";

// Where backups are checkpointed before the upload: beside the namespace,
// so the checkpoint's table files are hard links.
inline std::string BackupWorkDir(const std::string& volume_dir) {
  return volume_dir + "/backup-work";
}

// Where in a bucket a volume's replica is: `prefix` as given (s3://B/P) may
// hold the volumes (P<volume id>/...) or be one of them (P = .../<volume id>).
struct ReplicaVolume {
  std::string prefix;     // what [replica] prefix would say
  std::string volume_id;
};
absl::StatusOr<ReplicaVolume> FindReplicaVolume(s3::ObjectStore& client, const std::string& prefix);

// Progress of a restore or verify: `done` of `total` blobs, bytes so far.
using RestoreProgress =
    std::function<void(uint64_t done, uint64_t total, uint64_t bytes, uint64_t total_bytes)>;

}  // namespace cairn

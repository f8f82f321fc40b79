// The daemon's namespace backups to the replica, with the replica's garbage
// collection after each.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/backup.h"
#include "backend/services/replica_gc.h"

namespace cairn {

// The daemon's backups: one every interval (counted from the last backup
// the namespace records, so a restart does not take one at once), each
// followed by the replica's garbage collection; RunNow for `cairn backup`.
class BackupService {
 public:
  struct Options {
    int64_t interval_seconds = 3600;  // 0: only RunNow
    int keep = 24;
    BackupOptions backup;
    bool background = true;
  };
  BackupService(NamespaceStore& ns, BackupStore& store, RemoteBlobStore& replica,
                Options options);
  ~BackupService();

  struct Result {
    BackupManifest manifest;
    ReplicaGcReport gc;
    std::string gc_error;  // the backup stands even if the collection failed
  };
  absl::StatusOr<Result> RunNow();
  absl::StatusOr<ReplicaGcReport> CollectNow();

  // The last backup, errors and the last collection.
  struct Status {
    std::string last_id;          // "" before the first backup
    int64_t last_time = 0;        // when it was taken, Unix seconds
    uint64_t last_stored_bytes = 0;
    uint64_t kept = 0;            // complete backups after the last collection
    uint64_t errors = 0;
    std::string last_error;
    int64_t last_error_time = 0;
    uint64_t gc_deleted = 0;      // objects the collections deleted
  };
  Status GetStatus();

 private:
  void Loop();
  void NoteError(const absl::Status& status);

  NamespaceStore& ns_;
  BackupStore& store_;
  RemoteBlobStore& replica_;
  Options options_;
  absl::Mutex mu_;
  std::string last_id_ ABSL_GUARDED_BY(mu_);
  int64_t last_time_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_stored_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  int64_t last_error_time_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t gc_deleted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t kept_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification stopped_;
  std::thread thread_;
};

}  // namespace cairn

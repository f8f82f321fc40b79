// Replication: every blob copied to the replica bucket, in the background.
//
// The namespace queues each blob in the batch that registers it
// (NamespaceOptions::queue_replication), so a committed blob can never miss
// its copy, whatever crashes. The Replicator drains that queue: it reads the
// blob wherever it is (local disks or the remote tier), checks it against
// the namespace's CRC32C, uploads it as one object in the shard format (the
// remote tier's format: the bucket alone identifies every object), reads the
// object back whole to verify it, and only then clears the entry. A crash
// anywhere repeats the copy; an object is written once per blob id, so a
// repeat writes the same bytes.
//
// Replica objects are deleted only by the replica's garbage collection
// (backend/services/replica_gc.h), which knows what kept backups need.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/replica_owner.h"

namespace cairn {

class Replicator {
 public:
  struct Options {
    int64_t idle_seconds = 2;   // how often an idle replicator looks at the queue
    bool background = true;     // false: only RunPass
    int parallel = 8;           // copies at once
    // The remote tier keeps its objects in the replica's bucket and prefix:
    // a blob moved there is already replicated.
    bool tier_is_replica = false;
    // Checked before each pass that has work; null: not checked.
    ReplicaOwner* owner = nullptr;
    Clock* clock = Clock::Default();
  };
  // `blobs` reads a blob wherever it is (the volume's store); `replica`
  // writes to the replica bucket.
  Replicator(NamespaceStore& ns, BlobStore& blobs, RemoteBlobStore& replica, Options options);
  ~Replicator();

  // Copies what is queued until the queue is empty or a copy fails (then
  // the error; the entries stay for the next pass). Returns how many it
  // copied.
  absl::StatusOr<uint64_t> RunPass();

  struct Stats {
    uint64_t copied = 0;
    uint64_t copied_bytes = 0;
    uint64_t errors = 0;
  };
  Stats GetStats();
  // Queue, lag (age of the oldest unreplicated blob: the recovery point
  // right now), copies, errors and health.
  struct Status {
    ReplicationBacklog backlog;
    int64_t lag_seconds = 0;
    Stats totals;
    std::string last_error;
    int64_t last_error_time = 0;
    int64_t last_empty_time = 0;  // the last pass that emptied the queue
    bool healthy = true;          // no failure since the queue was last emptied
  };
  Status GetStatus();

 private:
  absl::Status Copy(BlobId id);
  void Loop();
  // Records a failed pass for GetStatus and the log; returns `status`.
  absl::Status NoteFailure(const absl::Status& status);

  NamespaceStore& ns_;
  BlobStore& blobs_;
  RemoteBlobStore& replica_;
  const Options options_;
  std::atomic<uint64_t> copied_{0}, copied_bytes_{0}, errors_{0};
  absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  int64_t last_error_time_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_pass_time_ ABSL_GUARDED_BY(mu_) = 0;  // last pass that emptied the queue
  absl::Mutex pass_mu_;  // one pass at a time
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;
  std::thread thread_;
};

}  // namespace cairn

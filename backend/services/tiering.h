// The tiering policy, run by the daemon in the background, and the moves of
// whole files that cairn tier out/in ask for. The moves themselves are
// TierMover's (tier_mover.h); reads of moved data are TieredBlobStore's.
#pragma once

#include <functional>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/s3/health_tracking_store.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/config/config.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/tier_mover.h"

namespace cairn {

// Blobs moved at once: each move is a few requests in a row (upload, read
// back; or one read), so several in flight keep the link busy; the S3
// client keeps this many connections.
inline constexpr int kParallelMoves = 8;

// The policy, run by the daemon in the background: blobs of files not used
// (read, written or changed) for cold_after_seconds move out, and while the
// local disks are fuller than the high watermark the coldest move out until
// below the low one. Files with the xattr user.cairn.pin never move.
class TieringService {
 public:
  struct Options {
    int64_t pass_interval_seconds = 30;
    bool background = true;  // false: only RunPass and the file moves
    Clock* clock = Clock::Default();  // what "cold" is measured against
    // How every request to the remote went (reads and moves alike); without
    // it only the policy passes count.
    std::function<s3::RemoteHealth()> remote_health;
  };
  TieringService(NamespaceStore& ns, BlobStore& local, TierMover& mover, TierConfig config,
                 Options options);
  ~TieringService();

  struct PassReport {
    uint64_t local_bytes = 0;   // referenced blob bytes on the local disks
    uint64_t remote_bytes = 0;  // and in the remote tier only
    uint64_t candidates = 0;    // blobs that could move (not pinned, not in use)
    uint64_t moved = 0;
    uint64_t moved_bytes = 0;
    uint64_t waiting = 0;        // cold blobs the pass could not move (the queue)
    uint64_t waiting_bytes = 0;
    double seconds = 0;
  };
  absl::StatusOr<PassReport> RunPass();

  // Moves every blob of these files out now / back in (and pins each file
  // so the policy keeps it local), kParallelMoves blobs at a time.
  // `file_done` is called (from any thread, one call at a time) as each
  // file's last blob is moved. Stops at the first failure, which names the
  // file's inode. Dirty data must be flushed first.
  absl::Status MoveFilesOut(const std::vector<InodeId>& inos,
                            const std::function<void(InodeId)>& file_done = nullptr);
  absl::Status MoveFilesIn(const std::vector<InodeId>& inos,
                           const std::function<void(InodeId)>& file_done = nullptr);

  // What the policy last did, for cairn status and the metrics.
  struct Status {
    std::string endpoint;
    std::string bucket;
    PassReport last_pass;
    TierMover::Stats moves;
    int64_t last_pass_time = 0;   // Unix seconds; 0: no pass yet
    std::string last_error;
    int64_t last_error_time = 0;
    // The latest request to the remote got through, and no pass failed
    // since the last good one.
    bool remote_healthy = true;
  };
  Status GetStatus();

 private:
  void Loop();
  // `status` of a move of blob `id`, but OK when the blob itself is gone.
  absl::Status UnlessDeleted(const absl::Status& status, BlobId id);
  std::vector<BlobId> FileBlobs(InodeId ino, absl::Status* status);
  absl::Status MoveFiles(const std::vector<InodeId>& inos, bool out,
                         const std::function<void(InodeId)>& file_done);

  NamespaceStore& ns_;
  BlobStore& local_;
  TierMover& mover_;
  const TierConfig config_;
  const Options options_;
  absl::Mutex mu_;
  PassReport last_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  int64_t last_error_time_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_pass_time_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex pass_mu_;  // one pass or file move at a time
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;
  std::thread thread_;
};

}  // namespace cairn

// Scrubbing the remote copies: every replica object and every remote tier
// object of a referenced blob is read back whole and checked against the
// checksum the namespace recorded; a missing or damaged one is rewritten
// from a good copy (the local disks, the replica, the tier). The daemon
// does this in the background at a bounded rate, resuming where it stopped
// after a restart; `cairn scrub --remote` runs a pass by hand.
//
// A remote that does not answer proves nothing about its objects: the pass
// stops there (counted as unreachable) and resumes at that blob later.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/replica_owner.h"
#include "backend/services/storage_maintenance.h"

namespace cairn {

struct RemoteScrubReport {
  uint64_t objects_checked = 0;
  uint64_t bytes_read = 0;
  uint64_t replica_bad = 0;  // missing or damaged replica objects found
  uint64_t replica_repaired = 0;
  uint64_t tier_bad = 0;     // and remote tier objects
  uint64_t tier_repaired = 0;
  uint64_t lost = 0;         // bad, and no good copy to repair it from
  uint64_t unreachable = 0;  // the remote did not answer: the pass stopped
  double seconds = 0;
  bool finished = false;
  std::vector<std::string> problems;  // the first few, for the report

  // Every remote copy checked is good (or was repaired).
  bool Healthy() const {
    return lost == 0 && unreachable == 0 && replica_bad == replica_repaired &&
           tier_bad == tier_repaired;
  }
  // Adds a step of a pass to the pass so far.
  void Add(const RemoteScrubReport& step);
};

// Where a volume's remote copies are, and where good copies can come from.
struct RemoteCopies {
  RemoteBlobStore* replica = nullptr;  // null: no replica
  RemoteBlobStore* tier = nullptr;     // null: no remote tier
  // The tier keeps its objects in the replica's bucket and prefix: a
  // moved blob has one object that is both.
  bool tier_is_replica = false;
  BlobStore* local = nullptr;  // the local disks
  // Checked before a replica object is rewritten; null: not checked.
  ReplicaOwner* owner = nullptr;
};

// Called about twice a second and once at the end.
using RemoteScrubProgress = std::function<void(const RemoteScrubReport&)>;

// Checks (and with options.repair, repairs) the remote copies of every
// referenced blob from options.start on. options.bytes_per_second paces
// the reads; each object counts as at least 64 KiB, so a volume of tiny
// blobs is not scrubbed at thousands of requests a second. options.progress
// is not called; `progress` is.
absl::StatusOr<RemoteScrubReport> ScrubRemoteCopies(NamespaceStore& ns, const RemoteCopies& copies,
                                                    const ScrubOptions& options,
                                                    const RemoteScrubProgress& progress = nullptr);

// The background pass: once per interval (counted from the start of the
// previous pass), at no more than bytes_per_second.
struct RemoteScrubStatus {
  int64_t interval_seconds = 0;
  uint64_t bytes_per_second = 0;
  bool running = false;
  int64_t last_started = 0;   // Unix seconds; 0: never
  int64_t last_finished = 0;  // Unix seconds; 0: never
  // A pass has run longer than the interval: raise bytes_per_second.
  bool overdue = false;
  RemoteScrubReport pass;      // the current (or last) pass
  RemoteScrubReport last_complete;  // the last finished pass
};

// What the namespace records of the passes (start, end, the last whole
// pass's counts), for an unmounted volume's status.
RemoteScrubStatus RecordedRemoteScrub(NamespaceStore& ns);

class RemoteScrubber {
 public:
  struct Options {
    int64_t interval_seconds = 30 * 24 * 3600;  // 0: no background pass
    uint64_t bytes_per_second = 4 << 20;
    int64_t tick_millis = 2000;
    Clock* clock = Clock::Default();
  };
  RemoteScrubber(NamespaceStore& ns, RemoteCopies copies, Options options);
  ~RemoteScrubber();  // stops the thread

  // A whole pass now (cairn scrub --remote), with the background pass
  // paused meanwhile; from the start, not the background cursor.
  absl::StatusOr<RemoteScrubReport> RunPass(ScrubOptions options,
                                            const RemoteScrubProgress& progress = nullptr);

  RemoteScrubStatus GetStatus();

 private:
  void Loop();
  void Step();
  // Keeps a whole pass's counts for status, here and across restarts.
  void RecordCompletePass(const RemoteScrubReport& report);

  NamespaceStore& ns_;
  const RemoteCopies copies_;
  const Options options_;
  absl::Mutex exclusive_;  // one pass at a time
  std::atomic<int> pause_{0};
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;
  absl::Mutex mu_;
  RemoteScrubReport pass_ ABSL_GUARDED_BY(mu_);
  RemoteScrubReport last_complete_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Volume meta keys of the background pass.
inline constexpr char kRemoteScrubCursorKey[] = "remote_scrub_cursor";
inline constexpr char kRemoteScrubStartedKey[] = "remote_scrub_last_started";
inline constexpr char kRemoteScrubFinishedKey[] = "remote_scrub_last_finished";

}  // namespace cairn

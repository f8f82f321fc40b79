// Keeping the striped store whole: scrubbing (read and verify every blob,
// rewrite what is bad), draining the repair queue, rebuilding a replaced
// disk, and the daemon's background loop that does all of it at a bounded
// rate. The same functions serve `cairn scrub`, `cairn disk replace` and
// `cairn fsck`, in the daemon or, for an unmounted volume, in the command.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/base/clock.h"
#include "backend/namespace/namespace_store.h"
#include "backend/blob/striped_blob_store.h"

namespace cairn {

struct ScrubReport {
  uint64_t blobs_total = 0;     // estimate at the start, for progress
  uint64_t blobs_checked = 0;
  uint64_t bytes_read = 0;
  uint64_t shards_bad = 0;          // missing, unreadable or corrupt
  uint64_t shards_repaired = 0;
  uint64_t shards_unavailable = 0;  // on missing or failed disks: not checked
  uint64_t blobs_lost = 0;          // fewer than K good shards
  double seconds = 0;
  bool finished = false;
  std::vector<std::string> problems;  // the first few, for the report

  // Every blob checked is whole with full redundancy.
  bool Healthy() const {
    return blobs_lost == 0 && shards_unavailable == 0 && shards_bad == shards_repaired;
  }
};

struct ScrubOptions {
  Clock* clock = Clock::Default();  // paces the reads
  bool repair = true;
  uint64_t bytes_per_second = 0;  // 0: as fast as the disks go
  BlobId start = 0;                // resume point
  double max_seconds = 0;          // > 0: return unfinished after this long
  std::function<bool()> should_stop;
  // Called about twice a second and once at the end.
  std::function<void(const ScrubReport&)> progress;
  // Called after each batch with the id to resume from.
  std::function<void(BlobId next)> checkpoint;
};

// Verifies every referenced blob (and repairs, with options.repair).
absl::StatusOr<ScrubReport> ScrubBlobs(NamespaceStore& ns, StripedBlobStore& store,
                                       const ScrubOptions& options);

// Repairs up to `max` queued blobs; a blob leaves the queue once all its
// shards are good (or it no longer exists). Returns how many left it.
absl::StatusOr<uint64_t> DrainRepairs(NamespaceStore& ns, StripedBlobStore& store,
                                      size_t max);

// Shards on the disks with no blob record (left by a crash between storing
// and committing, or a delete while a disk was down). Run only while no
// blob is being stored. Deletes them when `remove`.
absl::StatusOr<uint64_t> FindOrphanShards(NamespaceStore& ns, StripedBlobStore& store,
                                          bool remove, std::vector<std::string>* problems);

// How many blobs lack full redundancy, as status, stats.json and metrics
// report it: those with a shard on a down disk, or waiting for a repair.
struct RedundancyCounts {
  uint64_t blobs = 0;
  uint64_t repair_queue = 0;
  uint64_t degraded = 0;
};
RedundancyCounts CountRedundancy(NamespaceStore& ns, StripedBlobStore& store);

// The store's state for `cairn status` and the metrics.
struct StorageStatus {
  Redundancy redundancy;
  std::vector<DiskInfo> disks;
  RedundancyCounts redundancy_counts;
  StripedStoreCounters counters;
};
StorageStatus GetStorageStatus(NamespaceStore& ns, StripedBlobStore& store);

// The background scrub, and a manual scrub or rebuild while one runs.
struct ScrubStatus {
  int64_t interval_seconds = 0;
  uint64_t bytes_per_second = 0;
  bool running = false;        // a background pass is under way
  int64_t last_finished = 0;   // Unix seconds the last full pass ended; 0: never
  ScrubReport pass;            // the current (or last) background pass
  std::string manual_what;     // "scrub" or "rebuild" while one runs, else ""
  ScrubReport manual;
};

// The daemon's background loop: watches the disks, drains the repair
// queue, finishes an interrupted disk rebuild, and scrubs every blob once
// per interval at a bounded rate (its position survives restarts). Manual
// scrubs and rebuilds run through RunExclusive, which pauses the background
// scrub meanwhile.
class StorageMaintenance {
 public:
  struct Options {
    int64_t scrub_interval_seconds = 0;  // 0: no background scrub
    uint64_t scrub_bytes_per_second = 16 << 20;
    int64_t tick_millis = 2000;
    Clock* clock = Clock::Default();
  };
  StorageMaintenance(NamespaceStore& ns, StripedBlobStore& store, Options options);
  ~StorageMaintenance();  // stops the thread

  // Runs `work` with the background scrub paused; one at a time.
  template <typename Fn>
  auto RunExclusive(Fn work) {
    pause_++;
    absl::MutexLock lock(&exclusive_);
    struct Resume {
      std::atomic<int>& pause;
      ~Resume() { pause--; }
    } resume{pause_};
    return work();
  }

  // Progress of a manual scrub or rebuild (`what`), for GetScrubStatus;
  // call with finished reports too.
  void NoteManualProgress(const char* what, const ScrubReport& report);

  ScrubStatus GetScrubStatus();

 private:
  void Loop();
  void BackgroundScrubStep();

  NamespaceStore& ns_;
  StripedBlobStore& store_;
  Options options_;
  absl::Mutex exclusive_;
  std::atomic<int> pause_{0};
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;
  absl::Mutex progress_mu_;
  ScrubReport last_ ABSL_GUARDED_BY(progress_mu_);
  bool running_ ABSL_GUARDED_BY(progress_mu_) = false;
  std::string manual_what_ ABSL_GUARDED_BY(progress_mu_);  // "" when none runs
  ScrubReport manual_ ABSL_GUARDED_BY(progress_mu_);
  std::thread thread_;
};

// A number kept in the volume's meta (a cursor, a time); 0 when absent or
// unreadable.
int64_t VolumeMetaNumber(NamespaceStore& ns, const char* key);

// Volume meta keys the maintenance keeps.
inline constexpr char kScrubCursorKey[] = "scrub_cursor";
inline constexpr char kScrubFinishedKey[] = "scrub_last_finished";
inline constexpr char kRebuildPendingKey[] = "disk_rebuild_pending";

}  // namespace cairn

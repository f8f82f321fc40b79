// Garbage collection of blobs: deleting blobs no file references any more
// once their grace period has passed, compacting blobs that are mostly
// overwritten, and sweeping blob files a crash left without a record.
//
// Promises:
// - A blob is deleted only after the namespace lists it as collectable (no
//   extent references it, gc_grace_seconds have passed, and it is not
//   queued for the replica), and its record is forgotten only after the
//   delete succeeded: a crash in between leaves a blob file without record,
//   which the sweep at the next mount deletes.
// - Compaction writes the live parts of a blob into a new blob and only
//   then points the file at it, where the file still reads the old place
//   (NamespaceStore::RelocateExtents): writes racing a compaction win.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class BlobCollector {
 public:
  struct Options {
    bool background = true;  // false: only CollectNow and CompactNow
    int64_t collect_interval_seconds = 5;
    // Compaction reads and rewrites data: it runs less often.
    int64_t compact_interval_seconds = 30;
    size_t batch = 256;  // blobs per namespace query
    // Blobs at most this share of which is still referenced are compacted.
    double compact_max_live_ratio = 0.5;
    Clock* clock = Clock::Default();
    // Called with every blob deleted (a cache above may drop its copy).
    std::function<void(BlobId)> on_deleted;
  };
  BlobCollector(NamespaceStore& ns, BlobStore& blobs, Options options);
  ~BlobCollector();  // stops the thread

  // Deletes the blobs whose grace period has passed. A blob that cannot be
  // deleted now is left for the next round.
  absl::Status CollectNow();

  // Rewrites the live parts of blobs that are mostly overwritten (at most
  // compact_max_live_ratio live) into new blobs, so collection can free the
  // old ones: without it, a file rewritten at random keeps every 4 MiB blob
  // alive for the sake of a few KiB each. Returns how many blobs it emptied.
  absl::StatusOr<uint64_t> CompactNow();

  struct Stats {
    uint64_t blobs_collected = 0;
    uint64_t blobs_compacted = 0;
  };
  Stats GetStats() const;

 private:
  void Loop();

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const Options options_;
  std::atomic<uint64_t> collected_{0}, compacted_{0};
  absl::Notification stop_;
  std::thread thread_;
};

// Deletes blob files the namespace has no record of: a crash between storing
// a blob and committing it leaves one. Only blobs at or above the point the
// last sweep reached are looked at, so a sweep costs a listing of the store
// plus a lookup per new blob. Call only while nothing is storing blobs (at
// mount, after the journal replay). Returns how many it deleted.
absl::StatusOr<uint64_t> SweepOrphanBlobs(NamespaceStore& ns, BlobStore& blobs);

}  // namespace cairn

// Readahead for sequential readers: notices when a file is read in order,
// and loads the blobs ahead of the reader into the read cache on background
// threads, so the reader finds them verified in memory. The window starts at
// one blob once a second in-order read arrives, doubles with every in-order
// read up to max_window_bytes, and drops to nothing at the first read that
// jumps (random access gains nothing from it and would only evict).
//
// The kernel's own readahead (1 MiB requests) keeps doing its part; this
// works one level down, on whole blobs, and in parallel with the reader.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/types.h"
#include "cache/blob_read_cache.h"

namespace cairn {

struct ReadaheadOptions {
  uint64_t max_window_bytes = 32ull << 20;
  int threads = 2;
  size_t max_queued = 32;     // blobs waiting; more are dropped, not queued
  size_t max_streams = 4096;  // files tracked at once
};

class Readahead {
 public:
  Readahead(BlobReadCache& cache, const ReadaheadOptions& options);
  ~Readahead();  // stops the threads; queued prefetches are dropped

  Readahead(const Readahead&) = delete;
  Readahead& operator=(const Readahead&) = delete;

  // Records a read of [offset, offset+length) of `ino`; returns how many
  // bytes after it to prefetch (0: not a sequential stream).
  uint64_t Observe(InodeId ino, uint64_t offset, uint64_t length);
  void Forget(InodeId ino);

  // Queues a blob to be loaded into the cache, unless it is cached, already
  // queued, or the queue is full.
  void Prefetch(BlobId id);

  struct Counters {
    uint64_t sequential_reads = 0;  // reads that continued a stream
    uint64_t prefetched = 0;        // blobs loaded ahead of a reader
    uint64_t dropped = 0;           // not queued: the queue was full
  };
  Counters GetCounters();

 private:
  struct Stream {
    uint64_t next_offset = 0;
    uint64_t window = 0;
  };
  void Worker();

  BlobReadCache& cache_;
  const ReadaheadOptions options_;

  absl::Mutex mu_;
  absl::flat_hash_map<InodeId, Stream> streams_ ABSL_GUARDED_BY(mu_);
  std::deque<BlobId> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<BlobId> queued_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace cairn

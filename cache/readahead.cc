#include "cache/readahead.h"

#include <algorithm>

#include "backend/blob/blob_store.h"

namespace cairn {

Readahead::Readahead(BlobReadCache& cache, const ReadaheadOptions& options)
    : cache_(cache), options_(options) {
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] { Worker(); });
  }
}

Readahead::~Readahead() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

uint64_t Readahead::Observe(InodeId ino, uint64_t offset, uint64_t length) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(ino);
  if (it == streams_.end()) {
    // Forgetting every stream at once is crude but bounded, and streams
    // re-form after one more read.
    if (streams_.size() >= options_.max_streams) streams_.clear();
    streams_[ino] = Stream{offset + length, 0};
    return 0;
  }
  Stream& stream = it->second;
  // The kernel issues readahead requests in parallel, so they may arrive a
  // little out of order: a read within two of its own lengths of where the
  // stream stands still continues it. Small random reads rarely land that
  // close by chance.
  const uint64_t slack = 2 * length;
  bool in_order = offset <= stream.next_offset + slack &&
                  offset + length + slack >= stream.next_offset;
  if (!in_order) {
    // The stream starts again from here: a second pass over the file (cmp
    // after cp) is a stream too.
    stream.next_offset = offset + length;
    stream.window = 0;
    return 0;
  }
  stream.next_offset = std::max(stream.next_offset, offset + length);
  counters_.sequential_reads++;
  stream.window = stream.window == 0
                      ? kMaxBlobBytes
                      : std::min(stream.window * 2, options_.max_window_bytes);
  return stream.window;
}

void Readahead::Forget(InodeId ino) {
  absl::MutexLock lock(&mu_);
  streams_.erase(ino);
}

void Readahead::Prefetch(BlobId id) {
  if (cache_.Contains(id)) return;
  absl::MutexLock lock(&mu_);
  if (queued_.contains(id)) return;
  if (queue_.size() >= options_.max_queued) {
    counters_.dropped++;
    return;
  }
  queue_.push_back(id);
  queued_.insert(id);
}

Readahead::Counters Readahead::GetCounters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

void Readahead::Worker() {
  for (;;) {
    BlobId id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    // A failed load is not an error here: the reader will meet (and
    // report) it when it gets there.
    bool loaded = cache_.Warm(id);
    absl::MutexLock lock(&mu_);
    queued_.erase(id);
    if (loaded) counters_.prefetched++;
  }
}

}  // namespace cairn

// Verified blob contents kept in memory, least recently used out first.
//
// Whole blobs, because the blob store verifies a blob's checksum over all of
// it on every read: once verified, every later read of any range of that blob
// is a memory copy. LRU because file reads show strong recency (a file is
// read through, or its header re-read) and LRU is cheap to keep exact.
//
// A read that failed slowly (the store's retries ran out against a remote
// that does not answer) is answered with the same error, without a read,
// for kFailureKept after it, whole-blob loads and ranges alike: the kernel
// asks again at once for a read that failed, and each asking would
// otherwise wait out the retries again.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class BlobReadCache {
 public:
  BlobReadCache(NamespaceStore& ns, BlobStore& blobs, uint64_t capacity_bytes,
                Clock* clock = Clock::Default())
      : ns_(ns), blobs_(blobs), capacity_bytes_(capacity_bytes), clock_(clock) {}

  // A failed load that took at least kSlowFailure is kept for kFailureKept.
  static constexpr absl::Duration kSlowFailure = absl::Seconds(1);
  static constexpr absl::Duration kFailureKept = absl::Milliseconds(250);

  // The blob's bytes, from memory or read (and verified) from the store.
  absl::StatusOr<std::shared_ptr<const std::string>> Get(BlobId id);
  // `length` bytes at `offset` of the blob, read from the store and not
  // kept (random access: a whole blob for every 4 KiB asked would cost
  // too much).
  absl::StatusOr<std::string> ReadRange(BlobId id, uint64_t offset, uint64_t length);
  void Forget(BlobId id);
  bool Contains(BlobId id);
  // Loads the blob unless it is cached or being loaded, without counting a
  // hit or miss (readahead). True if it loaded it.
  bool Warm(BlobId id);

  struct Counters {
    uint64_t bytes = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
  };
  Counters GetCounters();

 private:
  using Lru = std::list<std::pair<BlobId, std::shared_ptr<const std::string>>>;
  // A blob being read from the store. Concurrent readers of the same blob
  // (the kernel sends several readahead requests into one blob at once) wait
  // for the first one instead of each reading and verifying all of it.
  struct Load {
    absl::Notification done;
    absl::StatusOr<std::shared_ptr<const std::string>> result;
  };
  void Insert(BlobId id, std::shared_ptr<const std::string> bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads, verifies and caches the blob for `load`, then wakes its waiters.
  void RunLoad(BlobId id, const std::shared_ptr<Load>& load);
  // The error of a slow failed read of `id` still kept, else OK.
  absl::Status KeptFailureLocked(BlobId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps `status` of a read of `id` that began at `started` if it failed
  // slowly.
  void NoteFailureLocked(BlobId id, const absl::Status& status, int64_t started)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Failure {
    absl::Status status;
    int64_t until_nanos;  // monotonic
  };

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const uint64_t capacity_bytes_;
  Clock* const clock_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<BlobId, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<BlobId, std::shared_ptr<Load>> loading_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<BlobId, Failure> failed_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn

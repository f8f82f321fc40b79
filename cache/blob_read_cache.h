// Verified blob contents kept in memory, least recently used out first.
//
// Whole blobs, because the blob store verifies a blob's checksum over all of
// it on every read: once verified, every later read of any range of that blob
// is a memory copy. LRU because file reads show strong recency (a file is
// read through, or its header re-read) and LRU is cheap to keep exact.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class BlobReadCache {
 public:
  BlobReadCache(NamespaceStore& ns, BlobStore& blobs, uint64_t capacity_bytes)
      : ns_(ns), blobs_(blobs), capacity_bytes_(capacity_bytes) {}

  // The blob's bytes, from memory or read (and verified) from the store.
  absl::StatusOr<std::shared_ptr<const std::string>> Get(BlobId id);
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

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const uint64_t capacity_bytes_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<BlobId, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<BlobId, std::shared_ptr<Load>> loading_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn

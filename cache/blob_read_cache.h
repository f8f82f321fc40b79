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
#include "backend/blob_store.h"
#include "backend/namespace_store.h"

namespace cairn {

class BlobReadCache {
 public:
  BlobReadCache(NamespaceStore& ns, BlobStore& blobs, uint64_t capacity_bytes)
      : ns_(ns), blobs_(blobs), capacity_bytes_(capacity_bytes) {}

  // The blob's bytes, from memory or read (and verified) from the store.
  absl::StatusOr<std::shared_ptr<const std::string>> Get(BlobId id);
  void Forget(BlobId id);

  struct Counters {
    uint64_t bytes = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
  };
  Counters GetCounters();

 private:
  using Lru = std::list<std::pair<BlobId, std::shared_ptr<const std::string>>>;

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const uint64_t capacity_bytes_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<BlobId, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn

#include "cache/blob_read_cache.h"

namespace cairn {

absl::StatusOr<std::shared_ptr<const std::string>> BlobReadCache::Get(BlobId id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      counters_.hits++;
      return it->second->second;
    }
    counters_.misses++;
  }
  // Read outside the lock: other files' hits must not wait for this disk read.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) return record.status();
  absl::StatusOr<std::string> bytes = blobs_.Read(id, 0, record->length);
  if (!bytes.ok()) return bytes.status();
  auto shared = std::make_shared<const std::string>(std::move(*bytes));
  if (shared->size() > capacity_bytes_) return shared;
  absl::MutexLock lock(&mu_);
  if (index_.contains(id)) return shared;  // another reader got there first
  lru_.emplace_front(id, shared);
  index_[id] = lru_.begin();
  counters_.bytes += shared->size();
  while (counters_.bytes > capacity_bytes_ && !lru_.empty()) {
    counters_.bytes -= lru_.back().second->size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return shared;
}

void BlobReadCache::Forget(BlobId id) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return;
  counters_.bytes -= it->second->second->size();
  lru_.erase(it->second);
  index_.erase(it);
}

BlobReadCache::Counters BlobReadCache::GetCounters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace cairn

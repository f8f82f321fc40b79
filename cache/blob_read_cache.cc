#include "cache/blob_read_cache.h"

namespace cairn {

absl::StatusOr<std::shared_ptr<const std::string>> BlobReadCache::Get(BlobId id) {
  std::shared_ptr<Load> load;
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      counters_.hits++;
      return it->second->second;
    }
    if (absl::Status failed = KeptFailureLocked(id); !failed.ok()) return failed;
    std::shared_ptr<Load>& slot = loading_[id];
    if (!slot) {
      slot = std::make_shared<Load>();
      first = true;
      counters_.misses++;
    } else {
      counters_.hits++;  // served by a read already under way
    }
    load = slot;
  }
  if (!first) {
    load->done.WaitForNotification();
    return load->result;
  }
  RunLoad(id, load);
  return load->result;
}

bool BlobReadCache::Contains(BlobId id) {
  absl::MutexLock lock(&mu_);
  return index_.contains(id) || loading_.contains(id);
}

bool BlobReadCache::Warm(BlobId id) {
  std::shared_ptr<Load> load;
  {
    absl::MutexLock lock(&mu_);
    if (index_.contains(id) || loading_.contains(id)) return false;
    if (!KeptFailureLocked(id).ok()) return false;
    load = std::make_shared<Load>();
    loading_[id] = load;
  }
  RunLoad(id, load);
  return load->result.ok();
}

absl::Status BlobReadCache::KeptFailureLocked(BlobId id) {
  auto it = failed_.find(id);
  if (it == failed_.end()) return absl::OkStatus();
  if (clock_->MonotonicNanos() < it->second.until_nanos) return it->second.status;
  failed_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobReadCache::ReadRange(BlobId id, uint64_t offset,
                                                     uint64_t length) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status failed = KeptFailureLocked(id); !failed.ok()) return failed;
  }
  const int64_t started = clock_->MonotonicNanos();
  absl::StatusOr<std::string> bytes = blobs_.Read(id, offset, length);
  if (!bytes.ok()) {
    absl::MutexLock lock(&mu_);
    NoteFailureLocked(id, bytes.status(), started);
  }
  return bytes;
}

void BlobReadCache::NoteFailureLocked(BlobId id, const absl::Status& status, int64_t started) {
  const int64_t ended = clock_->MonotonicNanos();
  if (ended - started < absl::ToInt64Nanoseconds(kSlowFailure)) return;
  // Kept few and briefly: a remote that stopped answering fails each blob
  // slowly, so this holds a handful.
  if (failed_.size() >= 1024) failed_.clear();
  failed_[id] = Failure{status, ended + absl::ToInt64Nanoseconds(kFailureKept)};
}

void BlobReadCache::RunLoad(BlobId id, const std::shared_ptr<Load>& load) {
  const int64_t started = clock_->MonotonicNanos();
  // Read outside the lock: other blobs' hits must not wait for this disk read.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) {
    load->result = record.status();
  } else {
    absl::StatusOr<std::string> bytes = blobs_.Read(id, 0, record->length);
    if (bytes.ok()) {
      load->result = std::make_shared<const std::string>(std::move(*bytes));
    } else {
      load->result = bytes.status();
    }
  }
  {
    absl::MutexLock lock(&mu_);
    loading_.erase(id);
    if (load->result.ok()) {
      Insert(id, *load->result);
    } else {
      NoteFailureLocked(id, load->result.status(), started);
    }
  }
  load->done.Notify();
}

void BlobReadCache::Insert(BlobId id, std::shared_ptr<const std::string> bytes) {
  if (bytes->size() > capacity_bytes_ || index_.contains(id)) return;
  counters_.bytes += bytes->size();
  lru_.emplace_front(id, std::move(bytes));
  index_[id] = lru_.begin();
  while (counters_.bytes > capacity_bytes_ && !lru_.empty()) {
    counters_.bytes -= lru_.back().second->size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void BlobReadCache::Forget(BlobId id) {
  absl::MutexLock lock(&mu_);
  failed_.erase(id);
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

#include "backend/blob/disk_block_cache.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'D', 'B', 'C'};
constexpr uint32_t kVersion = 2;
constexpr size_t kHeaderBytes = 44;
constexpr int64_t kTouchIntervalSec = 60;

std::string EncodeBlock(BlobId id, uint64_t block, uint32_t tag, std::string_view data) {
  std::string out(kMagic, sizeof(kMagic));
  PutFixed32(&out, kVersion);
  PutFixed32(&out, static_cast<uint32_t>(data.size()));
  PutFixed64(&out, id);
  PutFixed64(&out, block);
  PutFixed32(&out, tag);
  PutFixed32(&out, Crc32c(data));
  PutFixed32(&out, Crc32c(out));
  out.append(data);
  return out;
}

struct BlockHeader {
  uint32_t length;
  uint32_t crc32c;
};

// The header of a block file, or nullopt if it is not the intact header of
// the block named; `*stale` says the block is intact but was stored with
// another tag. The data is read apart, straight into the string returned.
std::optional<BlockHeader> DecodeHeader(std::string_view header, BlobId id, uint64_t block,
                                        uint32_t tag, bool* stale) {
  if (header.size() < kHeaderBytes || header.substr(0, 8) != std::string_view(kMagic, 8)) {
    return std::nullopt;
  }
  if (Crc32c(header.substr(0, 40)) != DecodeFixed32(header.data() + 40) ||
      DecodeFixed32(header.data() + 8) != kVersion ||
      DecodeFixed64(header.data() + 16) != id || DecodeFixed64(header.data() + 24) != block) {
    return std::nullopt;
  }
  if (DecodeFixed32(header.data() + 32) != tag) {
    *stale = true;
    return std::nullopt;
  }
  return BlockHeader{DecodeFixed32(header.data() + 12), DecodeFixed32(header.data() + 36)};
}

bool ParseName(const std::string& name, BlobId* id, uint64_t* block) {
  // <16 hex>-<8 hex>.blk
  if (name.size() != 16 + 1 + 8 + 4 || name[16] != '-' || name.substr(25) != ".blk") {
    return false;
  }
  return ParseHex(std::string_view(name).substr(0, 16), id) &&
         ParseHex(std::string_view(name).substr(17, 8), block);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskBlockCache>> DiskBlockCache::Open(
    const std::string& dir, uint64_t capacity_bytes, Env* env, Clock* clock) {
  std::unique_ptr<DiskBlockCache> cache(new DiskBlockCache(dir, capacity_bytes, env, clock));
  if (absl::Status s = cache->Load(); !s.ok()) return s;
  return cache;
}

std::string DiskBlockCache::PathOf(const Key& key) const {
  return absl::StrFormat("%s/%02x/%016x-%08x.blk", dir_, key.id & 0xff, key.id, key.block);
}

absl::Status DiskBlockCache::Load() {
  // CACHE_DIR itself may not exist yet (the first mount after a format).
  if (absl::Status s = CreateDirs(env_, dir_); !s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> fanouts = env_->ListDir(dir_);
  if (!fanouts.ok()) return fanouts.status();
  struct Found {
    Key key;
    uint64_t bytes;
    int64_t mtime;
  };
  std::vector<Found> found;
  for (const std::string& fanout : *fanouts) {
    std::string sub = dir_ + "/" + fanout;
    if (fanout.rfind("tmp-", 0) == 0) {  // a write cut short by a crash
      env_->Remove(sub).IgnoreError();
      continue;
    }
    absl::StatusOr<std::vector<std::string>> names = env_->ListDir(sub);
    if (!names.ok()) continue;
    for (const std::string& name : *names) {
      Key key{};
      if (!ParseName(name, &key.id, &key.block)) continue;
      absl::StatusOr<FileInfo> info = env_->Stat(sub + "/" + name);
      if (!info.ok()) continue;
      found.push_back(Found{key, info->size, info->modified_sec});
    }
  }
  // Most recently used first, as the modification times say.
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  absl::MutexLock lock(&mu_);
  for (const Found& f : found) {
    lru_.push_back(Entry{f.key, f.bytes, f.mtime});
    index_[f.key] = std::prev(lru_.end());
    counters_.bytes += f.bytes;
    counters_.blocks++;
  }
  EvictLocked();
  return absl::OkStatus();
}

std::optional<std::string> DiskBlockCache::Get(BlobId id, uint64_t block, uint32_t tag) {
  Key key{id, block};
  std::shared_ptr<const std::string> queued;
  {
    absl::MutexLock lock(&queue_mu_);
    if (auto it = queued_.find(key); it != queued_.end() && it->second.tag == tag) {
      queued = it->second.data;
    }
  }
  if (queued != nullptr) {
    absl::MutexLock lock(&mu_);
    counters_.hits++;
    return *queued;
  }
  std::string path = PathOf(key);
  {
    absl::MutexLock lock(&mu_);
    if (!index_.contains(key)) {
      counters_.misses++;
      return std::nullopt;
    }
  }
  // Read outside the lock; a concurrent replacement renames a whole new
  // file into place, so what is read is one version or the other.
  std::optional<std::string> data;
  bool damaged = false;
  absl::StatusOr<std::unique_ptr<File>> file = env_->Open(path, OpenMode::kRead);
  if (file.ok()) {
    absl::StatusOr<std::string> header = (*file)->PRead(0, kHeaderBytes);
    if (header.ok()) {
      bool stale = false;
      std::optional<BlockHeader> h = DecodeHeader(*header, id, block, tag, &stale);
      if (h) {
        // One byte more than the header says: a longer file is not the
        // block indexed.
        absl::StatusOr<std::string> bytes = (*file)->PRead(kHeaderBytes, h->length + 1);
        if (bytes.ok() && bytes->size() == h->length && Crc32c(*bytes) == h->crc32c) {
          data = std::move(*bytes);
        }
      }
      damaged = !data.has_value() && !stale;
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (!data) {
    counters_.misses++;
    if (damaged) {
      counters_.corrupt++;
      LogWarning("cached block %s is damaged; dropped (it is fetched again)", path);
    }
    if (it != index_.end()) DropLocked(it->second);
    return std::nullopt;
  }
  counters_.hits++;
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    int64_t now = clock_->NowSeconds();
    if (now - it->second->touched_sec >= kTouchIntervalSec) {
      it->second->touched_sec = now;
      // Recency for the next run; a block that cannot be touched is only
      // evicted sooner.
      env_->SetModifiedTime(path, now).IgnoreError();
    }
  }
  return data;
}

absl::Status DiskBlockCache::Put(BlobId id, uint64_t block, std::string_view data,
                                 uint32_t tag) {
  Key key{id, block};
  std::string bytes = EncodeBlock(id, block, tag, data);
  if (bytes.size() > capacity_bytes_) return absl::OkStatus();  // never fits
  std::string path = PathOf(key);
  std::string temp;
  {
    absl::MutexLock lock(&mu_);
    if (!MakeRoomLocked(bytes.size())) {
      no_room_++;
      return absl::OkStatus();
    }
    temp = absl::StrCat(dir_, "/tmp-", next_temp_++);
  }
  if (absl::Status s = env_->CreateDir(absl::StrFormat("%s/%02x", dir_, id & 0xff)); !s.ok()) {
    return s;
  }
  absl::Status written = [&]() -> absl::Status {
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(temp, OpenMode::kCreateExclusive);
    if (!file.ok()) return file.status();
    if (absl::Status s = (*file)->PWrite(0, bytes); !s.ok()) return s;
    if (absl::Status s = (*file)->Close(); !s.ok()) return s;
    return env_->Rename(temp, path);
  }();
  if (!written.ok()) {
    env_->Remove(temp).IgnoreError();
    return written;
  }
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    counters_.bytes -= it->second->bytes;
    counters_.blocks--;
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.push_front(Entry{key, bytes.size(), clock_->NowSeconds()});
  index_[key] = lru_.begin();
  counters_.bytes += bytes.size();
  counters_.blocks++;
  EvictLocked();
  return absl::OkStatus();
}

void DiskBlockCache::PutInBackground(BlobId id, uint64_t block, std::string data, uint32_t tag) {
  absl::MutexLock lock(&queue_mu_);
  if (stopping_) return;
  if (queued_bytes_ + data.size() > kMaxQueuedBytes) {
    // The disk is slower than the reads: they must not wait for it, nor
    // memory grow.
    skipped_++;
    return;
  }
  Key key{id, block};
  Queued item{key, tag, std::make_shared<const std::string>(std::move(data))};
  queued_bytes_ += item.data->size();
  queued_[key] = item;
  queue_.push_back(std::move(item));
  if (!writer_.joinable()) writer_ = std::thread([this] { WriteQueued(); });
}

void DiskBlockCache::WriteQueued() {
  absl::MutexLock lock(&queue_mu_);
  for (;;) {
    queue_mu_.Await(absl::Condition(
        +[](DiskBlockCache* cache) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache->queue_mu_) {
          return !cache->queue_.empty() || cache->stopping_;
        },
        this));
    if (queue_.empty()) return;  // stopping, everything written
    Queued item = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    queue_mu_.Unlock();
    absl::Status put = Put(item.key.id, item.key.block, *item.data, item.tag);
    if (!put.ok()) {
      // A full cache disk slows later reads down; it never fails them.
      LogDebug("caching block %d of blob %d: %s", item.key.block, item.key.id, put.message());
    }
    queue_mu_.Lock();
    writing_ = false;
    queued_bytes_ -= item.data->size();
    if (auto it = queued_.find(item.key); it != queued_.end() && it->second.data == item.data) {
      queued_.erase(it);
    }
  }
}

void DiskBlockCache::WaitForBackgroundPuts() {
  absl::MutexLock lock(&queue_mu_);
  queue_mu_.Await(absl::Condition(
      +[](DiskBlockCache* cache) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache->queue_mu_) {
        return cache->queue_.empty() && !cache->writing_;
      },
      this));
}

DiskBlockCache::~DiskBlockCache() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

void DiskBlockCache::ForgetBlob(BlobId id, uint64_t block_count) {
  {
    // Nothing of the blob may be written after this: drop what waits, and
    // let a block being written land first, to be dropped below.
    absl::MutexLock lock(&queue_mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->key.id != id) {
        ++it;
        continue;
      }
      queued_bytes_ -= it->data->size();
      queued_.erase(it->key);
      it = queue_.erase(it);
    }
    queue_mu_.Await(absl::Condition(
        +[](DiskBlockCache* cache) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache->queue_mu_) {
          return !cache->writing_;
        },
        this));
  }
  absl::MutexLock lock(&mu_);
  for (uint64_t block = 0; block < block_count; ++block) {
    if (auto it = index_.find(Key{id, block}); it != index_.end()) DropLocked(it->second);
  }
}

DiskBlockCache::Counters DiskBlockCache::GetCounters() {
  uint64_t skipped;
  {
    absl::MutexLock lock(&queue_mu_);
    skipped = skipped_;
  }
  absl::MutexLock lock(&mu_);
  Counters counters = counters_;
  counters.skipped = skipped + no_room_;
  return counters;
}

uint64_t DiskBlockCache::ReleaseSpace(uint64_t wanted) {
  absl::MutexLock lock(&mu_);
  return EvictOldestLocked(wanted);
}

uint64_t DiskBlockCache::EvictOldestLocked(uint64_t wanted) {
  uint64_t evicted = 0;
  while (evicted < wanted && !lru_.empty()) {
    evicted += lru_.back().bytes;
    DropLocked(std::prev(lru_.end()));
    counters_.evictions++;
  }
  return evicted;
}

bool DiskBlockCache::MakeRoomLocked(uint64_t bytes) {
  absl::StatusOr<SpaceInfo> space = env_->StatFs(dir_);
  if (!space.ok()) return true;  // the write itself finds a full disk
  const auto keep = static_cast<uint64_t>(static_cast<double>(space->capacity_bytes) *
                                          kKeepFreeFraction);
  // A deleted file's blocks come back whole: counting its length is close
  // enough, and the next put looks again.
  uint64_t available = space->available_bytes;
  if (available < keep + bytes) available += EvictOldestLocked(keep + bytes - available);
  return available >= keep + bytes;
}

void DiskBlockCache::EvictLocked() {
  while (counters_.bytes > capacity_bytes_ && !lru_.empty()) {
    DropLocked(std::prev(lru_.end()));
    counters_.evictions++;
  }
}

void DiskBlockCache::DropLocked(Lru::iterator it) {
  env_->Remove(PathOf(it->key)).IgnoreError();
  counters_.bytes -= it->bytes;
  counters_.blocks--;
  index_.erase(it->key);
  lru_.erase(it);
}

}  // namespace cairn

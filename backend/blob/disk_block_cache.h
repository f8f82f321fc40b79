// A size-limited cache of blob blocks on local disk, for data whose home is
// slow to reach (the remote tier). It survives restarts, evicts the least
// recently used blocks when over its capacity, and verifies a checksum on
// every read: a damaged or torn block file is dropped and reported as a
// miss, never returned.
//
// It is the first thing on its filesystem to give up room: a block is
// written only while a tenth of the filesystem stays free (as JuiceFS's
// cache keeps by default), the least recently used blocks going first to
// keep it so, and ReleaseSpace evicts on demand (the volume asks before it
// refuses written data for want of room). Only what the cache wrote counts
// against its capacity; what others write shrinks it.
//
// One file per block, `<dir>/<id & 0xff as 2 hex>/<id as 16 hex>-<block as
// 8 hex>.blk`, little-endian:
//   0  magic "CAIRNDBC"        8 bytes
//   8  format version          u32 (1)
//  12  data length             u32
//  16  blob id                 u64
//  24  block index             u64
//  32  tag                     u32 (the caller's; the blob's CRC32C)
//  36  CRC32C of the data      u32
//  40  CRC32C of bytes 0..39   u32
//  44  data
// Files are written to a temporary name and renamed into place, without
// fsync: after a crash a block is either whole, missing, or fails its
// checksum, and a cache may lose entries. A reader that fetched a block
// hands it to PutInBackground and goes on: a thread of the cache writes
// it, and Get answers from the queue until it has. Recency survives
// restarts through the files' modification times, refreshed on use at most
// once a minute.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "backend/base/types.h"

namespace cairn {

class DiskBlockCache {
 public:
  // Opens (creating if needed) the cache in `dir` and indexes the blocks a
  // previous run left, evicting down to `capacity_bytes`. `env` and `clock`
  // must outlive the cache.
  static absl::StatusOr<std::unique_ptr<DiskBlockCache>> Open(
      const std::string& dir, uint64_t capacity_bytes, Env* env = Env::Default(),
      Clock* clock = Clock::Default());

  // The block's bytes, or nullopt if not cached (or found damaged, or
  // stored with another tag). The tag ties a block to its blob's content
  // (callers pass the blob's CRC32C): should a blob id ever name other
  // bytes, as after the namespace is restored from an older copy, blocks
  // of the old blob are misses, never returned.
  std::optional<std::string> Get(BlobId id, uint64_t block, uint32_t tag = 0);
  // Stores a block, evicting others to stay within capacity and to leave
  // kKeepFreeFraction of the filesystem free; when even an empty cache
  // would leave less, the block is not cached (counted in
  // Counters::skipped). Errors (a full disk) are returned; the cache stays
  // consistent and keeps working.
  absl::Status Put(BlobId id, uint64_t block, std::string_view data, uint32_t tag = 0);
  static constexpr double kKeepFreeFraction = 0.1;
  // Put, later, on the cache's own thread: the caller does not wait for the
  // disk. At most kMaxQueuedBytes wait; past that a block is not cached
  // (counted in Counters::skipped). Errors are the cache's (logged).
  void PutInBackground(BlobId id, uint64_t block, std::string data, uint32_t tag = 0);
  // Waits until every block queued so far is written (or failed).
  void WaitForBackgroundPuts();
  static constexpr uint64_t kMaxQueuedBytes = 32ull << 20;
  // Drops the cached blocks 0..block_count-1 of a blob (it was deleted).
  void ForgetBlob(BlobId id, uint64_t block_count);
  // Evicts the least recently used blocks until `wanted` bytes of files
  // are gone or the cache is empty; returns the bytes evicted.
  uint64_t ReleaseSpace(uint64_t wanted);

  struct Counters {
    uint64_t bytes = 0;
    uint64_t blocks = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
    uint64_t corrupt = 0;  // damaged blocks found and dropped
    // Not cached: the background queue was full, or the filesystem would
    // have been left with less than kKeepFreeFraction free.
    uint64_t skipped = 0;
  };
  Counters GetCounters();

  ~DiskBlockCache();

 private:
  struct Key {
    BlobId id;
    uint64_t block;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.id, k.block);
    }
  };
  struct Entry {
    Key key;
    uint64_t bytes;
    int64_t touched_sec;  // last mtime refresh
  };
  using Lru = std::list<Entry>;  // most recent first

  // A block waiting for the background thread.
  struct Queued {
    Key key;
    uint32_t tag;
    std::shared_ptr<const std::string> data;
  };

  DiskBlockCache(std::string dir, uint64_t capacity_bytes, Env* env, Clock* clock)
      : dir_(std::move(dir)), capacity_bytes_(capacity_bytes), env_(env), clock_(clock) {}
  absl::Status Load();
  void WriteQueued();
  std::string PathOf(const Key& key) const;
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts until writing `bytes` leaves kKeepFreeFraction of the
  // filesystem free; false if even an empty cache would not.
  bool MakeRoomLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts the least recently used blocks until `wanted` bytes of files
  // are gone or none is left; returns the bytes evicted.
  uint64_t EvictOldestLocked(uint64_t wanted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked(Lru::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const uint64_t capacity_bytes_;
  Env* const env_;
  Clock* const clock_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_temp_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t no_room_ ABSL_GUARDED_BY(mu_) = 0;  // puts skipped for the free space

  absl::Mutex queue_mu_;  // never held with mu_
  std::deque<Queued> queue_ ABSL_GUARDED_BY(queue_mu_);
  // The newest queued data of each block, for Get.
  absl::flat_hash_map<Key, Queued> queued_ ABSL_GUARDED_BY(queue_mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(queue_mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(queue_mu_) = false;  // the thread holds a block
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  uint64_t skipped_ ABSL_GUARDED_BY(queue_mu_) = 0;
  std::thread writer_;  // started by the first PutInBackground
};

}  // namespace cairn

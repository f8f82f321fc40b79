#include "backend/blob/disk_block_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/support/fault_env.h"
#include "tests/support/mem_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

constexpr uint64_t kBlockFile = 1000 + 44;  // 1000 bytes of data plus the header

std::string Data(char c) { return std::string(1000, c); }

class DiskBlockCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<DiskBlockCache> Open(uint64_t capacity) {
    auto cache = DiskBlockCache::Open(Dir(), capacity, &env_);
    EXPECT_TRUE(cache.ok()) << cache.status();
    return cache.ok() ? std::move(*cache) : nullptr;
  }
  std::string Dir() { return dir_.path() + "/dbc"; }
  std::string PathOf(BlobId id, uint64_t block) {
    return absl::StrFormat("%s/%02x/%016x-%08x.blk", Dir(), id & 0xff, id, block);
  }
  size_t FileCount() {
    size_t n = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(Dir())) {
      if (e.is_regular_file()) ++n;
    }
    return n;
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
};

TEST_F(DiskBlockCacheTest, BlocksComeBackAfterARestart) {
  {
    auto cache = Open(1 << 20);
    ASSERT_TRUE(cache->Put(7, 0, Data('a')).ok());
    ASSERT_TRUE(cache->Put(7, 1, Data('b')).ok());
    EXPECT_EQ(cache->Get(7, 1), Data('b'));
    EXPECT_EQ(cache->Get(8, 0), std::nullopt);
    EXPECT_EQ(cache->GetCounters().hits, 1u);
    EXPECT_EQ(cache->GetCounters().misses, 1u);
  }
  auto cache = Open(1 << 20);
  EXPECT_EQ(cache->GetCounters().blocks, 2u);
  EXPECT_EQ(cache->GetCounters().bytes, 2 * kBlockFile);
  EXPECT_EQ(cache->Get(7, 0), Data('a'));
  EXPECT_EQ(cache->Get(7, 1), Data('b'));
}

TEST_F(DiskBlockCacheTest, LeastRecentlyUsedBlockIsEvictedFirst) {
  auto cache = Open(3 * kBlockFile);
  ASSERT_TRUE(cache->Put(1, 0, Data('a')).ok());
  ASSERT_TRUE(cache->Put(2, 0, Data('b')).ok());
  ASSERT_TRUE(cache->Put(3, 0, Data('c')).ok());
  EXPECT_TRUE(cache->Get(1, 0).has_value());  // 1 is now the most recent
  ASSERT_TRUE(cache->Put(4, 0, Data('d')).ok());
  EXPECT_EQ(cache->Get(2, 0), std::nullopt) << "2 was the least recently used";
  EXPECT_TRUE(cache->Get(1, 0).has_value());
  EXPECT_TRUE(cache->Get(3, 0).has_value());
  EXPECT_TRUE(cache->Get(4, 0).has_value());
  EXPECT_EQ(cache->GetCounters().evictions, 1u);
  EXPECT_LE(cache->GetCounters().bytes, 3 * kBlockFile);
  EXPECT_EQ(FileCount(), 3u) << "evicted blocks leave the disk";
}

TEST_F(DiskBlockCacheTest, RecencySurvivesARestart) {
  {
    auto cache = Open(1 << 20);
    for (BlobId id = 1; id <= 3; ++id) ASSERT_TRUE(cache->Put(id, 0, Data('x')).ok());
  }
  // As if 2 was used long ago, 1 a while ago, 3 just now.
  timespec times[2] = {{0, UTIME_OMIT}, {1000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, PathOf(2, 0).c_str(), times, 0), 0);
  times[1].tv_sec = 2000;
  ASSERT_EQ(utimensat(AT_FDCWD, PathOf(1, 0).c_str(), times, 0), 0);
  auto cache = Open(2 * kBlockFile);  // room for two: the oldest goes
  EXPECT_EQ(cache->Get(2, 0), std::nullopt);
  EXPECT_TRUE(cache->Get(1, 0).has_value());
  EXPECT_TRUE(cache->Get(3, 0).has_value());
}

TEST_F(DiskBlockCacheTest, DamagedBlockIsDroppedNeverReturned) {
  auto cache = Open(1 << 20);
  ASSERT_TRUE(cache->Put(5, 2, Data('q')).ok());
  {
    std::fstream f(PathOf(5, 2), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40 + 500);
    f.put('Z');
  }
  EXPECT_EQ(cache->Get(5, 2), std::nullopt);
  EXPECT_EQ(cache->GetCounters().corrupt, 1u);
  EXPECT_FALSE(std::filesystem::exists(PathOf(5, 2)));
  // A block file renamed to another block's name is not that block.
  ASSERT_TRUE(cache->Put(5, 3, Data('r')).ok());
  std::filesystem::copy_file(PathOf(5, 3), PathOf(5, 4));
  auto reopened = Open(1 << 20);
  EXPECT_EQ(reopened->Get(5, 4), std::nullopt);
  EXPECT_EQ(reopened->Get(5, 3), Data('r'));
}

// A block file cut short (a torn write) or grown (bytes appended) is not
// the block its header names: dropped, never returned in part or padded.
TEST_F(DiskBlockCacheTest, ABlockFileCutShortOrGrownIsDroppedNeverReturned) {
  auto cache = Open(1 << 20);
  ASSERT_TRUE(cache->Put(6, 0, Data('s')).ok());
  ASSERT_TRUE(cache->Put(6, 1, Data('t')).ok());
  std::filesystem::resize_file(PathOf(6, 0), kBlockFile - 1);
  std::ofstream(PathOf(6, 1), std::ios::app | std::ios::binary) << 'x';
  EXPECT_EQ(cache->Get(6, 0), std::nullopt);
  EXPECT_EQ(cache->Get(6, 1), std::nullopt);
  EXPECT_EQ(cache->GetCounters().corrupt, 2u);
  EXPECT_EQ(FileCount(), 0u);
}

TEST_F(DiskBlockCacheTest, FullDiskFailsThePutAndLeavesTheCacheWorking) {
  auto cache = Open(1 << 20);
  ASSERT_TRUE(cache->Put(1, 0, Data('a')).ok());
  env_.space_left = 100;
  EXPECT_FALSE(cache->Put(2, 0, Data('b')).ok());
  env_.space_left = -1;
  EXPECT_EQ(cache->Get(2, 0), std::nullopt);
  EXPECT_EQ(cache->Get(1, 0), Data('a'));
  EXPECT_EQ(FileCount(), 1u) << "no partial or temporary file is left";
  ASSERT_TRUE(cache->Put(2, 0, Data('b')).ok());
  EXPECT_EQ(cache->Get(2, 0), Data('b'));
}

// On a filesystem of its own size (MemEnv), to see what the cache leaves
// free for the journal and the data beside it.
class DiskBlockCacheRoomTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kCapacity = 20000;  // a tenth: 2,000 bytes kept free
  void SetUp() override {
    env_.SetCapacity(kCapacity);
    auto cache = DiskBlockCache::Open("/cache", 1 << 20, &env_);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(*cache);
  }
  uint64_t Free() { return env_.StatFs("/cache")->available_bytes; }
  // Another program's file, growing to leave `left` bytes free.
  void FillLeaving(uint64_t left) {
    absl::StatusOr<std::unique_ptr<File>> file = env_.Open("/filler", OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    const uint64_t size = *(*file)->Size();
    ASSERT_TRUE((*file)->Truncate(size + Free() - left).ok());
  }

  MemEnv env_;
  std::unique_ptr<DiskBlockCache> cache_;
};

TEST_F(DiskBlockCacheRoomTest, PutsLeaveATenthOfTheFilesystemFreeEvictingTheOldestFirst) {
  // 17 blocks leave 2,252 bytes; an 18th would leave less than 2,000.
  for (BlobId id = 1; id <= 18; ++id) {
    ASSERT_TRUE(cache_->Put(id, 0, Data('a' + id)).ok());
    EXPECT_GE(Free(), kCapacity / 10) << "after block " << id;
  }
  EXPECT_EQ(cache_->Get(1, 0), std::nullopt) << "the oldest block made room";
  for (BlobId id = 2; id <= 18; ++id) EXPECT_EQ(cache_->Get(id, 0), Data('a' + id));
  EXPECT_EQ(cache_->GetCounters().evictions, 1u);
  EXPECT_EQ(cache_->GetCounters().skipped, 0u);
}

TEST_F(DiskBlockCacheRoomTest, WhatOthersWriteShrinksTheCacheAndThenSkipsIt) {
  for (BlobId id = 1; id <= 4; ++id) ASSERT_TRUE(cache_->Put(id, 0, Data('x')).ok());
  // The journal (say) grows until a block more would leave less than the
  // tenth: the oldest block goes for the new one.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(kCapacity / 10 + kBlockFile - 1));
  ASSERT_TRUE(cache_->Put(5, 0, Data('y')).ok());
  EXPECT_EQ(cache_->Get(5, 0), Data('y'));
  EXPECT_EQ(cache_->Get(1, 0), std::nullopt);
  for (BlobId id = 2; id <= 4; ++id) EXPECT_EQ(cache_->Get(id, 0), Data('x'));
  EXPECT_GE(Free(), kCapacity / 10);

  // It fills the filesystem: the blocks least recently used make room.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(0));
  ASSERT_TRUE(cache_->Put(6, 0, Data('z')).ok());
  EXPECT_EQ(cache_->Get(6, 0), Data('z'));
  EXPECT_EQ(cache_->GetCounters().blocks, 2u);
  EXPECT_GE(Free(), kCapacity / 10);

  // Again: now even an empty cache would leave too little, so the block is
  // not cached (nor does the put fail), and the cache gave up all it had.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(0));
  ASSERT_TRUE(cache_->Put(7, 0, Data('w')).ok());
  EXPECT_EQ(cache_->Get(7, 0), std::nullopt);
  EXPECT_EQ(cache_->GetCounters().blocks, 0u);
  EXPECT_EQ(cache_->GetCounters().skipped, 1u);

  ASSERT_TRUE(env_.Remove("/filler").ok());  // room again: it caches again
  ASSERT_TRUE(cache_->Put(7, 0, Data('w')).ok());
  EXPECT_EQ(cache_->Get(7, 0), Data('w'));
}

TEST_F(DiskBlockCacheRoomTest, ReleaseSpaceEvictsTheLeastRecentlyUsedBlocks) {
  for (BlobId id = 1; id <= 3; ++id) ASSERT_TRUE(cache_->Put(id, 0, Data('r')).ok());
  ASSERT_EQ(cache_->Get(1, 0), Data('r'));  // block 2 is now the least recent
  const uint64_t before = Free();
  EXPECT_EQ(cache_->ReleaseSpace(1), kBlockFile);
  EXPECT_EQ(Free(), before + kBlockFile);
  EXPECT_EQ(cache_->Get(2, 0), std::nullopt);
  EXPECT_EQ(cache_->Get(1, 0), Data('r'));
  EXPECT_EQ(cache_->ReleaseSpace(1 << 30), 2 * kBlockFile) << "all it had";
  EXPECT_EQ(cache_->GetCounters().blocks, 0u);
  EXPECT_EQ(cache_->ReleaseSpace(1), 0u);
}

TEST_F(DiskBlockCacheTest, ForgetBlobDropsAllItsBlocks) {
  auto cache = Open(1 << 20);
  for (uint64_t block = 0; block < 4; ++block) ASSERT_TRUE(cache->Put(9, block, Data('n')).ok());
  ASSERT_TRUE(cache->Put(10, 0, Data('o')).ok());
  cache->ForgetBlob(9, 4);
  for (uint64_t block = 0; block < 4; ++block) EXPECT_EQ(cache->Get(9, block), std::nullopt);
  EXPECT_EQ(cache->Get(10, 0), Data('o'));
  EXPECT_EQ(FileCount(), 1u);
}

TEST_F(DiskBlockCacheTest, BlockOfAnotherBlobWithTheSameIdIsNeverReturned) {
  // Blob ids are not reused, but a namespace restored from an older copy
  // hands them out again: the tag (the blob's CRC32C) tells the blobs apart.
  {
    auto cache = Open(1 << 20);
    ASSERT_TRUE(cache->Put(11, 0, Data('o'), /*tag=*/0x1111).ok());
    EXPECT_EQ(cache->Get(11, 0, 0x1111), Data('o'));
  }
  auto cache = Open(1 << 20);
  EXPECT_EQ(cache->Get(11, 0, 0x2222), std::nullopt);
  EXPECT_EQ(FileCount(), 0u) << "the stale block is dropped";
  ASSERT_TRUE(cache->Put(11, 0, Data('p'), 0x2222).ok());
  EXPECT_EQ(cache->Get(11, 0, 0x2222), Data('p'));
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A reader hands a fetched block over and goes on: it is a hit at once,
// written by the cache's thread, and there after a restart.
TEST_F(DiskBlockCacheTest, ABlockPutInBackgroundIsAHitAtOnceAndOnDiskSoon) {
  absl::Notification stalled_disk;
  env_.writes_wait_for = &stalled_disk;
  {
    auto cache = Open(1 << 20);
    cache->PutInBackground(7, 0, Data('a'));
    EXPECT_EQ(cache->Get(7, 0), Data('a')) << "a queued block is not served";
    EXPECT_EQ(cache->Get(7, 0, /*tag=*/99), std::nullopt) << "served with another tag";
    EXPECT_EQ(cache->GetCounters().blocks, 0u);
    stalled_disk.Notify();
    cache->WaitForBackgroundPuts();
    EXPECT_EQ(FileCount(), 1u);
    EXPECT_EQ(cache->GetCounters().blocks, 1u);
    cache->PutInBackground(7, 1, Data('b'));
  }  // closing writes what is queued
  env_.writes_wait_for = nullptr;
  auto cache = Open(1 << 20);
  EXPECT_EQ(cache->Get(7, 0), Data('a'));
  EXPECT_EQ(cache->Get(7, 1), Data('b'));
}

// A disk slower than the reads: what waits stays under kMaxQueuedBytes and
// the rest is not cached; nothing fails.
TEST_F(DiskBlockCacheTest, BlocksPastTheQueuesLimitAreSkipped) {
  absl::Notification stalled_disk;
  env_.writes_wait_for = &stalled_disk;
  auto cache = Open(1 << 30);
  const uint64_t block = 1 << 20;
  const uint64_t count = DiskBlockCache::kMaxQueuedBytes / block + 4;
  for (uint64_t i = 0; i < count; ++i) cache->PutInBackground(9, i, std::string(block, 'x'));
  // The block with the stalled writer counts until it is written.
  EXPECT_EQ(cache->GetCounters().skipped, 4u);
  stalled_disk.Notify();
  cache->WaitForBackgroundPuts();
  EXPECT_EQ(cache->GetCounters().blocks + cache->GetCounters().skipped, count);
  EXPECT_EQ(cache->Get(9, count - 1), std::nullopt);
  EXPECT_EQ(cache->Get(9, 0), std::string(block, 'x'));
}

// A deleted blob's queued blocks are never written.
TEST_F(DiskBlockCacheTest, ForgetBlobDropsItsQueuedBlocks) {
  absl::Notification stalled_disk;
  env_.writes_wait_for = &stalled_disk;
  auto cache = Open(1 << 20);
  cache->PutInBackground(5, 0, Data('k'));  // taken by the writer, stalled
  cache->PutInBackground(7, 0, Data('a'));
  cache->PutInBackground(7, 1, Data('b'));
  std::thread forget([&] { cache->ForgetBlob(7, 2); });
  absl::SleepFor(absl::Milliseconds(50));
  stalled_disk.Notify();
  forget.join();
  cache->WaitForBackgroundPuts();
  EXPECT_EQ(cache->Get(7, 0), std::nullopt);
  EXPECT_EQ(cache->Get(7, 1), std::nullopt);
  EXPECT_EQ(cache->Get(5, 0), Data('k'));
  EXPECT_EQ(FileCount(), 1u);
}

}  // namespace
}  // namespace cairn

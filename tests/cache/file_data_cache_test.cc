#include "cache/file_data_cache.h"

#include <sys/stat.h>

#include <random>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "gtest/gtest.h"
#include "tests/support/fault_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

class FileDataCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_options.gc_grace_seconds = 0;
    ns_ = std::move(*NamespaceStore::Open(dir_.path() + "/ns", ns_options));
    blobs_ = std::move(*LocalBlobStore::Open(dir_.path() + "/data", &env_));
    NewCache();
  }
  void NewCache(uint64_t max_dirty = 64 << 20) {
    cache_.reset();
    FileDataCacheOptions options;
    options.background_threads = false;
    options.max_dirty_bytes = max_dirty;
    cache_ = std::make_unique<FileDataCache>(*ns_, *blobs_, options);
  }
  InodeId NewFile(const std::string& name) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    return ns_->MakeNode(kRootInode, name, node, {})->ino;
  }
  std::string ReadAll(InodeId ino) {
    auto data = cache_->Read(ino, 0, 1ull << 40);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.value_or("");
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> blobs_;
  std::unique_ptr<FileDataCache> cache_;
};

TEST_F(FileDataCacheTest, ReadsSeeUnflushedWritesOverCommittedData) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(200000, 'a')).ok());
  ASSERT_TRUE(cache_->Flush(f).ok());
  ASSERT_TRUE(cache_->Write(f, 1000, "BBBB").ok());
  ASSERT_TRUE(cache_->Write(f, 1002, "cc").ok());
  std::string expected(200000, 'a');
  expected.replace(1000, 4, "BBcc");
  EXPECT_EQ(ReadAll(f), expected);
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(ReadAll(f), expected);
}

TEST_F(FileDataCacheTest, HolesReadAsZerosAndSizeCoversDirtyData) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 100000, "end").ok());
  EXPECT_EQ(cache_->WithDirtySize(*ns_->GetAttr(f)).size, 100003u);
  std::string data = ReadAll(f);
  ASSERT_EQ(data.size(), 100003u);
  EXPECT_EQ(data.substr(0, 100000), std::string(100000, '\0'));
  EXPECT_EQ(data.substr(100000), "end");
}

// du and tar -S read st_blocks: data written but not yet stored must count,
// or a fresh file looks all holes (tar -S archived it empty).
TEST_F(FileDataCacheTest, DataNotYetStoredCountsInAllocatedBytes) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(4096, 'x')).ok());
  EXPECT_EQ(cache_->WithDirtySize(*ns_->GetAttr(f)).allocated_bytes, 4096u);
  // A hole stays a hole: only the bytes written count.
  ASSERT_TRUE(cache_->Write(f, 1 << 20, "end").ok());
  EXPECT_EQ(cache_->WithDirtySize(*ns_->GetAttr(f)).allocated_bytes, 4099u);
  ASSERT_TRUE(cache_->Flush(f).ok());
  const uint64_t stored = ns_->GetAttr(f)->allocated_bytes;
  EXPECT_EQ(cache_->WithDirtySize(*ns_->GetAttr(f)).allocated_bytes, stored);
  // Overwriting stored bytes never counts beyond the size.
  ASSERT_TRUE(cache_->Write(f, 0, std::string(4096, 'y')).ok());
  InodeAttr attr = cache_->WithDirtySize(*ns_->GetAttr(f));
  EXPECT_LE(attr.allocated_bytes, attr.size);
  EXPECT_GE(attr.allocated_bytes, stored);
}

TEST_F(FileDataCacheTest, TruncateThenExtendReadsZeros) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(300000, 'x')).ok());
  SetAttrRequest shrink;
  shrink.size = 1000;
  ASSERT_EQ(cache_->SetAttrWithSize(f, shrink)->size, 1000u);
  ASSERT_TRUE(cache_->Write(f, 5000, "y").ok());
  std::string data = ReadAll(f);
  ASSERT_EQ(data.size(), 5001u);
  EXPECT_EQ(data.substr(0, 1000), std::string(1000, 'x'));
  EXPECT_EQ(data.substr(1000, 4000), std::string(4000, '\0'));
  EXPECT_EQ(data[5000], 'y');
}

TEST_F(FileDataCacheTest, FlushedDataSurvivesANewCache) {
  InodeId small = NewFile("small");
  InodeId large = NewFile("large");
  ASSERT_TRUE(cache_->Write(small, 0, "tiny").ok());
  std::string big(9 << 20, 'z');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  ASSERT_TRUE(cache_->Write(large, 0, big).ok());
  ASSERT_TRUE(cache_->FlushAll().ok());
  NewCache();
  EXPECT_EQ(ReadAll(small), "tiny");
  EXPECT_EQ(ReadAll(large), big);
}

TEST_F(FileDataCacheTest, ScatteredSmallWritesArePackedIntoFewBlobs) {
  InodeId f = NewFile("scattered");
  std::string expected(2000 * 4096, '\0');
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string run(100 + rng() % 200, static_cast<char>('a' + i % 26));
    uint64_t offset = static_cast<uint64_t>(i) * 4096 + rng() % 1000;
    expected.replace(offset, run.size(), run);
    ASSERT_TRUE(cache_->Write(f, offset, run).ok());
  }
  expected.resize(1999 * 4096 + expected.substr(1999 * 4096).find_last_not_of('\0') + 1);
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(cache_->GetStats().blobs_written, 1u) << "2000 runs of ~200 bytes fit one blob";
  NewCache();
  EXPECT_EQ(ReadAll(f), expected);
  absl::StatusOr<NamespaceCheckReport> check = ns_->Check();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
}

// A sequential writer's blocks become one blob each, stored whole: its
// dirty data is kept per blob-sized slot, not as one run that grows.
TEST_F(FileDataCacheTest, ASequentialWriteStoresOneBlobPerBlock) {
  InodeId f = NewFile("seq");
  std::string expected;
  for (int i = 0; i < 12; ++i) {
    std::string piece(1 << 20, static_cast<char>('a' + i));
    expected += piece;
    ASSERT_TRUE(cache_->Write(f, static_cast<uint64_t>(i) << 20, piece).ok());
  }
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(cache_->GetStats().blobs_written, 3u);
  absl::StatusOr<std::vector<Extent>> extents = ns_->GetExtents(f, 0, 12 << 20);
  ASSERT_TRUE(extents.ok());
  ASSERT_EQ(extents->size(), 3u);
  for (const Extent& extent : *extents) {
    EXPECT_EQ(extent.length, kMaxBlobBytes);
    EXPECT_EQ(extent.blob_offset, 0u);
  }
  NewCache();
  EXPECT_EQ(ReadAll(f), expected);
}

// Random writes of every shape (inside one run, extending one, bridging
// several, crossing blob boundaries) against a plain string; the dirty
// byte count must match the bytes written since the last flush (a write
// that leaves a blob's worth dirty stores all of it at once).
TEST_F(FileDataCacheTest, RandomWritesAndFlushesMatchAModel) {
  InodeId f = NewFile("model");
  std::mt19937 rng(11);
  const uint64_t span = 3 * kMaxBlobBytes + 12345;
  std::string model;
  std::vector<bool> dirty(span, false);
  for (int i = 0; i < 400; ++i) {
    uint64_t length = 1 + rng() % (rng() % 4 == 0 ? 2 * kMaxBlobBytes : 9000);
    uint64_t offset = rng() % (span - length);
    if (rng() % 5 == 0 && !model.empty()) offset = std::min<uint64_t>(model.size(), span - length);
    std::string data(length, static_cast<char>('A' + i % 50));
    data[0] = static_cast<char>(i);
    ASSERT_TRUE(cache_->Write(f, offset, data).ok());
    if (model.size() < offset + length) model.resize(offset + length, '\0');
    model.replace(offset, length, data);
    std::fill(dirty.begin() + offset, dirty.begin() + offset + length, true);
    if (rng() % 40 == 0) {
      ASSERT_TRUE(cache_->Flush(f).ok());
      std::fill(dirty.begin(), dirty.end(), false);
    }
    const uint64_t dirty_bytes = cache_->GetStats().dirty_bytes;
    if (dirty_bytes == 0) std::fill(dirty.begin(), dirty.end(), false);
    ASSERT_EQ(dirty_bytes, static_cast<uint64_t>(std::count(dirty.begin(), dirty.end(), true)))
        << "after write " << i;
    if (i % 25 == 0) ASSERT_EQ(ReadAll(f), model) << "after write " << i;
  }
  EXPECT_EQ(ReadAll(f), model);
  ASSERT_TRUE(cache_->Flush(f).ok());
  NewCache();
  EXPECT_EQ(ReadAll(f), model);
}

TEST_F(FileDataCacheTest, SmallFilesAreInlineLargeOnesUseBlobs) {
  InodeId small = NewFile("small");
  InodeId large = NewFile("large");
  ASSERT_TRUE(cache_->Write(small, 0, std::string(1000, 's')).ok());
  ASSERT_TRUE(cache_->Write(large, 0, std::string(100000, 'l')).ok());
  ASSERT_TRUE(cache_->FlushAll().ok());
  EXPECT_EQ(ns_->GetExtents(small, 0, 1000)->at(0).blob_id, kNoBlob);
  EXPECT_NE(ns_->GetExtents(large, 0, 100000)->at(0).blob_id, kNoBlob);
  EXPECT_EQ(blobs_->Usage()->blob_count, 1u);
}

TEST_F(FileDataCacheTest, FailedBlobPutKeepsDataDirtyAndReportsError) {
  InodeId f = NewFile("f");
  std::string data(100000, 'q');
  ASSERT_TRUE(cache_->Write(f, 0, data).ok());
  env_.fail_sync_number = env_.syncs + 1;
  absl::Status failed = cache_->Fsync(f);
  EXPECT_FALSE(failed.ok());
  // Nothing committed, data still readable from the cache...
  EXPECT_TRUE(ns_->GetExtents(f, 0, data.size())->empty());
  EXPECT_EQ(ReadAll(f), data);
  EXPECT_EQ(cache_->GetStats().dirty_bytes, data.size());
  // ...and the next fsync really stores it.
  ASSERT_TRUE(cache_->Fsync(f).ok());
  NewCache();
  EXPECT_EQ(ReadAll(f), data);
}

TEST_F(FileDataCacheTest, DiskFullIsReportedAndOtherFilesStayIntact) {
  InodeId kept = NewFile("kept");
  ASSERT_TRUE(cache_->Write(kept, 0, std::string(100000, 'k')).ok());
  ASSERT_TRUE(cache_->Fsync(kept).ok());
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(100000, 'f')).ok());
  env_.space_left = 1000;
  EXPECT_EQ(GetFsErrorKind(cache_->Fsync(f)), FsErrorKind::kNoSpace);
  EXPECT_EQ(ReadAll(kept), std::string(100000, 'k'));
  env_.space_left = -1;
  EXPECT_TRUE(cache_->Fsync(f).ok());
}

TEST_F(FileDataCacheTest, DirtyMemoryStaysUnderTheLimit) {
  NewCache(/*max_dirty=*/2 << 20);
  std::string chunk(64 << 10, 'm');
  for (int file = 0; file < 8; ++file) {
    InodeId f = NewFile("f" + std::to_string(file));
    for (int i = 0; i < 16; ++i) {
      ASSERT_TRUE(cache_->Write(f, i * chunk.size() * 2, chunk).ok());
      EXPECT_LE(cache_->GetStats().dirty_bytes, (2u << 20) + chunk.size());
    }
  }
}

TEST_F(FileDataCacheTest, FullDiskRefusesWritesInsteadOfGrowingMemory) {
  NewCache(/*max_dirty=*/1 << 20);
  env_.space_left = 0;  // nothing can be stored
  InodeId f = NewFile("f");
  std::string chunk(64 << 10, 'z');
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    absl::Status s = cache_->Write(f, i * chunk.size(), chunk);
    if (!s.ok()) {
      EXPECT_EQ(GetFsErrorKind(s), FsErrorKind::kNoSpace) << s;
      refused++;
    }
    EXPECT_LE(cache_->GetStats().dirty_bytes, (1u << 20) + 2 * chunk.size());
  }
  EXPECT_GT(refused, 50);
  env_.space_left = -1;
  EXPECT_TRUE(cache_->Fsync(f).ok()) << "once there is room again, the data held is stored";
}

TEST_F(FileDataCacheTest, ConcurrentWritersToDifferentFiles) {
  std::vector<InodeId> files;
  for (int i = 0; i < 4; ++i) files.push_back(NewFile("c" + std::to_string(i)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 200; ++i) {
        uint64_t off = (rng() % 64) * 4096;
        EXPECT_TRUE(cache_->Write(files[t], off, std::string(4096, 'a' + t)).ok());
        if (i % 50 == 0) {
          EXPECT_TRUE(cache_->Flush(files[t]).ok());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(cache_->FlushAll().ok());
  for (int t = 0; t < 4; ++t) {
    std::string data = ReadAll(files[t]);
    for (char c : data) ASSERT_TRUE(c == 0 || c == 'a' + t);
  }
}

// A blob store whose Puts can be held at the door (to catch a flush in
// the middle of its store) and made to fail.
class GatedBlobStore : public BlobStore {
 public:
  explicit GatedBlobStore(BlobStore& inner) : inner_(inner) {}
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override {
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      mu_.Await(absl::Condition(+[](GatedBlobStore* s) { return s->open_; }, this));
      --waiting_;
      if (fail_) return FsError(FsErrorKind::kIo, "the test fails this store");
    }
    return inner_.Put(id, data);
  }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override {
    return inner_.Read(id, offset, length);
  }
  absl::Status Delete(BlobId id) override {
    absl::MutexLock lock(&mu_);
    deleted_.push_back(id);
    return inner_.Delete(id);
  }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return inner_.ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override { return inner_.Usage(); }

  void Close() {
    absl::MutexLock lock(&mu_);
    open_ = false;
  }
  void Open(bool fail = false) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
    open_ = true;
  }
  void AwaitWaiter() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](GatedBlobStore* s) { return s->waiting_ > 0; }, this));
  }
  std::vector<BlobId> deleted() {
    absl::MutexLock lock(&mu_);
    return deleted_;
  }

 private:
  BlobStore& inner_;
  absl::Mutex mu_;
  bool open_ = true;
  bool fail_ = false;
  int waiting_ = 0;
  std::vector<BlobId> deleted_;
};

class StoringFileDataCacheTest : public FileDataCacheTest {
 protected:
  void SetUp() override {
    FileDataCacheTest::SetUp();
    cache_.reset();
    gated_ = std::make_unique<GatedBlobStore>(*blobs_);
    FileDataCacheOptions options;
    options.background_threads = false;
    options.inline_threshold_bytes = 0;
    cache_ = std::make_unique<FileDataCache>(*ns_, *gated_, options);
  }
  void TearDown() override { gated_->Open(); }
  // Writes `data` at 0, then starts a flush of `ino` on another thread and
  // returns once it is inside its store (held at the gate).
  std::thread WriteThenHoldItsFlush(InodeId ino, const std::string& data, absl::Status* result) {
    EXPECT_TRUE(cache_->Write(ino, 0, data).ok());
    gated_->Close();
    std::thread flusher([this, ino, result] { *result = cache_->Flush(ino); });
    gated_->AwaitWaiter();
    return flusher;
  }

  std::unique_ptr<GatedBlobStore> gated_;
};

// While a flush writes a file's blobs, the file's writes and reads go on
// (they used to wait behind every store), newer bytes win, and everything
// ends up committed in order.
TEST_F(StoringFileDataCacheTest, WritesAndReadsGoOnWhileAStoreIsUnderWay) {
  InodeId f = NewFile("f");
  std::string data(300000, 'a');
  absl::Status flushed;
  std::thread flusher = WriteThenHoldItsFlush(f, data, &flushed);
  // The store holds no lock of the file: these return at once.
  ASSERT_TRUE(cache_->Write(f, 1000, std::string(2000, 'b')).ok());
  ASSERT_TRUE(cache_->Write(f, 300000, "tail").ok());
  data.replace(1000, 2000, std::string(2000, 'b'));
  data += "tail";
  EXPECT_EQ(ReadAll(f), data) << "the runs being stored, the newer ones over them";
  EXPECT_TRUE(cache_->HoldsUnstoredData(f));
  EXPECT_EQ(cache_->WithDirtySize(*ns_->GetAttr(f)).size, data.size());
  gated_->Open();
  flusher.join();
  ASSERT_TRUE(flushed.ok()) << flushed;
  EXPECT_EQ(ReadAll(f), data);
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_FALSE(cache_->HoldsUnstoredData(f));
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  NewCache();
  EXPECT_EQ(ReadAll(f), data) << "committed in the order written";
}

// A store that fails puts its runs back under what was written meanwhile:
// nothing is lost and the newer bytes still win.
TEST_F(StoringFileDataCacheTest, AFailedStoreKeepsItsRunsUnderTheNewerOnes) {
  InodeId f = NewFile("f");
  std::string data(300000, 'a');
  absl::Status flushed;
  std::thread flusher = WriteThenHoldItsFlush(f, data, &flushed);
  ASSERT_TRUE(cache_->Write(f, 5000, std::string(100, 'n')).ok());
  data.replace(5000, 100, std::string(100, 'n'));
  gated_->Open(/*fail=*/true);
  flusher.join();
  EXPECT_FALSE(flushed.ok());
  EXPECT_TRUE(ns_->GetExtents(f, 0, data.size())->empty()) << "nothing committed";
  EXPECT_EQ(ReadAll(f), data);
  EXPECT_EQ(cache_->GetStats().dirty_bytes, data.size());
  gated_->Open();
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  NewCache();
  EXPECT_EQ(ReadAll(f), data);
}

// A file deleted while its data is being stored: nothing is committed and
// the blobs just written are deleted, not left for the next mount's sweep.
// A writer over the dirty limit while the file's store is under way waits
// for that store to free memory; it does not store what came in meanwhile
// as a blob of its own (every writer did, and a sequential file went out
// as many small blobs, each costing an fdatasync).
TEST_F(StoringFileDataCacheTest, AWriterOverTheLimitWaitsForTheStoreUnderWay) {
  cache_.reset();
  FileDataCacheOptions options;
  options.background_threads = false;
  options.inline_threshold_bytes = 0;
  options.max_dirty_bytes = 6 << 20;
  cache_ = std::make_unique<FileDataCache>(*ns_, *gated_, options);
  InodeId f = NewFile("f");
  gated_->Close();
  absl::Status first_write;
  std::thread first([&] { first_write = cache_->Write(f, 0, std::string(kMaxBlobBytes, 'a')); });
  gated_->AwaitWaiter();  // the 4 MiB it filled is being stored
  absl::Status second_write;
  std::thread second([&] {
    second_write = cache_->Write(f, kMaxBlobBytes, std::string(3 << 20, 'b'));
  });
  absl::SleepFor(absl::Milliseconds(200));  // lets it reach the limit
  gated_->Open();
  first.join();
  second.join();
  ASSERT_TRUE(first_write.ok()) << first_write;
  ASSERT_TRUE(second_write.ok()) << second_write;
  EXPECT_EQ(cache_->GetStats().blobs_written, 1u);
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 3u << 20) << "under the limit once the store ended";
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(ReadAll(f), std::string(kMaxBlobBytes, 'a') + std::string(3 << 20, 'b'));
}

TEST_F(StoringFileDataCacheTest, AFileDiscardedDuringItsStoreLeavesNoBlob) {
  InodeId f = NewFile("f");
  absl::Status flushed;
  std::thread flusher = WriteThenHoldItsFlush(f, std::string(300000, 'a'), &flushed);
  cache_->Discard(f);
  gated_->Open();
  flusher.join();
  EXPECT_TRUE(flushed.ok()) << flushed;
  EXPECT_EQ(gated_->deleted().size(), 1u);
  EXPECT_TRUE(ns_->GetExtents(f, 0, 300000)->empty());
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  EXPECT_TRUE(blobs_->ListIds(0)->empty());
}

}  // namespace
}  // namespace cairn

#include "backend/services/blob_gc.h"

#include <sys/stat.h>

#include <random>

#include "backend/blob/local_blob_store.h"
#include "cache/file_data_cache.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

// Blobs written through the write cache, collected and compacted.
class BlobCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_options.gc_grace_seconds = 0;
    ns_ = std::move(*NamespaceStore::Open(dir_.path() + "/ns", ns_options));
    blobs_ = std::move(*LocalBlobStore::Open(dir_.path() + "/data"));
    NewCache();
    BlobCollector::Options gc;
    gc.background = false;
    gc.on_deleted = [this](BlobId id) { cache_->ForgetBlob(id); };
    collector_ = std::make_unique<BlobCollector>(*ns_, *blobs_, gc);
  }
  // A fresh cache: what it reads comes from the namespace and the blobs.
  void NewCache() {
    cache_.reset();
    FileDataCacheOptions options;
    options.background_threads = false;
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
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> blobs_;
  std::unique_ptr<FileDataCache> cache_;
  std::unique_ptr<BlobCollector> collector_;
};

TEST_F(BlobCollectorTest, CompactionFreesBlobsKeptAliveByAFewLiveBytes) {
  InodeId f = NewFile("db");
  const uint64_t kSize = 16 << 20;
  std::string expected(kSize, '\0');
  std::mt19937 rng(11);
  // Rewritten at random, 4 KiB at a time, flushed often: every flush packs
  // scattered pages into a blob that later flushes mostly shadow.
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < 800; ++i) {
      uint64_t offset = (rng() % (kSize / 4096)) * 4096;
      std::string page(4096, static_cast<char>('a' + rng() % 26));
      expected.replace(offset, 4096, page);
      ASSERT_TRUE(cache_->Write(f, offset, page).ok());
    }
    ASSERT_TRUE(cache_->Flush(f).ok());
  }
  expected.resize(cache_->WithDirtySize(*ns_->GetAttr(f)).size);
  ASSERT_TRUE(collector_->CollectNow().ok());
  uint64_t before = blobs_->Usage()->used_bytes;
  absl::StatusOr<uint64_t> compacted = collector_->CompactNow();
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  EXPECT_GT(*compacted, 0u);
  ASSERT_TRUE(collector_->CollectNow().ok());  // grace period 0 here
  // Every blob left is more than half live, so blobs take at most twice
  // the file data (plus headers).
  uint64_t after = blobs_->Usage()->used_bytes;
  uint64_t live = ns_->Stats()->data_bytes;
  EXPECT_LT(after, before);
  EXPECT_LE(after, 2 * live + (64 << 10)) << "before " << before << ", live " << live;
  EXPECT_EQ(ReadAll(f), expected);
  NewCache();
  EXPECT_EQ(ReadAll(f), expected);
  absl::StatusOr<NamespaceCheckReport> check = ns_->Check();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
  // Nothing left that is mostly dead.
  EXPECT_TRUE(ns_->CompactionCandidates(10, 0.5)->empty());
}

TEST_F(BlobCollectorTest, DeletedBlobsAreCollected) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(200000, 'g')).ok());
  ASSERT_TRUE(cache_->Flush(f).ok());
  ASSERT_EQ(blobs_->Usage()->blob_count, 1u);
  ASSERT_TRUE(cache_->Write(f, 0, std::string(200000, 'h')).ok());  // overwrite
  ASSERT_TRUE(cache_->Flush(f).ok());
  ASSERT_TRUE(collector_->CollectNow().ok());
  EXPECT_EQ(blobs_->Usage()->blob_count, 1u);
  EXPECT_EQ(ReadAll(f), std::string(200000, 'h'));
}

}  // namespace
}  // namespace cairn

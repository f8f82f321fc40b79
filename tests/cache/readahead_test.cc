#include "cache/readahead.h"

#include <sys/stat.h>

#include <chrono>
#include <random>
#include <thread>

#include "backend/blob/local_blob_store.h"
#include "cache/file_data_cache.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

TEST(ReadaheadWindowTest, GrowsForInOrderReadsAndStopsAtAJump) {
  TempDir dir;
  NamespaceOptions ns_options;
  ns_options.create_if_missing = true;
  auto ns = std::move(*NamespaceStore::Open(dir.path() + "/ns", ns_options));
  auto blobs = std::move(*LocalBlobStore::Open(dir.path() + "/data"));
  BlobReadCache cache(*ns, *blobs, 64 << 20);
  ReadaheadOptions options;
  options.max_window_bytes = 16 << 20;
  Readahead readahead(cache, options);
  const uint64_t kMiB = 1 << 20;
  EXPECT_EQ(readahead.Observe(9, 0, kMiB), 0u) << "one read is not a stream yet";
  EXPECT_EQ(readahead.Observe(9, kMiB, kMiB), 4 * kMiB);
  EXPECT_EQ(readahead.Observe(9, 2 * kMiB, kMiB), 8 * kMiB);
  EXPECT_EQ(readahead.Observe(9, 3 * kMiB, kMiB), 16 * kMiB);
  EXPECT_EQ(readahead.Observe(9, 4 * kMiB, kMiB), 16 * kMiB) << "capped";
  // The kernel's parallel readahead requests may arrive slightly reordered.
  EXPECT_GT(readahead.Observe(9, 6 * kMiB, kMiB), 0u);
  EXPECT_GT(readahead.Observe(9, 5 * kMiB, kMiB), 0u);
  EXPECT_EQ(readahead.Observe(9, 900 * kMiB, 4096), 0u) << "a jump ends the stream";
  EXPECT_EQ(readahead.Observe(9, 100 * kMiB, 4096), 0u);
  EXPECT_EQ(readahead.Observe(10, 0, kMiB), 0u) << "streams are per file";
  // Read again from the start: a new stream, not a jump for ever.
  EXPECT_EQ(readahead.Observe(9, 0, kMiB), 0u);
  EXPECT_EQ(readahead.Observe(9, kMiB, kMiB), 4 * kMiB) << "a second pass is not a stream";
}

class ReadaheadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_ = std::move(*NamespaceStore::Open(dir_.path() + "/ns", ns_options));
    blobs_ = std::move(*LocalBlobStore::Open(dir_.path() + "/data"));
    NewNode node;
    node.mode = S_IFREG | 0644;
    file_ = ns_->MakeNode(kRootInode, "f", node, {})->ino;
    content_.resize(6 * kMaxBlobBytes);
    std::mt19937 rng(3);
    for (char& c : content_) c = static_cast<char>(rng());
    auto writer = NewCache();
    for (uint64_t off = 0; off < content_.size(); off += 1 << 20) {
      ASSERT_TRUE(writer->Write(file_, off, std::string_view(content_).substr(off, 1 << 20)).ok());
    }
    ASSERT_TRUE(writer->FlushAll().ok());
  }
  std::unique_ptr<FileDataCache> NewCache() {
    FileDataCacheOptions options;
    options.background_threads = false;
    return std::make_unique<FileDataCache>(*ns_, *blobs_, options);
  }
  static bool WaitFor(const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  TempDir dir_;
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> blobs_;
  InodeId file_ = 0;
  std::string content_;
};

TEST_F(ReadaheadCacheTest, SequentialReaderFindsTheNextBlobAlreadyLoaded) {
  auto cache = NewCache();
  const uint64_t kMiB = 1 << 20;
  ASSERT_EQ(*cache->Read(file_, 0, kMiB), content_.substr(0, kMiB));
  ASSERT_EQ(*cache->Read(file_, kMiB, kMiB), content_.substr(kMiB, kMiB));
  ASSERT_TRUE(WaitFor([&] { return cache->GetStats().readahead_prefetched >= 1; }))
      << "the second in-order read should prefetch the next blob";
  uint64_t misses = cache->GetStats().read_cache_misses;
  ASSERT_EQ(*cache->Read(file_, kMaxBlobBytes, kMiB), content_.substr(kMaxBlobBytes, kMiB));
  EXPECT_EQ(cache->GetStats().read_cache_misses, misses)
      << "the reader had to load a blob that readahead should have loaded";
  // Reading on to the end returns the right bytes, prefetched or not.
  for (uint64_t off = kMaxBlobBytes + kMiB; off < content_.size(); off += kMiB) {
    ASSERT_EQ(*cache->Read(file_, off, kMiB), content_.substr(off, kMiB)) << off;
  }
  EXPECT_GE(cache->GetStats().readahead_sequential_reads, 20u);
}

TEST_F(ReadaheadCacheTest, RandomReaderPrefetchesNothing) {
  auto cache = NewCache();
  std::mt19937 rng(8);
  uint64_t previous = 1ull << 40;
  for (int i = 0; i < 50; ++i) {
    uint64_t off;
    do {  // truly random access: never next to the previous read
      off = rng() % (content_.size() - 4096) / 4096 * 4096;
    } while (off + (64 << 10) > previous && off < previous + (64 << 10));
    previous = off;
    ASSERT_EQ(*cache->Read(file_, off, 4096), content_.substr(off, 4096));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cache->GetStats().readahead_prefetched, 0u);
  // Each read fetched only the chunks under it, not a whole 4 MiB blob.
  EXPECT_EQ(cache->GetStats().read_cache_misses, 0u);
  EXPECT_GE(cache->GetStats().ranged_reads, 50u);
}

}  // namespace
}  // namespace cairn

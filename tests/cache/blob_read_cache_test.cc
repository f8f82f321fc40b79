#include "cache/blob_read_cache.h"

#include <atomic>

#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

// Reads that fail, each after `delay` of the clock (a remote whose retries
// run out), or pass through while `failing` is false.
class FailingReads final : public BlobStore {
 public:
  FailingReads(BlobStore& base, FakeClock& clock) : base_(base), clock_(clock) {}
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override {
    return base_.Put(id, data);
  }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override {
    reads++;
    if (!failing) return base_.Read(id, offset, length);
    clock_.Advance(delay);
    return FsError(FsErrorKind::kIo, "the bucket did not answer");
  }
  absl::Status Delete(BlobId id) override { return base_.Delete(id); }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return base_.ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override { return base_.Usage(); }

  std::atomic<int> reads{0};
  std::atomic<bool> failing{true};
  absl::Duration delay = absl::Seconds(30);

 private:
  BlobStore& base_;
  FakeClock& clock_;
};

class BlobReadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
        NamespaceStore::Open(dir_.path() + "/ns", ns_options);
    ASSERT_TRUE(ns.ok()) << ns.status();
    ns_ = std::move(*ns);
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> blobs =
        LocalBlobStore::Open(dir_.path() + "/data");
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    id_ = WriteFileAsOneBlob(*ns_, *blobs_, "f", data_);
    failing_ = std::make_unique<FailingReads>(*blobs_, clock_);
    cache_ = std::make_unique<BlobReadCache>(*ns_, *failing_, 64 << 20, &clock_);
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> blobs_;
  std::unique_ptr<FailingReads> failing_;
  std::unique_ptr<BlobReadCache> cache_;
  const std::string data_ = std::string(100000, 'd');
  BlobId id_ = 0;
};

// The kernel asks again at once for a read that failed: the second asking
// gets the error at once rather than after the retries again; once the
// error is older than kFailureKept, the blob is read again.
TEST_F(BlobReadCacheTest, ASlowFailureIsAnsweredAgainBrieflyWithoutARead) {
  EXPECT_EQ(GetFsErrorKind(cache_->Get(id_).status()), FsErrorKind::kIo);
  EXPECT_EQ(failing_->reads, 1);
  EXPECT_EQ(GetFsErrorKind(cache_->Get(id_).status()), FsErrorKind::kIo);
  EXPECT_FALSE(cache_->Warm(id_));
  EXPECT_EQ(failing_->reads, 1) << "read again within the kept time";

  failing_->failing = false;
  clock_.Advance(BlobReadCache::kFailureKept);
  absl::StatusOr<std::shared_ptr<const std::string>> read = cache_->Get(id_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(**read, data_);
  EXPECT_EQ(failing_->reads, 2);
}

// The same for a range read straight from the store (random access), and
// a failure of either kind answers the other.
TEST_F(BlobReadCacheTest, ASlowlyFailedRangeIsAnsweredAgainBrieflyWithoutARead) {
  EXPECT_EQ(GetFsErrorKind(cache_->ReadRange(id_, 4096, 4096).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(cache_->ReadRange(id_, 0, 4096).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(cache_->Get(id_).status()), FsErrorKind::kIo);
  EXPECT_EQ(failing_->reads, 1);

  failing_->failing = false;
  clock_.Advance(BlobReadCache::kFailureKept);
  absl::StatusOr<std::string> range = cache_->ReadRange(id_, 4096, 4096);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(*range, data_.substr(4096, 4096));
  EXPECT_FALSE(cache_->Contains(id_)) << "a range read is not kept";
}

// A failure that came quickly (a damaged copy, a refused connection) costs
// little to ask again, and a repair may have fixed it: never kept.
TEST_F(BlobReadCacheTest, AQuickFailureIsNotKept) {
  failing_->delay = absl::Milliseconds(10);
  EXPECT_FALSE(cache_->Get(id_).ok());
  failing_->failing = false;
  absl::StatusOr<std::shared_ptr<const std::string>> read = cache_->Get(id_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(failing_->reads, 2);
}

// Forget (the blob was rewritten or deleted) drops a kept failure too.
TEST_F(BlobReadCacheTest, ForgetDropsAKeptFailure) {
  EXPECT_FALSE(cache_->Get(id_).ok());
  failing_->failing = false;
  cache_->Forget(id_);
  EXPECT_TRUE(cache_->Get(id_).ok());
  EXPECT_EQ(failing_->reads, 2);
}

}  // namespace
}  // namespace cairn

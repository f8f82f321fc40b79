#include "cache/blob_stream_writer.h"

#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "gtest/gtest.h"
#include "tests/support/fault_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

// A blob store whose Puts wait while the gate is closed, may fail, and are
// counted (how many at once at most).
class GatedStore final : public BlobStore {
 public:
  explicit GatedStore(BlobStore& inner) : inner_(inner) {}
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override {
    {
      absl::MutexLock lock(&mu_);
      ++putting_;
      most_at_once_ = std::max(most_at_once_, putting_);
      mu_.Await(absl::Condition(&open_));
    }
    absl::StatusOr<BlobInfo> put = FsError(FsErrorKind::kNoSpace, "the test's full disk");
    if (!fail_) put = inner_.Put(id, data);
    absl::MutexLock lock(&mu_);
    --putting_;
    return put;
  }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override {
    return inner_.Read(id, offset, length);
  }
  absl::Status Delete(BlobId id) override { return inner_.Delete(id); }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return inner_.ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override { return inner_.Usage(); }

  void SetOpen(bool open) {
    absl::MutexLock lock(&mu_);
    open_ = open;
  }
  void AwaitPutting(int count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return putting_ >= count; };
    mu_.Await(absl::Condition(&enough));
  }
  int most_at_once() {
    absl::MutexLock lock(&mu_);
    return most_at_once_;
  }
  std::atomic<bool> fail_{false};

 private:
  BlobStore& inner_;
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int putting_ ABSL_GUARDED_BY(mu_) = 0;
  int most_at_once_ ABSL_GUARDED_BY(mu_) = 0;
};

class BlobStreamWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_ = std::move(*NamespaceStore::Open(dir_.path() + "/ns", ns_options));
    local_ = std::move(*LocalBlobStore::Open(dir_.path() + "/data", &env_));
    blobs_ = std::make_unique<GatedStore>(*local_);
    NewNode node;
    node.mode = S_IFREG | 0644;
    ino_ = ns_->MakeNode(kRootInode, "f", node, {})->ino;
  }
  void TearDown() override { blobs_->SetOpen(true); }

  std::unique_ptr<BlobStreamWriter> Writer() {
    return std::make_unique<BlobStreamWriter>(*ns_, *blobs_, ino_, BlobStreamWriter::Options{});
  }
  // The file's bytes as its committed extents say.
  std::string Committed() {
    absl::StatusOr<InodeAttr> attr = ns_->GetAttr(ino_);
    EXPECT_TRUE(attr.ok());
    std::string out(attr->size, '\0');
    absl::StatusOr<std::vector<Extent>> extents = ns_->GetExtents(ino_, 0, attr->size);
    EXPECT_TRUE(extents.ok());
    for (const Extent& e : *extents) {
      std::string bytes = e.blob_id == kNoBlob ? e.inline_data
                                               : *local_->Read(e.blob_id, e.blob_offset, e.length);
      std::copy(bytes.begin(), bytes.end(), out.begin() + e.file_offset);
    }
    return out;
  }
  size_t StoredBlobs() { return local_->ListIds(0)->size(); }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> local_;
  std::unique_ptr<GatedStore> blobs_;
  InodeId ino_ = 0;
};

TEST_F(BlobStreamWriterTest, AFileIsCutIntoWholeBlobsAsItComesAndASmallOneIsInline) {
  std::string data = std::string(9 << 20, 'a') + "tail";
  data[5 << 20] = 'b';
  std::unique_ptr<BlobStreamWriter> writer = Writer();
  // Appended in odd pieces, as a network gives them.
  for (size_t at = 0; at < data.size(); at += 333333) {
    ASSERT_TRUE(writer->Append(std::string_view(data).substr(at, 333333)).ok());
  }
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(writer->size(), data.size());
  EXPECT_TRUE(Committed() == data);
  absl::StatusOr<std::vector<Extent>> extents = ns_->GetExtents(ino_, 0, data.size());
  ASSERT_EQ(extents->size(), 3u);
  EXPECT_EQ((*extents)[0].length, kMaxBlobBytes);
  EXPECT_EQ((*extents)[1].length, kMaxBlobBytes);
  EXPECT_EQ(StoredBlobs(), 3u);

  NewNode node;
  node.mode = S_IFREG | 0644;
  ino_ = ns_->MakeNode(kRootInode, "small", node, {})->ino;
  writer = Writer();
  ASSERT_TRUE(writer->Append("a small object").ok());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(Committed(), "a small object");
  EXPECT_EQ(StoredBlobs(), 3u) << "a small file costs no blob";
}

TEST_F(BlobStreamWriterTest, AtMostTwoBlobsAreStoredAtOnceWhileTheNextFills) {
  blobs_->SetOpen(false);
  std::unique_ptr<BlobStreamWriter> writer = Writer();
  std::atomic<uint64_t> appended{0};
  std::thread appender([&] {
    const std::string blob(kMaxBlobBytes, 'x');
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(writer->Append(blob).ok());
      appended += blob.size();
    }
    ASSERT_TRUE(writer->Finish().ok());
  });
  blobs_->AwaitPutting(2);
  absl::SleepFor(absl::Milliseconds(50));
  // Two blobs held in their stores; the third, full, waits for one of them.
  EXPECT_EQ(appended.load(), 2 * kMaxBlobBytes);
  blobs_->SetOpen(true);
  appender.join();
  EXPECT_EQ(blobs_->most_at_once(), 2);
  EXPECT_EQ(Committed(), std::string(6 * kMaxBlobBytes, 'x'));
}

TEST_F(BlobStreamWriterTest, AFailedStoreIsReportedAndTheWriterStops) {
  blobs_->fail_ = true;
  std::unique_ptr<BlobStreamWriter> writer = Writer();
  absl::Status status;
  for (int i = 0; i < 8 && status.ok(); ++i) status = writer->Append(std::string(kMaxBlobBytes, 'y'));
  if (status.ok()) status = writer->Finish();
  EXPECT_EQ(GetFsErrorKind(status), FsErrorKind::kNoSpace) << status;
  EXPECT_EQ(ns_->GetAttr(ino_)->size, 0u);
  EXPECT_FALSE(writer->Finish().ok());
}

TEST_F(BlobStreamWriterTest, AnAbandonedWriterCommitsNothingMoreAndDeletesWhatItStored) {
  std::unique_ptr<BlobStreamWriter> writer = Writer();
  ASSERT_TRUE(writer->Append(std::string(kMaxBlobBytes, 'c')).ok());
  // The first blob's store has begun; wait until it is committed.
  for (int i = 0; i < 5000 && ns_->GetAttr(ino_)->size == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(ns_->GetAttr(ino_)->size, kMaxBlobBytes);
  blobs_->SetOpen(false);
  ASSERT_TRUE(writer->Append(std::string(kMaxBlobBytes, 'd')).ok());
  blobs_->AwaitPutting(1);
  // The body fails while the second blob is being stored: dropped unfinished.
  std::thread drop([&] { writer.reset(); });
  absl::SleepFor(absl::Milliseconds(20));
  blobs_->SetOpen(true);
  drop.join();
  EXPECT_EQ(ns_->GetAttr(ino_)->size, kMaxBlobBytes) << "a blob was committed after the drop";
  EXPECT_EQ(StoredBlobs(), 1u) << "the blob stored after the drop was not deleted";
}

}  // namespace
}  // namespace cairn

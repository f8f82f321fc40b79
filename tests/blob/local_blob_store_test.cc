#include "backend/blob/local_blob_store.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "gtest/gtest.h"
#include "tests/support/fault_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) >> 3);
  return s;
}

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = LocalBlobStore::Open(dir_.path() + "/data", &env_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string PathOf(BlobId id) {
    return absl::StrFormat("%s/data/%02x/%016x.blob", dir_.path(), id & 0xff, id);
  }
  size_t FileCount() {
    size_t n = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir_.path() + "/data")) {
      if (e.is_regular_file()) ++n;
    }
    return n;
  }
  void FlipByte(BlobId id, size_t offset) {
    std::fstream f(PathOf(id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c;
    f.get(c);
    f.seekp(offset);
    f.put(static_cast<char>(c ^ 0x40));
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
  std::unique_ptr<LocalBlobStore> store_;
};

TEST_F(LocalBlobStoreTest, RoundTripAndRanges) {
  std::string data = Pattern(1 << 20, 1);
  auto info = store_->Put(7, data);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->length, data.size());
  EXPECT_EQ(*store_->Read(7, 0, data.size()), data);
  EXPECT_EQ(*store_->Read(7, 1000, 10), data.substr(1000, 10));
  EXPECT_EQ(GetFsErrorKind(store_->Read(7, data.size() - 5, 10).status()),
            FsErrorKind::kInvalid);
  EXPECT_EQ(store_->Usage()->blob_count, 1u);
}

TEST_F(LocalBlobStoreTest, PutIsSyncedBeforeReturning) {
  int syncs = env_.syncs;
  ASSERT_TRUE(store_->Put(1, "x").ok());
  EXPECT_GT(env_.syncs.load(), syncs);
}

TEST_F(LocalBlobStoreTest, FailedWriteLeavesNoFile) {
  env_.fail_write_number = env_.writes + 1;  // the one write of header and data
  auto info = store_->Put(3, Pattern(5000, 3));
  EXPECT_EQ(GetFsErrorKind(info.status()), FsErrorKind::kIo);
  EXPECT_EQ(FileCount(), 0u);
}

TEST_F(LocalBlobStoreTest, FailedSyncIsReportedAndLeavesNoFile) {
  env_.fail_sync_number = env_.syncs + 1;
  auto info = store_->Put(4, Pattern(5000, 4));
  EXPECT_EQ(GetFsErrorKind(info.status()), FsErrorKind::kIo);
  EXPECT_EQ(FileCount(), 0u);
  // The next attempt really writes.
  EXPECT_TRUE(store_->Put(4, Pattern(5000, 4)).ok());
}

TEST_F(LocalBlobStoreTest, DiskFullIsNoSpaceAndOlderBlobsStayIntact) {
  std::string old_data = Pattern(10000, 5);
  ASSERT_TRUE(store_->Put(5, old_data).ok());
  env_.space_left = 3000;
  auto info = store_->Put(6, Pattern(10000, 6));
  EXPECT_EQ(GetFsErrorKind(info.status()), FsErrorKind::kNoSpace);
  EXPECT_FALSE(std::filesystem::exists(PathOf(6)));
  EXPECT_EQ(*store_->Read(5, 0, old_data.size()), old_data);
  env_.space_left = -1;
  EXPECT_TRUE(store_->Put(6, Pattern(10000, 6)).ok());
}

TEST_F(LocalBlobStoreTest, CorruptDataByteIsDetected) {
  ASSERT_TRUE(store_->Put(8, Pattern(4096, 8)).ok());
  FlipByte(8, 40 + 1234);
  EXPECT_EQ(GetFsErrorKind(store_->Read(8, 0, 10).status()), FsErrorKind::kIo);
}

TEST_F(LocalBlobStoreTest, CorruptHeaderAndBadMagicAreDetected) {
  ASSERT_TRUE(store_->Put(9, Pattern(100, 9)).ok());
  FlipByte(9, 20);  // inside the blob id
  EXPECT_EQ(GetFsErrorKind(store_->Read(9, 0, 10).status()), FsErrorKind::kIo);
  ASSERT_TRUE(store_->Put(10, Pattern(100, 10)).ok());
  FlipByte(10, 0);
  EXPECT_EQ(GetFsErrorKind(store_->Read(10, 0, 10).status()), FsErrorKind::kIo);
}

TEST_F(LocalBlobStoreTest, TruncatedBlobIsRejected) {
  ASSERT_TRUE(store_->Put(11, Pattern(4096, 11)).ok());
  std::filesystem::resize_file(PathOf(11), 2000);
  EXPECT_EQ(GetFsErrorKind(store_->Read(11, 0, 10).status()), FsErrorKind::kIo);
  std::filesystem::resize_file(PathOf(11), 10);
  EXPECT_EQ(GetFsErrorKind(store_->Read(11, 0, 10).status()), FsErrorKind::kIo);
}

TEST_F(LocalBlobStoreTest, BlobFileOfAnotherIdIsRejected) {
  ASSERT_TRUE(store_->Put(12, Pattern(100, 12)).ok());
  ASSERT_TRUE(store_->Put(13, Pattern(100, 13)).ok());
  std::filesystem::copy_file(PathOf(12), PathOf(13),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(GetFsErrorKind(store_->Read(13, 0, 10).status()), FsErrorKind::kIo);
}

TEST_F(LocalBlobStoreTest, DeleteIsIdempotentAndUsageIsCountedAtOpen) {
  ASSERT_TRUE(store_->Put(14, Pattern(100, 14)).ok());
  ASSERT_TRUE(store_->Put(15, Pattern(200, 15)).ok());
  ASSERT_TRUE(store_->Delete(14).ok());
  ASSERT_TRUE(store_->Delete(14).ok());
  auto reopened = LocalBlobStore::Open(dir_.path() + "/data");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Usage()->blob_count, 1u);
  // 200 bytes of data, the 40-byte header, one chunk checksum and the
  // table's checksum.
  EXPECT_EQ((*reopened)->Usage()->used_bytes, 248u);
}

TEST_F(LocalBlobStoreTest, RangedReadVerifiesOnlyTheChunksItTouches) {
  const size_t kChunk = 64 << 10;
  std::string data = Pattern(4 << 20, 21);
  ASSERT_TRUE(store_->Put(21, data).ok());
  const size_t data_offset = 40 + 4 * 64 + 4;
  FlipByte(21, data_offset + 3 * kChunk + 77);  // inside chunk 3
  // Reads elsewhere are served (and verified) without touching chunk 3.
  absl::StatusOr<std::string> early = store_->Read(21, 100, 5000);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(*early, data.substr(100, 5000));
  absl::StatusOr<std::string> across = store_->Read(21, kChunk - 10, 20);
  ASSERT_TRUE(across.ok()) << across.status();
  EXPECT_EQ(*across, data.substr(kChunk - 10, 20));
  // Any read touching chunk 3, and the whole blob, fail.
  EXPECT_EQ(GetFsErrorKind(store_->Read(21, 3 * kChunk + 70, 10).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(store_->Read(21, 2 * kChunk, 2 * kChunk).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(store_->Read(21, 0, data.size()).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(store_->Read(21, data.size() - 5, 10).status()), FsErrorKind::kInvalid);
}

TEST_F(LocalBlobStoreTest, VersionOneBlobFilesAreStillRead) {
  // What cairn wrote before per-chunk checksums: header, then the data.
  std::string data = Pattern(3000, 22);
  std::string file = "CAIRNBLB";
  PutFixed32(&file, 1);
  PutFixed32(&file, 0);
  PutFixed64(&file, 22);
  PutFixed64(&file, data.size());
  PutFixed32(&file, Crc32c(data));
  PutFixed32(&file, Crc32c(file));
  file += data;
  std::filesystem::create_directories(std::filesystem::path(PathOf(22)).parent_path());
  std::ofstream(PathOf(22), std::ios::binary) << file;
  absl::StatusOr<std::string> read = store_->Read(22, 10, 100);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data.substr(10, 100));
  FlipByte(22, 40 + 2500);
  EXPECT_EQ(GetFsErrorKind(store_->Read(22, 10, 100).status()), FsErrorKind::kIo)
      << "version 1 verifies the whole data on every read";
}

}  // namespace
}  // namespace cairn

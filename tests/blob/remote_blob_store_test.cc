// Blobs as S3 objects (s3rver on 127.0.0.1): ranged reads verify every
// chunk, and a damaged or foreign object is an error, never wrong bytes.
#include "backend/blob/remote_blob_store.h"
#include "backend/s3/s3_client.h"

#include <gtest/gtest.h>

#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"

namespace cairn {
namespace {

const std::string kVolume = "0123456789abcdef0123456789abcdef";

class RemoteBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = S3rver::Start("tier", &why);
    if (!server_) GTEST_SKIP() << why;
    s3::S3Options options;
    options.endpoint = server_->endpoint();
    options.bucket = "tier";
    options.credentials = {S3rver::kAccessKey, S3rver::kSecretKey, ""};
    client_ = std::move(*s3::S3Client::Create(options));
    store_ = std::make_unique<RemoteBlobStore>(*client_, "cairn/", kVolume);
  }

  std::unique_ptr<S3rver> server_;
  std::unique_ptr<s3::S3Client> client_;
  std::unique_ptr<RemoteBlobStore> store_;
};

TEST_F(RemoteBlobStoreTest, PutReadRangesVerifyListDelete) {
  std::string data = RandomBytes(3 << 20, 1);
  absl::StatusOr<BlobInfo> info = store_->Put(0x1234, data);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->crc32c, Crc32c(data));
  EXPECT_EQ(store_->KeyOf(0x1234), "cairn/" + kVolume + "/blobs/34/0000000000001234");
  for (auto [offset, length] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, data.size()}, {0, 1}, {65535, 2}, {1 << 20, 300000}, {data.size() - 1, 1}}) {
    absl::StatusOr<std::string> got = store_->Read(0x1234, offset, length);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, data.substr(offset, length)) << offset;
  }
  EXPECT_EQ(GetFsErrorKind(store_->Read(0x1234, data.size(), 1).status()), FsErrorKind::kInvalid);
  EXPECT_TRUE(store_->Verify(0x1234, data.size(), Crc32c(data)).ok());
  EXPECT_FALSE(store_->Verify(0x1234, data.size(), Crc32c(data) ^ 1).ok());
  ASSERT_TRUE(store_->Put(7, "small").ok());
  EXPECT_EQ(*store_->Read(7, 1, 3), "mal");
  EXPECT_EQ(*store_->ListIds(0), (std::vector<BlobId>{7, 0x1234}));
  EXPECT_EQ(*store_->ListIds(8), std::vector<BlobId>{0x1234});
  ASSERT_TRUE(store_->Delete(0x1234).ok());
  EXPECT_FALSE(store_->Read(0x1234, 0, 1).ok());
  EXPECT_EQ(*store_->ListIds(0), std::vector<BlobId>{7});
}

TEST_F(RemoteBlobStoreTest, DamagedOrForeignObjectsAreErrorsNeverWrongBytes) {
  std::string data = RandomBytes(200000, 2);
  ASSERT_TRUE(store_->Put(9, data).ok());
  // The remote flips a byte in the data.
  std::string object = *client_->GetObject(store_->KeyOf(9));
  object[object.size() - 1000] ^= 0x40;
  ASSERT_TRUE(client_->PutObject(store_->KeyOf(9), object).ok());
  RemoteBlobStore fresh(*client_, "cairn/", kVolume);  // no cached header
  absl::StatusOr<std::string> got = fresh.Read(9, 0, data.size());
  EXPECT_EQ(GetFsErrorKind(got.status()), FsErrorKind::kIo) << got.status();
  EXPECT_TRUE(fresh.Read(9, 0, 1000).ok()) << "chunks that are intact still read";
  EXPECT_FALSE(fresh.Verify(9, data.size(), Crc32c(data)).ok());
  // An object of another volume (or blob) under this key.
  RemoteBlobStore other(*client_, "cairn/", std::string(32, 'f'));
  ASSERT_TRUE(other.Put(10, "theirs").ok());
  ASSERT_TRUE(client_->PutObject(store_->KeyOf(10), *client_->GetObject(other.KeyOf(10))).ok());
  EXPECT_EQ(GetFsErrorKind(fresh.Read(10, 0, 6).status()), FsErrorKind::kIo);
  EXPECT_FALSE(fresh.Verify(10, 6, Crc32c("theirs")).ok());
  // Cut short.
  ASSERT_TRUE(store_->Put(11, data).ok());
  std::string whole = *client_->GetObject(store_->KeyOf(11));
  ASSERT_TRUE(client_->PutObject(store_->KeyOf(11), whole.substr(0, whole.size() - 10)).ok());
  EXPECT_FALSE(fresh.Read(11, 0, data.size()).ok());
  EXPECT_FALSE(fresh.Verify(11, data.size(), Crc32c(data)).ok());
}

}  // namespace
}  // namespace cairn

// Blobs as objects in the tests' in-memory bucket: a GET that comes back
// damaged or short while reporting success is an error (kIo), never other
// bytes, and Verify refuses every object that is not the blob recorded.
#include "backend/blob/remote_blob_store.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/random_bytes.h"

namespace cairn {
namespace {

const std::string kVolume = "0123456789abcdef0123456789abcdef";
using BodyDamage = FakeObjectStore::BodyDamage;

struct Shape {
  uint64_t offset, length;
};

// Reads that take each path of RemoteBlobStore::ReadChecked on a 1 MiB
// blob: header and data in one GET (near the start), header then data
// (further in), one chunk, several, the ends.
std::vector<Shape> ReadShapes(uint64_t size) {
  return {{0, size},       {0, 1},          {10, 100},        {65535, 2},
          {70000, 100},    {250000, 100},   {300000, 200000}, {600000, 100},
          {600000, 70000}, {size - 1, 1},   {0, 2 * kShardChunkBytes}};
}

class RemoteBlobStoreFakeTest : public ::testing::Test {
 protected:
  // A store with nothing cached, as after a restart.
  std::unique_ptr<RemoteBlobStore> Fresh() {
    return std::make_unique<RemoteBlobStore>(bucket_, "cairn/", kVolume);
  }

  // Reads `shape` of blob `id` through `store` with every GET damaged:
  // either an error of kind kIo or exactly the right bytes. Returns whether
  // it was an error.
  bool ReadDamaged(RemoteBlobStore& store, BlobId id, const std::string& data, Shape shape,
                   BodyDamage damage) {
    bucket_.DamageNextGets(1 << 20, damage);
    absl::StatusOr<std::string> got = store.Read(id, shape.offset, shape.length);
    bucket_.ClearFaults();
    if (got.ok()) {
      EXPECT_EQ(got->size(), shape.length) << "a read of fewer bytes than asked";
      EXPECT_TRUE(*got == data.substr(shape.offset, shape.length)) << "other bytes";
    } else {
      EXPECT_EQ(GetFsErrorKind(got.status()), FsErrorKind::kIo) << got.status();
    }
    // Nothing damaged stays behind (a cached header): the next read is right.
    absl::StatusOr<std::string> again = store.Read(id, shape.offset, shape.length);
    EXPECT_TRUE(again.ok() && *again == data.substr(shape.offset, shape.length))
        << again.status();
    return !got.ok();
  }

  FakeObjectStore bucket_;
  RemoteBlobStore store_{bucket_, "cairn/", kVolume};
};

TEST_F(RemoteBlobStoreFakeTest, ADamagedByteInAGetIsAnErrorNeverOtherBytes) {
  std::string data = RandomBytes(1 << 20, 1);
  ASSERT_TRUE(store_.Put(5, data).ok());
  for (Shape shape : ReadShapes(data.size())) {
    SCOPED_TRACE(absl::StrCat("read ", shape.length, " at ", shape.offset));
    // Cold, the damaged byte may land in bytes the read does not use.
    ReadDamaged(*Fresh(), 5, data, shape, BodyDamage::kFlipByte);
    // Warm (the header cached), every byte fetched is a byte checked.
    std::unique_ptr<RemoteBlobStore> warm = Fresh();
    ASSERT_TRUE(warm->Read(5, 0, 1).ok());
    EXPECT_TRUE(ReadDamaged(*warm, 5, data, shape, BodyDamage::kFlipByte));
  }
}

// Rot at rest in the bucket, a byte flipped at 50 seeded positions of the
// object: every read is the right bytes or EIO, and Verify (what the tier
// checks before freeing local data, and restore --verify) refuses it.
TEST_F(RemoteBlobStoreFakeTest, AByteFlippedAtRestAnywhereIsRefusedOrReadRight) {
  std::string data = RandomBytes(1 << 20, 12);
  ASSERT_TRUE(store_.Put(12, data).ok());
  const std::string key = store_.KeyOf(12);
  const std::string whole = *bucket_.Object(key);
  std::mt19937_64 random(12);
  for (int round = 0; round < 50; ++round) {
    const size_t position = random() % whole.size();
    std::string damaged = whole;
    damaged[position] ^= static_cast<char>(1 << (random() % 8));
    bucket_.SetObject(key, damaged);
    SCOPED_TRACE(absl::StrCat("byte ", position, " of ", whole.size()));
    EXPECT_EQ(GetFsErrorKind(store_.Verify(12, data.size(), Crc32c(data))), FsErrorKind::kIo);
    for (Shape shape : ReadShapes(data.size())) {
      absl::StatusOr<std::string> got = Fresh()->Read(12, shape.offset, shape.length);
      if (got.ok()) {
        EXPECT_TRUE(*got == data.substr(shape.offset, shape.length))
            << "other bytes for " << shape.length << " at " << shape.offset;
      } else {
        EXPECT_EQ(GetFsErrorKind(got.status()), FsErrorKind::kIo) << got.status();
      }
    }
  }
  bucket_.SetObject(key, whole);
  EXPECT_TRUE(store_.Verify(12, data.size(), Crc32c(data)).ok());
}

TEST_F(RemoteBlobStoreFakeTest, AShortBodyOfOneChunkOrLessIsAnErrorNeverFewerBytes) {
  std::string data = RandomBytes(1 << 20, 2);
  ASSERT_TRUE(store_.Put(6, data).ok());
  // Halving a fetch of one chunk or less cuts a chunk, whose checksum
  // then fails.
  for (Shape shape : std::vector<Shape>{{10, 100}, {65535, 1}, {70000, 100}, {600000, 100},
                                        {data.size() - 1, 1}}) {
    SCOPED_TRACE(absl::StrCat("read ", shape.length, " at ", shape.offset));
    ReadDamaged(*Fresh(), 6, data, shape, BodyDamage::kShortBody);
    std::unique_ptr<RemoteBlobStore> warm = Fresh();
    ASSERT_TRUE(warm->Read(6, 0, 1).ok());
    EXPECT_TRUE(ReadDamaged(*warm, 6, data, shape, BodyDamage::kShortBody));
  }
}

// Chunks verify one by one, so a body cut at a chunk boundary passes every
// chunk check: without a length check the read returned fewer bytes as a
// success (65536 of 131072), and an empty body threw from substr.
TEST_F(RemoteBlobStoreFakeTest, AShortBodyOfWholeChunksIsAnErrorNeverFewerBytes) {
  std::string data = RandomBytes(1 << 20, 3);
  ASSERT_TRUE(store_.Put(7, data).ok());
  for (Shape shape : ReadShapes(data.size())) {
    SCOPED_TRACE(absl::StrCat("read ", shape.length, " at ", shape.offset));
    ReadDamaged(*Fresh(), 7, data, shape, BodyDamage::kShortBody);
    std::unique_ptr<RemoteBlobStore> warm = Fresh();
    ASSERT_TRUE(warm->Read(7, 0, 1).ok());
    ReadDamaged(*warm, 7, data, shape, BodyDamage::kShortBody);
  }
  // Nothing at all: chunk verification has nothing to refuse.
  std::unique_ptr<RemoteBlobStore> warm = Fresh();
  ASSERT_TRUE(warm->Read(7, 0, 1).ok());
  bucket_.SetBodyHook([](FakeObjectStore::Op, const std::string&, std::string* body) {
    body->clear();
  });
  absl::StatusOr<std::string> empty = warm->Read(7, 10, 100);
  bucket_.ClearFaults();
  EXPECT_EQ(GetFsErrorKind(empty.status()), FsErrorKind::kIo) << empty.status();
}

TEST_F(RemoteBlobStoreFakeTest, VerifyRefusesDamagedShortStaleAndForeignObjects) {
  std::string data = RandomBytes(300000, 4);
  ASSERT_TRUE(store_.Put(9, data).ok());
  ASSERT_TRUE(store_.Verify(9, data.size(), Crc32c(data)).ok());
  auto expect_refused = [&](BlobId id, uint64_t length, uint32_t crc, const char* why) {
    absl::Status verified = store_.Verify(id, length, crc);
    EXPECT_EQ(GetFsErrorKind(verified), FsErrorKind::kIo) << why << ": " << verified;
  };
  // On the way: a flipped byte, a body cut short.
  bucket_.DamageNextGets(1, BodyDamage::kFlipByte);
  expect_refused(9, data.size(), Crc32c(data), "a flipped byte");
  bucket_.DamageNextGets(1, BodyDamage::kShortBody);
  expect_refused(9, data.size(), Crc32c(data), "a short body");
  bucket_.SetBodyHook([](FakeObjectStore::Op, const std::string&, std::string* body) {
    body->resize(body->size() - 1);
  });
  expect_refused(9, data.size(), Crc32c(data), "one byte short");
  bucket_.ClearFaults();
  ASSERT_TRUE(store_.Verify(9, data.size(), Crc32c(data)).ok());

  // At rest: cut short.
  const std::string whole = *bucket_.Object(store_.KeyOf(9));
  bucket_.SetObject(store_.KeyOf(9), whole.substr(0, whole.size() - 10));
  expect_refused(9, data.size(), Crc32c(data), "truncated");
  EXPECT_EQ(GetFsErrorKind(Fresh()->Read(9, 0, data.size()).status()), FsErrorKind::kIo);
  bucket_.SetObject(store_.KeyOf(9), whole);

  // Stale: a well-formed object of this blob id with other bytes (an upload
  // of an earlier life of the id).
  std::string stale = RandomBytes(300000, 5);
  ASSERT_TRUE(store_.Put(9, stale).ok());
  expect_refused(9, data.size(), Crc32c(data), "stale");
  absl::StatusOr<std::string> read = Fresh()->ReadExpecting(9, 0, 100, data.size(), Crc32c(data));
  EXPECT_EQ(GetFsErrorKind(read.status()), FsErrorKind::kIo) << read.status();

  // Foreign: another volume's object, or another blob's, under this key.
  RemoteBlobStore other_volume(bucket_, "cairn/", std::string(32, 'f'));
  ASSERT_TRUE(other_volume.Put(10, "theirs").ok());
  bucket_.SetObject(store_.KeyOf(10), *bucket_.Object(other_volume.KeyOf(10)));
  expect_refused(10, 6, Crc32c("theirs"), "another volume's");
  EXPECT_EQ(GetFsErrorKind(Fresh()->Read(10, 0, 6).status()), FsErrorKind::kIo);
  ASSERT_TRUE(store_.Put(11, "eleven").ok());
  bucket_.SetObject(store_.KeyOf(12), *bucket_.Object(store_.KeyOf(11)));
  expect_refused(12, 6, Crc32c("eleven"), "another blob's");
  EXPECT_EQ(GetFsErrorKind(Fresh()->Read(12, 0, 6).status()), FsErrorKind::kIo);

  EXPECT_EQ(GetFsErrorKind(store_.Verify(13, 1, 0)), FsErrorKind::kNotFound) << "no object";
}

TEST_F(RemoteBlobStoreFakeTest, AListingThatFailsOnAPageIsAnErrorNotAShortList) {
  FakeObjectStore::Options options;
  options.page_entries = 2;
  FakeObjectStore bucket(options);
  RemoteBlobStore store(bucket, "cairn/", kVolume);
  for (BlobId id : {0x305, 0x104, 0x203, 0x2, 0x1}) ASSERT_TRUE(store.Put(id, "x").ok());
  bucket.SetObject("cairn/" + kVolume + "/blobs/zz/not-a-blob", "");
  EXPECT_EQ(*store.ListIds(0), (std::vector<BlobId>{0x1, 0x2, 0x104, 0x203, 0x305}));
  EXPECT_EQ(*store.ListIds(0x104), (std::vector<BlobId>{0x104, 0x203, 0x305}));
  for (int k = 0; k < 3; ++k) {
    bucket.FailAfter(k);
    absl::StatusOr<std::vector<BlobId>> listed = store.ListIds(0);
    EXPECT_EQ(GetFsErrorKind(listed.status()), FsErrorKind::kIo) << k;
    bucket.SetOutage(false);
  }
}

TEST_F(RemoteBlobStoreFakeTest, APutTheBucketRefusesLeavesNoObjectAndSendsTheChecksum) {
  bucket_.FailNext(1, FakeObjectStore::Fault::kSlowDown, FakeObjectStore::Op::kPut);
  EXPECT_FALSE(store_.Put(1, "data").ok());
  EXPECT_TRUE(bucket_.Keys().empty());
  // A body changed on the way is refused by the bucket's check of the
  // CRC32C the store sends with it.
  bucket_.SetBodyHook([](FakeObjectStore::Op op, const std::string&, std::string* body) {
    if (op == FakeObjectStore::Op::kPut) (*body)[body->size() / 2] ^= 0x10;
  });
  absl::StatusOr<BlobInfo> put = store_.Put(2, RandomBytes(100000, 6));
  EXPECT_EQ(GetFsErrorKind(put.status()), FsErrorKind::kIo) << put.status();
  EXPECT_TRUE(bucket_.Keys().empty());
}

}  // namespace
}  // namespace cairn

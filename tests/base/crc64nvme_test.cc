#include "backend/base/crc64nvme.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace cairn {
namespace {

TEST(Crc64NvmeTest, MatchesStandardCheckValue) {
  EXPECT_EQ(Crc64Nvme("123456789"), 0xAE8B14860A799888ull);
  EXPECT_EQ(internal::Crc64NvmeExtendPortable(0, "123456789"), 0xAE8B14860A799888ull);
  EXPECT_EQ(Crc64Nvme(""), 0u);
}

// The folding path starts at 128 bytes: every length around the block
// sizes, from every alignment, must agree with the tables.
TEST(Crc64NvmeTest, FastPathMatchesTablesAtEveryLengthAndAlignment) {
  std::mt19937_64 random(42);
  std::string data(4096 + 64, '\0');
  for (char& c : data) c = static_cast<char>(random());
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t length = 0; length <= 1100; ++length) {
      std::string_view view = std::string_view(data).substr(offset, length);
      ASSERT_EQ(Crc64Nvme(view), internal::Crc64NvmeExtendPortable(0, view))
          << "offset " << offset << " length " << length;
    }
  }
  EXPECT_EQ(Crc64Nvme(data), internal::Crc64NvmeExtendPortable(0, data));
}

TEST(Crc64NvmeTest, ExtendChainsLikeOneCall) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  uint64_t whole = Crc64Nvme(data);
  for (size_t cut : {0ul, 1ul, 7ul, 130ul, 4096ul, 99999ul}) {
    std::string_view view(data);
    EXPECT_EQ(Crc64NvmeExtend(Crc64Nvme(view.substr(0, cut)), view.substr(cut)), whole) << cut;
  }
}

// From a bit-at-a-time reference (the tests of the S3 header use it:
// base64 of the big-endian CRC is jSnVw/bqjr4=).
TEST(Crc64NvmeTest, MatchesBitwiseReferenceOfHelloWorld) {
  EXPECT_EQ(Crc64Nvme("hello world"), 0x8D29D5C3F6EA8EBEull);
}

// The value ceph/s3-tests' test_object_checksum_crc64nvme sends for 1024
// bytes 'A' (base64 Qeh8oXvGiSo=): long enough for the folding path.
TEST(Crc64NvmeTest, MatchesTheValueS3TestsSend) {
  EXPECT_EQ(Crc64Nvme(std::string(1024, 'A')), 0x41E87CA17BC6892Aull);
}

}  // namespace
}  // namespace cairn

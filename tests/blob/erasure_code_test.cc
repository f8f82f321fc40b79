#include "backend/blob/erasure_code.h"

#include <gtest/gtest.h>

#include <random>

#include "backend/base/crc32c.h"
#include "backend/blob/shard_format.h"
#include "tests/support/random_bytes.h"

namespace cairn {
namespace {

// Every set of up to M lost shards must decode to the original, for every
// payload shape (empty, shorter than K, not a multiple of K, large).
void ExpectEveryErasureDecodes(const Redundancy& r) {
  ShardCodec codec(r);
  const int n = r.total_shards();
  for (size_t size : {size_t{0}, size_t{1}, size_t{3}, size_t{4097}, size_t{1 << 20} + 5}) {
    std::string payload = RandomBytes(size, static_cast<uint32_t>(size));
    std::vector<std::string> shards = codec.Encode(payload);
    ASSERT_EQ(static_cast<int>(shards.size()), n);
    for (const std::string& shard : shards) ASSERT_EQ(shard.size(), codec.ShardBytes(size));
    for (int mask = 0; mask < (1 << n); ++mask) {
      if (__builtin_popcount(mask) > r.parity_shards) continue;
      std::vector<std::string> damaged = shards;
      std::vector<bool> present(n, true);
      for (int i = 0; i < n; ++i) {
        if (mask & (1 << i)) {
          damaged[i] = "garbage";  // whatever is there must not be used
          present[i] = false;
        }
      }
      ASSERT_TRUE(codec.Reconstruct(damaged, present).ok()) << r.ToString() << " mask " << mask;
      EXPECT_EQ(damaged, shards) << r.ToString() << " size " << size << " mask " << mask;
      EXPECT_EQ(ShardCodec::Join(std::move(damaged), r.data_shards, size), payload);
    }
  }
}

TEST(ErasureCodeTest, EveryErasureOfUpToTwoDecodesFor4Plus2) {
  ExpectEveryErasureDecodes(*ParseRedundancy("ec:4+2"));
}

TEST(ErasureCodeTest, EveryErasureOfUpToOneDecodesFor2Plus1) {
  ExpectEveryErasureDecodes(*ParseRedundancy("ec:2+1"));
}

TEST(ErasureCodeTest, CopiesAndWideSchemesDecode) {
  ExpectEveryErasureDecodes(*ParseRedundancy("copies:3"));
  ExpectEveryErasureDecodes(*ParseRedundancy("ec:6+3"));
  ExpectEveryErasureDecodes(*ParseRedundancy("plain"));
}

TEST(ErasureCodeTest, TooManyLostShardsIsAnErrorNotGarbage) {
  Redundancy r = *ParseRedundancy("ec:4+2");
  ShardCodec codec(r);
  std::vector<std::string> shards = codec.Encode(RandomBytes(1000, 1));
  std::vector<bool> present = {false, true, false, true, false, true};
  EXPECT_FALSE(codec.Reconstruct(shards, present).ok());
}

TEST(ErasureCodeTest, ParsesSchemesAndRefusesNonsense) {
  EXPECT_EQ(ParseRedundancy("ec:4+2")->ToString(), "ec:4+2");
  EXPECT_EQ(ParseRedundancy("copies:2")->ToString(), "copies:2");
  EXPECT_EQ(ParseRedundancy("plain")->ToString(), "plain");
  for (const char* bad : {"", "ec:", "ec:4", "ec:1+1", "ec:4+0", "ec:4+9", "copies:1",
                          "copies:x", "raid5", "ec:4+2x"}) {
    EXPECT_FALSE(ParseRedundancy(bad).ok()) << bad;
  }
  EXPECT_EQ(DefaultRedundancy(1).ToString(), "plain");
  EXPECT_EQ(DefaultRedundancy(2).ToString(), "copies:2");
  EXPECT_EQ(DefaultRedundancy(3).ToString(), "ec:2+1");
  EXPECT_EQ(DefaultRedundancy(5).ToString(), "ec:2+1");
  EXPECT_EQ(DefaultRedundancy(6).ToString(), "ec:4+2");
  EXPECT_EQ(DefaultRedundancy(9).ToString(), "ec:4+2");
  EXPECT_EQ(DefaultRedundancy(6).min_shards_for_write(), 5);
  EXPECT_EQ(DefaultRedundancy(1).min_shards_for_write(), 1);
}

TEST(ErasureCodeTest, Crc32cIsTheStandardCastagnoli) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
}

ShardHeader SampleHeader() {
  ShardHeader h;
  h.data_shards = 4;
  h.parity_shards = 2;
  h.index = 5;
  h.volume_id = std::string(32, 'a');
  h.blob_id = 77;
  h.blob_length = 200000;
  h.payload_length = 200000;
  h.shard_length = 50000;
  h.blob_crc32c = 1234;
  return h;
}

TEST(ShardFormatTest, RoundTripsAndVerifiesChunks) {
  ShardHeader h = SampleHeader();
  std::string data = RandomBytes(h.shard_length, 9);
  std::string file = EncodeShardHeader(&h, data) + data;
  absl::StatusOr<ShardHeader> decoded = DecodeShardHeader(file, "x");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->SameBlobAs(h));
  EXPECT_EQ(decoded->index, 5);
  EXPECT_EQ(decoded->data_offset, h.data_offset);
  EXPECT_TRUE(VerifyShardChunks(*decoded, 0, file.substr(decoded->data_offset), "x").ok());
  std::string flipped = data;
  flipped[40000] ^= 1;
  EXPECT_FALSE(VerifyShardChunks(*decoded, 0, flipped, "x").ok());
}

TEST(ShardFormatTest, EveryCorruptHeaderByteIsRejected) {
  ShardHeader h = SampleHeader();
  std::string data = RandomBytes(h.shard_length, 3);
  std::string header = EncodeShardHeader(&h, data);
  for (size_t i = 0; i < header.size(); ++i) {
    std::string bad = header + data;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeShardHeader(bad, "x").ok()) << "byte " << i;
  }
}

TEST(ShardFormatTest, TruncatedShardsAreRejected) {
  ShardHeader h = SampleHeader();
  std::string data = RandomBytes(h.shard_length, 4);
  std::string header = EncodeShardHeader(&h, data);
  for (size_t cut : {size_t{0}, size_t{10}, size_t{91}, header.size() - 1}) {
    EXPECT_FALSE(DecodeShardHeader(header.substr(0, cut), "x").ok()) << cut;
  }
  // Short data fails its chunk check.
  absl::StatusOr<ShardHeader> decoded = DecodeShardHeader(header, "x");
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(VerifyShardChunks(*decoded, 0, data.substr(0, data.size() - 1), "x").ok());
}

}  // namespace
}  // namespace cairn

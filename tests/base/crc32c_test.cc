#include "backend/base/crc32c.h"

#include "gtest/gtest.h"

namespace cairn {
namespace {

TEST(Crc32cTest, MatchesStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, ExtendChainsLikeOneCall) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  uint32_t whole = Crc32c(data);
  for (size_t cut : {0ul, 1ul, 7ul, 4096ul, 99999ul}) {
    std::string_view view(data);
    EXPECT_EQ(Crc32cExtend(Crc32c(view.substr(0, cut)), view.substr(cut)), whole)
        << cut;
  }
}

}  // namespace
}  // namespace cairn

#include "backend/base/large_buffer.h"

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace cairn {
namespace {

class LargeBufferTest : public ::testing::Test {
 protected:
  // Each test starts and ends with an empty pool.
  void SetUp() override { Drain(); }
  void TearDown() override { Drain(); }
  static void Drain() {
    TrimLargeBufferPool();
    TrimLargeBufferPool();
  }
};

TEST_F(LargeBufferTest, ABufferIsPageAlignedWritableAndAtLeastTheSizeAsked) {
  LargeBuffer buffer = AcquireLargeBuffer((4u << 20) + 4096);
  ASSERT_TRUE(buffer);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % 4096, 0u);
  EXPECT_GE(buffer.capacity(), (4u << 20) + 4096);
  memset(buffer.data(), 0xab, buffer.capacity());
  EXPECT_EQ(static_cast<unsigned char>(buffer.data()[buffer.capacity() - 1]), 0xab);
}

TEST_F(LargeBufferTest, AReleasedBufferIsReusedAndAnIdleOneIsUnmapped) {
  char* first = nullptr;
  {
    LargeBuffer buffer = AcquireLargeBuffer(4u << 20);
    first = buffer.data();
  }
  EXPECT_EQ(LargeBufferPoolBytes(), 4u << 20);
  {
    LargeBuffer again = AcquireLargeBuffer(3u << 20);  // fits the pooled one
    EXPECT_EQ(again.data(), first);
    EXPECT_EQ(LargeBufferPoolBytes(), 0u);
  }
  // One trim marks it idle, the next unmaps it.
  TrimLargeBufferPool();
  EXPECT_EQ(LargeBufferPoolBytes(), 4u << 20);
  TrimLargeBufferPool();
  EXPECT_EQ(LargeBufferPoolBytes(), 0u);
}

TEST_F(LargeBufferTest, ThePoolNeverHoldsMoreThanItsBound) {
  std::vector<LargeBuffer> held;
  for (int i = 0; i < 10; ++i) held.push_back(AcquireLargeBuffer(4u << 20));
  held.clear();
  EXPECT_LE(LargeBufferPoolBytes(), kMaxPooledBytes);
  EXPECT_GT(LargeBufferPoolBytes(), 0u);
}

TEST_F(LargeBufferTest, AMovedBufferIsReturnedOnce) {
  LargeBuffer a = AcquireLargeBuffer(1u << 20);
  LargeBuffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  ASSERT_TRUE(b);
  LargeBuffer c = AcquireLargeBuffer(2u << 20);
  c = std::move(b);  // c's old buffer goes back to the pool
  EXPECT_EQ(LargeBufferPoolBytes(), 2u << 20);
  c = LargeBuffer();
  EXPECT_EQ(LargeBufferPoolBytes(), 3u << 20);
}

}  // namespace
}  // namespace cairn

// The daemon's periodic hand-back of free malloc memory.
#include "daemon/memory_trimmer.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "gtest/gtest.h"

namespace cairn {
namespace {

TEST(MemoryTrimmer, TrimsEveryIntervalUntilDestroyed) {
  std::atomic<int> trims{0};
  auto trimmer = std::make_unique<MemoryTrimmer>(
      MemoryTrimmerOptions{absl::Milliseconds(2), [&] { trims++; }});
  for (int i = 0; i < 5000 && trims.load() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(trims.load(), 3);
  EXPECT_GE(trimmer->rounds(), 3u);
  trimmer.reset();
  const int after_stop = trims.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(trims.load(), after_stop);
}

TEST(MemoryTrimmer, StopsPromptlyInTheMiddleOfALongInterval) {
  std::atomic<int> trims{0};
  auto start = std::chrono::steady_clock::now();
  {
    MemoryTrimmer trimmer(MemoryTrimmerOptions{absl::Hours(1), [&] { trims++; }});
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(trims.load(), 0);
}

TEST(MemoryTrimmer, DefaultRoundCallsMallocTrim) {
  // Nothing to observe but that it runs and stops: malloc_trim is the
  // default when no trim is given.
  MemoryTrimmer trimmer(MemoryTrimmerOptions{absl::Milliseconds(1), nullptr});
  for (int i = 0; i < 5000 && trimmer.rounds() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(trimmer.rounds(), 2u);
}

}  // namespace
}  // namespace cairn

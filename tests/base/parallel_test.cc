#include "backend/base/parallel.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cairn {
namespace {

TEST(RunInParallelTest, RunsUpToTheLimitAtOnceAndStartsNoMoreAfterAFailure) {
  std::vector<int> ids;
  for (int id = 1; id <= 100; ++id) ids.push_back(id);
  std::atomic<int> running{0}, most{0}, started{0};
  std::vector<std::atomic<int>> done(ids.size());
  auto move = [&](size_t i) {
    int id = ids[i];
    started++;
    int now = ++running;
    for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    // The failing move fails at once and the others take a while, so the
    // failure is recorded long before any of them ends: on a loaded
    // machine, 2 ms each let the others start a second round (57 of 56).
    if (id != 50) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    running--;
    return id == 50 ? absl::UnavailableError("remote down") : absl::OkStatus();
  };
  size_t failed = 0;
  absl::Status status = RunInParallel(ids.size(), 4, move, [&](size_t i) { done[i]++; }, &failed);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failed, 49u);
  EXPECT_LE(most.load(), 4);
  EXPECT_GE(most.load(), 2) << "moves overlap";
  // Three more in flight with it, and each of those may take one more
  // before it sees the failure; none after that.
  EXPECT_LE(started.load(), 50 + 3 + 3) << "no new move starts after the failure";
  EXPECT_EQ(done[49].load(), 0);
  for (size_t i = 0; i < 45; ++i) EXPECT_EQ(done[i].load(), 1) << i;
  // Without failures, every one exactly once.
  started = 0;
  std::vector<std::atomic<int>> all(ids.size());
  EXPECT_TRUE(RunInParallel(ids.size(), 8, [&](size_t) { started++; return absl::OkStatus(); },
                            [&](size_t i) { all[i]++; })
                  .ok());
  EXPECT_EQ(started.load(), 100);
  for (auto& n : all) EXPECT_EQ(n.load(), 1);
  EXPECT_TRUE(RunInParallel(0, 8, move).ok());
}

}  // namespace
}  // namespace cairn

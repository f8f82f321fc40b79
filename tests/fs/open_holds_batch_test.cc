// OpenHolds (fs/open_holds.h): the first open commits a hold, the last
// close queues its removal, and removals go in batches in the background.
#include "fs/open_holds.h"

#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cairn {
namespace {

// The namespace's side: which inodes are held, and the calls made.
struct FakeHolds {
  absl::Mutex mu;
  std::set<InodeId> held;
  int hold_calls = 0;
  std::vector<std::vector<InodeId>> batches;
  bool fail_drops = false;

  absl::Status Hold(InodeId ino) {
    absl::MutexLock lock(&mu);
    ++hold_calls;
    held.insert(ino);
    return absl::OkStatus();
  }
  absl::Status Drop(const std::vector<InodeId>& inos) {
    absl::MutexLock lock(&mu);
    if (fail_drops) return absl::UnavailableError("database down");
    batches.push_back(inos);
    for (InodeId ino : inos) held.erase(ino);
    return absl::OkStatus();
  }
  bool Held(InodeId ino) {
    absl::MutexLock lock(&mu);
    return held.count(ino) != 0;
  }
};

std::unique_ptr<OpenHolds> Make(FakeHolds& fake, absl::Duration gather) {
  return std::make_unique<OpenHolds>([&fake](InodeId ino) { return fake.Hold(ino); },
                                     [&fake](const std::vector<InodeId>& inos) {
                                       return fake.Drop(inos);
                                     },
                                     gather);
}

TEST(OpenHoldsBatchTest, ClosesAreRemovedTogetherInOneBatch) {
  FakeHolds fake;
  auto holds = Make(fake, absl::Hours(1));  // only Flush removes
  for (InodeId ino : {10, 11, 12}) ASSERT_TRUE(holds->Acquire(ino).ok());
  EXPECT_EQ(fake.hold_calls, 3);
  for (InodeId ino : {10, 11, 12}) holds->Release(ino);
  EXPECT_TRUE(fake.Held(10));  // the close did not wait for a commit
  ASSERT_TRUE(holds->Flush().ok());
  ASSERT_EQ(fake.batches.size(), 1u);
  EXPECT_EQ(fake.batches[0], (std::vector<InodeId>{10, 11, 12}));
  EXPECT_TRUE(fake.held.empty());
  EXPECT_FALSE(holds->Holds(10));
}

TEST(OpenHoldsBatchTest, AnOpenBeforeTheRemovalKeepsTheHoldWithoutACommit) {
  FakeHolds fake;
  auto holds = Make(fake, absl::Hours(1));
  holds->Adopt(20);  // a create's hold
  holds->Release(20);
  ASSERT_TRUE(holds->Acquire(20).ok());
  EXPECT_EQ(fake.hold_calls, 0);
  ASSERT_TRUE(holds->Flush().ok());
  EXPECT_TRUE(fake.batches.empty());  // still open: nothing removed
  EXPECT_TRUE(holds->Holds(20));
  holds->Release(20);
  ASSERT_TRUE(holds->Flush().ok());
  EXPECT_FALSE(holds->Holds(20));
  // Opened after the removal: held again before the open returns.
  ASSERT_TRUE(holds->Acquire(20).ok());
  EXPECT_EQ(fake.hold_calls, 1);
  EXPECT_TRUE(fake.Held(20));
}

TEST(OpenHoldsBatchTest, AFailedRemovalIsTriedAgainWithTheNextBatch) {
  FakeHolds fake;
  auto holds = Make(fake, absl::Hours(1));
  ASSERT_TRUE(holds->Acquire(30).ok());
  holds->Release(30);
  fake.fail_drops = true;
  EXPECT_FALSE(holds->Flush().ok());
  EXPECT_TRUE(holds->Holds(30));
  fake.fail_drops = false;
  ASSERT_TRUE(holds->Acquire(31).ok());
  holds->Release(31);
  ASSERT_TRUE(holds->Flush().ok());
  ASSERT_EQ(fake.batches.size(), 1u);
  EXPECT_EQ(fake.batches[0], (std::vector<InodeId>{30, 31}));
  EXPECT_FALSE(holds->Holds(30));
}

TEST(OpenHoldsBatchTest, TheBackgroundRemovesClosedHoldsAndDestructionTheRest) {
  FakeHolds fake;
  {
    auto holds = Make(fake, absl::Milliseconds(1));
    ASSERT_TRUE(holds->Acquire(40).ok());
    holds->Release(40);
    for (int i = 0; i < 2000 && fake.Held(40); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_FALSE(fake.Held(40));
  }
  {
    auto holds = Make(fake, absl::Hours(1));
    ASSERT_TRUE(holds->Acquire(41).ok());
    ASSERT_TRUE(holds->Acquire(42).ok());
    holds->Release(41);
  }  // a clean unmount: the closed one goes, the open one stays
  EXPECT_FALSE(fake.Held(41));
  EXPECT_TRUE(fake.Held(42));
}

TEST(OpenHoldsBatchTest, OpensAndClosesFromManyThreadsEndWithNothingHeld) {
  FakeHolds fake;
  {
    auto holds = Make(fake, absl::Microseconds(200));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&holds] {
        for (int i = 0; i < 500; ++i) {
          InodeId ino = 50 + i % 7;
          ASSERT_TRUE(holds->Acquire(ino).ok());
          holds->Release(ino);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE(holds->Flush().ok());
    for (InodeId ino = 50; ino < 57; ++ino) EXPECT_FALSE(holds->Holds(ino)) << ino;
  }
  EXPECT_TRUE(fake.held.empty());
}

}  // namespace
}  // namespace cairn

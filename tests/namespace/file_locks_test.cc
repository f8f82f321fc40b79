// The lock rules every FileLocks shares (file_locks.h) and the in-memory
// FileLocks, whose MemLockTable with two sessions stands for two hosts.
#include "backend/namespace/file_locks.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "backend/base/fs_error.h"
#include "backend/namespace/mem_file_locks.h"
#include "gtest/gtest.h"

namespace cairn {
namespace {

ByteRangeLock Range(LockType type, int64_t start, int64_t last, int32_t pid = 7) {
  ByteRangeLock l;
  l.type = type;
  l.start = start;
  l.last = last;
  l.pid = pid;
  return l;
}

struct Span {
  LockType type;
  int64_t start, last;
  friend bool operator==(const Span&, const Span&) = default;
};

std::vector<Span> Spans(const std::vector<HeldLock>& held) {
  std::vector<Span> out;
  for (const HeldLock& h : held) out.push_back({h.type, h.start, h.last});
  return out;
}

constexpr LockType R = LockType::kRead;
constexpr LockType W = LockType::kWrite;
constexpr LockType U = LockType::kUnlock;

TEST(LockRulesTest, UnlockOfAMiddlePartSplitsTheRange) {
  auto held = ApplyRecordLock({}, 1, 9, Range(W, 0, 99));
  held = ApplyRecordLock(held, 1, 9, Range(U, 40, 59));
  EXPECT_EQ(Spans(held), (std::vector<Span>{{W, 0, 39}, {W, 60, 99}}));
}

TEST(LockRulesTest, AdjacentRangesOfOneTypeMergeAndOtherTypesSplit) {
  auto held = ApplyRecordLock({}, 1, 9, Range(R, 0, 9));
  held = ApplyRecordLock(held, 1, 9, Range(R, 10, 19));
  EXPECT_EQ(Spans(held), (std::vector<Span>{{R, 0, 19}}));
  held = ApplyRecordLock(held, 1, 9, Range(W, 5, 14));
  EXPECT_EQ(Spans(held), (std::vector<Span>{{R, 0, 4}, {W, 5, 14}, {R, 15, 19}}));
  held = ApplyRecordLock(held, 1, 9, Range(R, 5, 14));
  EXPECT_EQ(Spans(held), (std::vector<Span>{{R, 0, 19}}));
  held = ApplyRecordLock(held, 1, 9, Range(W, 15, kLockToEnd));
  EXPECT_EQ(Spans(held), (std::vector<Span>{{R, 0, 14}, {W, 15, kLockToEnd}}));
  held = ApplyRecordLock(held, 1, 9, Range(U, 0, kLockToEnd));
  EXPECT_TRUE(held.empty());
}

TEST(LockRulesTest, OnlyWriteLocksOfOtherOwnersOverOverlappingBytesConflict) {
  HeldLock h;
  h.session = 1;
  h.owner = 9;
  h.type = R;
  h.start = 10;
  h.last = 19;
  EXPECT_FALSE(LockConflicts(h, 2, 9, LockKind::kRecord, R, 0, 100));
  EXPECT_TRUE(LockConflicts(h, 2, 9, LockKind::kRecord, W, 19, 30));  // same owner id, other host
  EXPECT_FALSE(LockConflicts(h, 2, 9, LockKind::kRecord, W, 20, 30));
  EXPECT_FALSE(LockConflicts(h, 1, 9, LockKind::kRecord, W, 0, 100));  // its own
  EXPECT_FALSE(LockConflicts(h, 2, 9, LockKind::kFlock, W, 0, kLockToEnd));  // other kind
}

TEST(MemFileLocksTest, BlockedWaitIsGrantedWhenTheHolderUnlocksAndInterruptGivesEintr) {
  MemLockTable table;
  MemFileLocks a(table, 1), b(table, 2);
  ASSERT_TRUE(a.Flock(5, 100, W, false, nullptr).ok());
  absl::Status busy = b.Flock(5, 200, R, false, nullptr);
  EXPECT_EQ(GetFsErrorKind(busy), FsErrorKind::kWouldBlock) << busy;

  std::atomic<bool> stop{false};
  std::thread interrupted([&] {
    absl::Status st = b.Flock(5, 201, W, true, [&] { return stop.load(); });
    EXPECT_EQ(GetFsErrorKind(st), FsErrorKind::kInterrupted) << st;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  interrupted.join();

  std::thread waiter([&] { EXPECT_TRUE(b.Flock(5, 200, W, true, nullptr).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(a.Flock(5, 100, U, false, nullptr).ok());
  waiter.join();
  EXPECT_EQ(GetFsErrorKind(a.Flock(5, 100, R, false, nullptr)), FsErrorKind::kWouldBlock);
}

TEST(MemFileLocksTest, DeadSessionsLocksConflictWithNothing) {
  MemLockTable table;
  MemFileLocks a(table, 1), b(table, 2);
  ASSERT_TRUE(a.SetRecordLock(5, 100, Range(W, 0, kLockToEnd), false, nullptr).ok());
  EXPECT_FALSE(b.SetRecordLock(5, 200, Range(R, 0, 0), false, nullptr).ok());
  table.MarkSessionDead(1);
  EXPECT_TRUE(b.SetRecordLock(5, 200, Range(R, 0, 0), false, nullptr).ok());
  EXPECT_EQ(table.Held(5).size(), 1u);
  EXPECT_EQ(GetFsErrorKind(a.SetRecordLock(5, 100, Range(R, 9, 9), false, nullptr)),
            FsErrorKind::kNoLocks);
}

}  // namespace
}  // namespace cairn

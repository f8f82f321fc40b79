// PgFileLocks against a real PostgreSQL 15 (tests/pg-server.sh; skipped
// only when the server is not installed). Two PgFileLocks with different
// sessions on one database stand for two hosts. The sessions table is made
// here with the DDL agreed for issue 18 (the session machinery creates it
// in production).
#include "backend/namespace/pg_file_locks.h"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"

namespace cairn {
namespace {

constexpr LockType R = LockType::kRead;
constexpr LockType W = LockType::kWrite;
constexpr LockType U = LockType::kUnlock;
constexpr InodeId kIno = 42;

ByteRangeLock Range(LockType type, int64_t start, int64_t last, int32_t pid = 1234) {
  ByteRangeLock l;
  l.type = type;
  l.start = start;
  l.last = last;
  l.pid = pid;
  return l;
}

class PgFileLocksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase("locks");
    if (url_.empty()) return;
    Sql("CREATE TABLE IF NOT EXISTS cairn_sessions (id bigint PRIMARY KEY, host text NOT NULL, "
        "pid int NOT NULL, mountpoint text NOT NULL, started timestamptz NOT NULL, "
        "heartbeat timestamptz NOT NULL, expires timestamptz NOT NULL, "
        "journal_backlog bigint NOT NULL DEFAULT 0)");
    for (int id : {1, 2}) {
      Sql(absl::StrCat("INSERT INTO cairn_sessions VALUES (", id, ", 'host", id,
                       "', 1, '/mnt', now(), now(), now() + interval '1 hour')"));
    }
    a_ = OpenHost(1);
    b_ = OpenHost(2);
  }

  std::unique_ptr<PgFileLocks> OpenHost(uint64_t session) {
    PgFileLocksOptions o;
    o.url = url_;
    o.session_id = session;
    auto locks = PgFileLocks::Open(o);
    EXPECT_TRUE(locks.ok()) << locks.status();
    return locks.ok() ? *std::move(locks) : nullptr;
  }

  // Runs `sql` as an operator's session; the first column of its first
  // row, if any.
  std::string Sql(const std::string& sql) {
    PGconn* c = PQconnectdb(url_.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    ExecStatusType s = PQresultStatus(r);
    EXPECT_TRUE(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) << PQresultErrorMessage(r);
    std::string out = (s == PGRES_TUPLES_OK && PQntuples(r) > 0) ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    PQfinish(c);
    return out;
  }

  std::string url_;
  std::unique_ptr<PgFileLocks> a_, b_;
};

TEST_F(PgFileLocksTest, ExclusiveLockExcludesTheOtherHostAndSharedLocksCoexist) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(R, 0, 99), false, nullptr).ok());
  EXPECT_TRUE(b_->SetRecordLock(kIno, 7, Range(R, 50, 150), false, nullptr).ok());
  absl::Status st = b_->SetRecordLock(kIno, 8, Range(W, 99, 99), false, nullptr);
  EXPECT_EQ(GetFsErrorKind(st), FsErrorKind::kWouldBlock) << st;
  // Another inode, and bytes past both read locks, are free.
  EXPECT_TRUE(b_->SetRecordLock(kIno + 1, 8, Range(W, 0, kLockToEnd), false, nullptr).ok());
  EXPECT_TRUE(b_->SetRecordLock(kIno, 8, Range(W, 151, kLockToEnd), false, nullptr).ok());
  EXPECT_EQ(GetFsErrorKind(a_->SetRecordLock(kIno, 7, Range(W, 0, 99), false, nullptr)),
            FsErrorKind::kWouldBlock);  // B's read lock covers 50..99
}

TEST_F(PgFileLocksTest, UnlockOfAMiddlePartFreesOnlyThatPart) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 0, 99), false, nullptr).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(U, 40, 59), false, nullptr).ok());
  EXPECT_EQ(Sql("SELECT string_agg(first_byte || '-' || last_byte, ',' ORDER BY first_byte) "
                "FROM cairn_locks"),
            "0-39,60-99");
  EXPECT_TRUE(b_->SetRecordLock(kIno, 7, Range(W, 40, 59), false, nullptr).ok());
  EXPECT_FALSE(b_->SetRecordLock(kIno, 7, Range(W, 39, 39), false, nullptr).ok());
  EXPECT_FALSE(b_->SetRecordLock(kIno, 7, Range(W, 60, 60), false, nullptr).ok());
  // Filling the hole with the same type merges A's ranges again (after B
  // lets go).
  ASSERT_TRUE(b_->ReleaseOwner(kIno, 7).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 40, 59), false, nullptr).ok());
  EXPECT_EQ(Sql("SELECT string_agg(first_byte || '-' || last_byte, ',') FROM cairn_locks"),
            "0-99");
}

TEST_F(PgFileLocksTest, GetlkReportsTheConflictingRangeTypeAndPidOnlyOnItsHost) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 10, 19, 4321), false, nullptr).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(R, 30, kLockToEnd, 4321), false, nullptr).ok());
  auto none = b_->TestRecordLock(kIno, 7, Range(R, 20, 1000));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());  // read vs read
  auto remote = b_->TestRecordLock(kIno, 7, Range(W, 0, kLockToEnd));
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE(remote->has_value());
  EXPECT_EQ((*remote)->type, W);
  EXPECT_EQ((*remote)->start, 10);
  EXPECT_EQ((*remote)->last, 19);
  EXPECT_EQ((*remote)->pid, 0);  // another host's pid means nothing here
  auto local = a_->TestRecordLock(kIno, 8, Range(W, 25, 35));
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(local->has_value());
  EXPECT_EQ((*local)->type, R);
  EXPECT_EQ((*local)->start, 30);
  EXPECT_EQ((*local)->last, kLockToEnd);
  EXPECT_EQ((*local)->pid, 4321);
  auto own = a_->TestRecordLock(kIno, 7, Range(W, 0, kLockToEnd));
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FALSE(own->has_value());  // an owner never conflicts with itself
}

TEST_F(PgFileLocksTest, FlockExcludesAcrossHostsAndIgnoresRecordLocks) {
  ASSERT_TRUE(a_->Flock(kIno, 100, R, false, nullptr).ok());
  EXPECT_TRUE(b_->Flock(kIno, 200, R, false, nullptr).ok());
  EXPECT_EQ(GetFsErrorKind(b_->Flock(kIno, 200, W, false, nullptr)), FsErrorKind::kWouldBlock);
  ASSERT_TRUE(a_->Flock(kIno, 100, U, false, nullptr).ok());
  EXPECT_TRUE(b_->Flock(kIno, 200, W, false, nullptr).ok());  // upgrade, in place
  EXPECT_EQ(GetFsErrorKind(a_->Flock(kIno, 100, R, false, nullptr)), FsErrorKind::kWouldBlock);
  // The two kinds are independent, as on Linux.
  EXPECT_TRUE(a_->SetRecordLock(kIno, 100, Range(W, 0, kLockToEnd), false, nullptr).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM cairn_locks WHERE kind = 2"), "1");
}

TEST_F(PgFileLocksTest, BlockedLockIsGrantedWhenTheOtherHostUnlocks) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 0, kLockToEnd), false, nullptr).ok());
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    absl::Status st = b_->SetRecordLock(kIno, 7, Range(W, 0, 0), true, nullptr);
    EXPECT_TRUE(st.ok()) << st;
    granted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(granted);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(U, 0, kLockToEnd), false, nullptr).ok());
  waiter.join();
  EXPECT_TRUE(granted);
  // Seen at the waiter's next poll: at most 200 ms apart, with room for a
  // loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_FALSE(a_->SetRecordLock(kIno, 7, Range(R, 0, 0), false, nullptr).ok());
}

TEST_F(PgFileLocksTest, InterruptedWaitGivesEintrAndTakesNothing) {
  ASSERT_TRUE(a_->Flock(kIno, 100, W, false, nullptr).ok());
  std::atomic<bool> interrupted{false};
  std::thread waiter([&] {
    absl::Status st = b_->Flock(kIno, 200, W, true, [&] { return interrupted.load(); });
    EXPECT_EQ(GetFsErrorKind(st), FsErrorKind::kInterrupted) << st;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  interrupted = true;
  waiter.join();
  ASSERT_TRUE(a_->Flock(kIno, 100, U, false, nullptr).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM cairn_locks"), "0");
}

TEST_F(PgFileLocksTest, LocksOfAnExpiredSessionDoNotConflictAndAreRemoved) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 0, kLockToEnd), false, nullptr).ok());
  ASSERT_TRUE(a_->Flock(kIno, 100, W, false, nullptr).ok());
  Sql("UPDATE cairn_sessions SET expires = now() - interval '1 second' WHERE id = 1");
  auto test = b_->TestRecordLock(kIno, 7, Range(W, 0, 0));
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_FALSE(test->has_value());
  EXPECT_TRUE(b_->SetRecordLock(kIno, 7, Range(W, 0, 0), false, nullptr).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM cairn_locks WHERE session = 1"), "0");
  EXPECT_TRUE(b_->Flock(kIno, 200, W, false, nullptr).ok());
  // The expired host may take no new lock (the others no longer see it).
  absl::Status st = a_->SetRecordLock(kIno + 1, 7, Range(R, 0, 0), false, nullptr);
  EXPECT_EQ(GetFsErrorKind(st), FsErrorKind::kNoLocks) << st;
  // A session with no row at all is dead too.
  auto ghost = OpenHost(99);
  ASSERT_NE(ghost, nullptr);
  EXPECT_EQ(GetFsErrorKind(ghost->Flock(kIno + 2, 1, W, false, nullptr)), FsErrorKind::kNoLocks);
}

TEST_F(PgFileLocksTest, ReleaseOwnerDropsBothKindsOfThatOwnerOnly) {
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(W, 0, 9), false, nullptr).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno, 7, Range(R, 20, 29), false, nullptr).ok());
  ASSERT_TRUE(a_->Flock(kIno, 7, W, false, nullptr).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno, 8, Range(W, 50, 59), false, nullptr).ok());
  ASSERT_TRUE(a_->SetRecordLock(kIno + 1, 7, Range(W, 0, 9), false, nullptr).ok());
  ASSERT_TRUE(a_->ReleaseOwner(kIno, 7).ok());
  EXPECT_TRUE(b_->SetRecordLock(kIno, 7, Range(W, 0, 29), false, nullptr).ok());
  EXPECT_TRUE(b_->Flock(kIno, 200, W, false, nullptr).ok());
  EXPECT_FALSE(b_->SetRecordLock(kIno, 7, Range(W, 50, 50), false, nullptr).ok());
  EXPECT_FALSE(b_->SetRecordLock(kIno + 1, 7, Range(W, 0, 0), false, nullptr).ok());
  ASSERT_TRUE(a_->ReleaseSession().ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM cairn_locks WHERE session = 1"), "0");
}

TEST_F(PgFileLocksTest, ConcurrentWritersOfTwoHostsNeverBothHoldTheLock) {
  // Each round both hosts race for the same byte; exactly one wins.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> winners{0};
    auto race = [&](PgFileLocks* host, uint64_t owner) {
      if (host->SetRecordLock(kIno, owner, Range(W, 5, 5), false, nullptr).ok()) ++winners;
    };
    std::thread t1(race, a_.get(), 7), t2(race, b_.get(), 7);
    t1.join();
    t2.join();
    EXPECT_EQ(winners, 1) << "round " << round;
    ASSERT_TRUE(a_->ReleaseOwner(kIno, 7).ok());
    ASSERT_TRUE(b_->ReleaseOwner(kIno, 7).ok());
  }
}

}  // namespace
}  // namespace cairn

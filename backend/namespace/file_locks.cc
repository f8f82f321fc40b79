#include "backend/namespace/file_locks.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"

namespace cairn {

namespace {

// A blocked request polls the lock table: at first every 10 ms, the pause
// doubling up to 200 ms. Polling rather than LISTEN/NOTIFY because a
// waiter then needs no connection of its own while it sleeps, a lost
// notification or a holder whose session simply expires (no unlock is
// ever sent for it) cannot strand a waiter, and the cost is bounded: at
// most 5 queries a second per waiter. An unlock on this host wakes its
// own waiters at once (NoteUnlocked); one on another host is seen within
// 200 ms.
constexpr auto kFirstPause = std::chrono::milliseconds(10);
constexpr auto kLongestPause = std::chrono::milliseconds(200);
// How often a waiter looks at `interrupted` and at local unlocks while it
// pauses: an interrupted wait answers EINTR within this.
constexpr auto kSlice = std::chrono::milliseconds(5);

bool Overlaps(int64_t a_start, int64_t a_last, int64_t b_start, int64_t b_last) {
  return a_start <= b_last && b_start <= a_last;
}

// The lock `lock` grants `owner`, over the whole file (a record lock's
// caller sets its range).
HeldLock Granted(uint64_t session, uint64_t owner, LockKind kind, const ByteRangeLock& lock) {
  HeldLock held;
  held.session = session;
  held.owner = owner;
  held.kind = kind;
  held.type = lock.type;
  held.pid = lock.pid;
  return held;
}

}  // namespace

absl::Status FileLocks::SetRecordLock(InodeId ino, uint64_t owner, const ByteRangeLock& lock,
                                      bool wait, const LockWaitInterrupted& interrupted) {
  if (lock.start < 0 || lock.last < lock.start) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("lock range [", lock.start, ", ", lock.last, "] is invalid"));
  }
  return SetWithWait(ino, owner, LockKind::kRecord, lock, wait, interrupted);
}

absl::Status FileLocks::Flock(InodeId ino, uint64_t owner, LockType type, bool wait,
                              const LockWaitInterrupted& interrupted) {
  ByteRangeLock whole;
  whole.type = type;
  return SetWithWait(ino, owner, LockKind::kFlock, whole, wait, interrupted);
}

absl::Status FileLocks::SetWithWait(InodeId ino, uint64_t owner, LockKind kind,
                                    const ByteRangeLock& lock, bool wait,
                                    const LockWaitInterrupted& interrupted) {
  auto pause = kFirstPause;
  for (;;) {
    uint64_t unlocks_before = unlocks_.load(std::memory_order_acquire);
    absl::StatusOr<std::optional<HeldLock>> in_the_way = TrySet(ino, owner, kind, lock);
    if (!in_the_way.ok()) return in_the_way.status();
    if (!in_the_way->has_value()) {
      if (lock.type == LockType::kUnlock) NoteUnlocked();
      return absl::OkStatus();
    }
    if (!wait) {
      return FsError(FsErrorKind::kWouldBlock,
                     absl::StrCat("inode ", ino, ": bytes [", (*in_the_way)->start, ", ",
                                  (*in_the_way)->last, "] are locked by another owner"));
    }
    auto until = std::chrono::steady_clock::now() + pause;
    while (std::chrono::steady_clock::now() < until &&
           unlocks_.load(std::memory_order_acquire) == unlocks_before) {
      if (interrupted && interrupted()) {
        return FsError(FsErrorKind::kInterrupted,
                       absl::StrCat("waiting for a lock on inode ", ino, " was interrupted"));
      }
      std::this_thread::sleep_for(kSlice);
    }
    if (interrupted && interrupted()) {
      return FsError(FsErrorKind::kInterrupted,
                     absl::StrCat("waiting for a lock on inode ", ino, " was interrupted"));
    }
    pause = std::min<std::chrono::milliseconds>(pause * 2, kLongestPause);
  }
}

bool LockConflicts(const HeldLock& held, uint64_t session, uint64_t owner, LockKind kind,
                   LockType type, int64_t start, int64_t last) {
  if (type == LockType::kUnlock || held.kind != kind) return false;
  if (held.session == session && held.owner == owner) return false;
  if (held.type != LockType::kWrite && type != LockType::kWrite) return false;
  return Overlaps(held.start, held.last, start, last);
}

std::optional<HeldLock> FirstConflict(const std::vector<HeldLock>& held, uint64_t session,
                                      uint64_t owner, LockKind kind, const ByteRangeLock& lock) {
  std::optional<HeldLock> first;
  for (const HeldLock& h : held) {
    if (!LockConflicts(h, session, owner, kind, lock.type, lock.start, lock.last)) continue;
    if (!first || std::tie(h.start, h.session, h.owner) <
                      std::tie(first->start, first->session, first->owner)) {
      first = h;
    }
  }
  return first;
}

std::vector<HeldLock> ApplyRecordLock(const std::vector<HeldLock>& mine, uint64_t session,
                                      uint64_t owner, const ByteRangeLock& lock) {
  std::vector<HeldLock> pieces;
  for (const HeldLock& h : mine) {
    if (!Overlaps(h.start, h.last, lock.start, lock.last)) {
      pieces.push_back(h);
      continue;
    }
    // The parts outside the request stay as they were.
    if (h.start < lock.start) {
      HeldLock before = h;
      before.last = lock.start - 1;
      pieces.push_back(before);
    }
    if (h.last > lock.last) {  // lock.last < kLockToEnd here, so +1 is safe
      HeldLock after = h;
      after.start = lock.last + 1;
      pieces.push_back(after);
    }
  }
  if (lock.type != LockType::kUnlock) {
    HeldLock added = Granted(session, owner, LockKind::kRecord, lock);
    added.start = lock.start;
    added.last = lock.last;
    pieces.push_back(added);
  }
  std::sort(pieces.begin(), pieces.end(),
            [](const HeldLock& a, const HeldLock& b) { return a.start < b.start; });
  std::vector<HeldLock> merged;
  for (const HeldLock& p : pieces) {
    if (!merged.empty()) {
      HeldLock& prev = merged.back();
      // Pieces never overlap here: only touching ones of one type merge.
      bool touches = prev.last != kLockToEnd && prev.last + 1 == p.start;
      if (touches && prev.type == p.type) {
        prev.last = p.last;
        if (p.pid == lock.pid) prev.pid = p.pid;
        continue;
      }
    }
    merged.push_back(p);
  }
  return merged;
}

std::vector<HeldLock> ApplyLock(const std::vector<HeldLock>& mine, uint64_t session,
                                uint64_t owner, LockKind kind, const ByteRangeLock& lock) {
  if (kind == LockKind::kRecord) return ApplyRecordLock(mine, session, owner, lock);
  if (lock.type == LockType::kUnlock) return {};
  return {Granted(session, owner, LockKind::kFlock, lock)};  // the whole file
}

}  // namespace cairn

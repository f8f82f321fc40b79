// Advisory file locks that every host of a shared volume sees (issue 18):
// POSIX record locks (fcntl F_GETLK/F_SETLK/F_SETLKW) and BSD flock(2)
// locks, the two kinds independent of each other as on Linux.
//
// A FileLocks belongs to one host (one daemon, one database session). An
// owner is the kernel's lock owner (FUSE's lock_owner: the process's file
// table for POSIX locks, the open file description for flock) together
// with the host's session, so owners of different hosts never collide.
//
// Promises:
// - Two owners never hold conflicting locks on one inode at once: a write
//   (exclusive) lock conflicts with any other owner's lock of its kind over
//   an overlapping range; read (shared) locks do not conflict.
// - An owner's record locks follow POSIX: setting a type over a range
//   replaces what the owner held there (splitting a range it held), and
//   adjacent or overlapping ranges of one type merge; unlocking a part of a
//   range leaves the rest. A flock is a whole-file lock; converting between
//   shared and exclusive is atomic here (Linux drops the old lock first).
// - A blocking set waits until granted or until `interrupted` returns true
//   (kInterrupted, EINTR); a non-blocking one fails with kWouldBlock
//   (EAGAIN) and changes nothing.
// Not promised: deadlock detection (EDEADLK) between owners; a blocked
// wait stays blocked until interrupted.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/types.h"

namespace cairn {

enum class LockType : int16_t { kUnlock = 0, kRead = 1, kWrite = 2 };
// The two kinds never conflict with each other.
enum class LockKind : int16_t { kRecord = 1, kFlock = 2 };

// The last byte of a range that runs to the end of the file, whatever its
// size (l_len 0; FUSE's OFFSET_MAX).
inline constexpr int64_t kLockToEnd = INT64_MAX;

// A request over bytes [start, last], both inclusive.
struct ByteRangeLock {
  LockType type = LockType::kUnlock;
  int64_t start = 0;
  int64_t last = kLockToEnd;
  // The requesting process (for F_GETLK answers on this host).
  int32_t pid = 0;
};

// A lock some owner holds.
struct HeldLock {
  uint64_t session = 0;
  uint64_t owner = 0;
  LockKind kind = LockKind::kRecord;
  LockType type = LockType::kRead;
  int64_t start = 0;
  int64_t last = kLockToEnd;
  int32_t pid = 0;
  friend bool operator==(const HeldLock&, const HeldLock&) = default;
};

// True when the caller gave up waiting (the FUSE layer asks
// fuse_req_interrupted). Called between attempts, every few milliseconds.
using LockWaitInterrupted = std::function<bool()>;

class FileLocks {
 public:
  virtual ~FileLocks() = default;

  // F_GETLK: the first lock (lowest start) of another owner that would
  // conflict with `lock`, or nullopt. Its pid is the holder's when the
  // holder is on this host, 0 when on another (a remote pid would name an
  // unrelated local process).
  virtual absl::StatusOr<std::optional<HeldLock>> TestRecordLock(InodeId ino, uint64_t owner,
                                                                 const ByteRangeLock& lock) = 0;
  // F_SETLK (`wait` false) and F_SETLKW (`wait` true). kUnlock never waits.
  absl::Status SetRecordLock(InodeId ino, uint64_t owner, const ByteRangeLock& lock, bool wait,
                             const LockWaitInterrupted& interrupted);
  // flock(2): kRead is LOCK_SH, kWrite LOCK_EX, kUnlock LOCK_UN.
  absl::Status Flock(InodeId ino, uint64_t owner, LockType type, bool wait,
                     const LockWaitInterrupted& interrupted);
  // Everything `owner` holds on `ino`, of both kinds: close(2) of a file
  // (POSIX: any close by the process drops its record locks) and the last
  // close of an open file description (its flock).
  virtual absl::Status ReleaseOwner(InodeId ino, uint64_t owner) = 0;

 protected:
  // One attempt: grants the request (nullopt) or returns the lock in its
  // way and changes nothing. A request with type kUnlock always succeeds.
  virtual absl::StatusOr<std::optional<HeldLock>> TrySet(InodeId ino, uint64_t owner,
                                                          LockKind kind,
                                                          const ByteRangeLock& lock) = 0;
  // Implementations call this after anything that may let a waiter of
  // this host in (an unlock, a release), so it retries at once instead of
  // at its next poll.
  void NoteUnlocked() { unlocks_.fetch_add(1, std::memory_order_release); }

 private:
  absl::Status SetWithWait(InodeId ino, uint64_t owner, LockKind kind, const ByteRangeLock& lock,
                           bool wait, const LockWaitInterrupted& interrupted);
  std::atomic<uint64_t> unlocks_{0};
};

// ---- The rules every implementation shares (pure functions). ----

// Whether `held` stands in the way of `owner` of `session` asking for
// `type` of `kind` over [start, last].
bool LockConflicts(const HeldLock& held, uint64_t session, uint64_t owner, LockKind kind,
                   LockType type, int64_t start, int64_t last);

// The first (lowest start, then session, then owner) of `held` in the way,
// if any.
std::optional<HeldLock> FirstConflict(const std::vector<HeldLock>& held, uint64_t session,
                                      uint64_t owner, LockKind kind, const ByteRangeLock& lock);

// One owner's record locks after `lock` (POSIX): what it held inside
// [lock.start, lock.last] is replaced by `lock` (or removed, for kUnlock),
// ranges it held across the edges are cut there, and touching or
// overlapping ranges of one type merge. `mine` are that owner's record
// locks (any order); the result is sorted by start and never overlaps.
std::vector<HeldLock> ApplyRecordLock(const std::vector<HeldLock>& mine, uint64_t session,
                                      uint64_t owner, const ByteRangeLock& lock);

// One owner's locks of `kind` after `lock`: ApplyRecordLock for record
// locks; for flock, the one whole-file lock `lock` asks for (none for
// kUnlock), which replaces any the owner held.
std::vector<HeldLock> ApplyLock(const std::vector<HeldLock>& mine, uint64_t session,
                                uint64_t owner, LockKind kind, const ByteRangeLock& lock);

}  // namespace cairn

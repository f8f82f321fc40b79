#include "backend/namespace/mem_file_locks.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"

namespace cairn {

absl::StatusOr<std::optional<HeldLock>> MemFileLocks::TestRecordLock(InodeId ino, uint64_t owner,
                                                                     const ByteRangeLock& lock) {
  absl::MutexLock hold(&table_.mu_);
  std::vector<HeldLock> live;
  for (const HeldLock& h : table_.locks_[ino]) {
    if (!table_.dead_.contains(h.session)) live.push_back(h);
  }
  std::optional<HeldLock> first = FirstConflict(live, session_, owner, LockKind::kRecord, lock);
  if (first && first->session != session_) first->pid = 0;
  return first;
}

absl::StatusOr<std::optional<HeldLock>> MemFileLocks::TrySet(InodeId ino, uint64_t owner,
                                                            LockKind kind,
                                                            const ByteRangeLock& lock) {
  absl::MutexLock hold(&table_.mu_);
  if (lock.type != LockType::kUnlock && table_.dead_.contains(session_)) {
    return FsError(FsErrorKind::kNoLocks,
                   absl::StrCat("session ", session_, " has expired; remount"));
  }
  std::vector<HeldLock>& held = table_.locks_[ino];
  std::erase_if(held, [&](const HeldLock& h) { return table_.dead_.contains(h.session); });
  std::optional<HeldLock> in_the_way = FirstConflict(held, session_, owner, kind, lock);
  if (in_the_way) {
    if (in_the_way->session != session_) in_the_way->pid = 0;
    return in_the_way;
  }
  auto is_mine = [&](const HeldLock& h) {
    return h.session == session_ && h.owner == owner && h.kind == kind;
  };
  std::vector<HeldLock> mine;
  std::copy_if(held.begin(), held.end(), std::back_inserter(mine), is_mine);
  std::erase_if(held, is_mine);
  for (const HeldLock& h : ApplyLock(mine, session_, owner, kind, lock)) held.push_back(h);
  return std::optional<HeldLock>();
}

absl::Status MemFileLocks::ReleaseOwner(InodeId ino, uint64_t owner) {
  {
    absl::MutexLock hold(&table_.mu_);
    std::erase_if(table_.locks_[ino],
                  [&](const HeldLock& h) { return h.session == session_ && h.owner == owner; });
  }
  NoteUnlocked();
  return absl::OkStatus();
}

}  // namespace cairn

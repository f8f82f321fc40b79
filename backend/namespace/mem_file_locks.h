// FileLocks in memory: the same rules as the shared table (file_locks.h),
// for tests and for callers that want shared-lock behaviour without a
// database. Several MemFileLocks over one MemLockTable, each with its own
// session, stand for several hosts; a session marked dead loses its locks
// as an expired database session does.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "backend/namespace/file_locks.h"

namespace cairn {

class MemLockTable {
 public:
  // Its locks conflict with nothing from now on and go at the next change
  // of their inode.
  void MarkSessionDead(uint64_t session) {
    absl::MutexLock lock(&mu_);
    dead_.insert(session);
  }
  // Every lock held on `ino`, live or not yet removed (for tests).
  std::vector<HeldLock> Held(InodeId ino) {
    absl::MutexLock lock(&mu_);
    return locks_[ino];
  }

 private:
  friend class MemFileLocks;
  absl::Mutex mu_;
  std::map<InodeId, std::vector<HeldLock>> locks_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> dead_ ABSL_GUARDED_BY(mu_);
};

class MemFileLocks : public FileLocks {
 public:
  // `table` must outlive this.
  MemFileLocks(MemLockTable& table, uint64_t session) : table_(table), session_(session) {}

  absl::StatusOr<std::optional<HeldLock>> TestRecordLock(InodeId ino, uint64_t owner,
                                                         const ByteRangeLock& lock) override;
  absl::Status ReleaseOwner(InodeId ino, uint64_t owner) override;

 protected:
  absl::StatusOr<std::optional<HeldLock>> TrySet(InodeId ino, uint64_t owner, LockKind kind,
                                                  const ByteRangeLock& lock) override;

 private:
  MemLockTable& table_;
  const uint64_t session_;
};

}  // namespace cairn

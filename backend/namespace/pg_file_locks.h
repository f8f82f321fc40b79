// The FileLocks of a volume several hosts mount (issue 18): one table in
// the namespace's PostgreSQL database, reached with libpq on connections of
// its own.
//
// Layout:
//   cairn_locks(inode bigint, session bigint, owner bigint, kind smallint,
//               type smallint, first_byte bigint, last_byte bigint, pid int)
//     one row per held lock; kind is LockKind, type LockType (never
//     kUnlock), [first_byte, last_byte] inclusive (last_byte 2^63-1: to
//     the end of the file); an index on inode.
//
// Every change runs in one READ COMMITTED transaction that first takes a
// transaction-scoped advisory lock on the inode (two-key form, first key
// kPgLockAdvisoryClass, second hashint8(inode)), so the changes to one
// inode's locks run one at a time at the server: the conflict check reads
// every row committed before it and nothing can slip in between the check
// and the insert, without serialization failures to retry. Inodes whose
// hashes collide only queue behind each other.
//
// Liveness: a lock whose session has no row in cairn_sessions with
// expires > now() (the server's clock) conflicts with nothing and is
// deleted by the next change on its inode. A change made by a host whose
// own session is not alive is refused (kNoLocks): its locks are already
// void for the other hosts. The sessions table belongs to the session
// machinery (PgKvStore::Format creates it); this class only reads it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backend/namespace/file_locks.h"

namespace cairn {

struct PgFileLocksOptions {
  // The namespace's libpq URL (PgKvOptions::url).
  std::string url;
  // This host's session (cairn_sessions.id); never 0.
  uint64_t session_id = 0;
  int pool_size = 4;
  int statement_timeout_ms = 30000;
  int connect_timeout_s = 10;
};

// First key of the advisory locks of cairn_locks (the two-int4 key space,
// apart from the one-bigint keys PgKvStore::Format uses).
inline constexpr int32_t kPgLockAdvisoryClass = 0x636c6b73;  // "clks"

class PgFileLocks : public FileLocks {
 public:
  // Creates cairn_locks and its index if missing (idempotent, serialized
  // with other hosts doing the same). Part of formatting a shared volume;
  // Open runs it too, since a table of advisory locks holds nothing a
  // recreated empty one would lose.
  static absl::Status Prepare(const std::string& url, int connect_timeout_s = 10);
  static absl::StatusOr<std::unique_ptr<PgFileLocks>> Open(const PgFileLocksOptions& options);
  ~PgFileLocks() override;

  absl::StatusOr<std::optional<HeldLock>> TestRecordLock(InodeId ino, uint64_t owner,
                                                         const ByteRangeLock& lock) override;
  absl::Status ReleaseOwner(InodeId ino, uint64_t owner) override;
  // Drops every lock of this host's session (a clean unmount), so the
  // others need not wait for the session to expire.
  absl::Status ReleaseSession();

  struct Impl;

 protected:
  absl::StatusOr<std::optional<HeldLock>> TrySet(InodeId ino, uint64_t owner, LockKind kind,
                                                  const ByteRangeLock& lock) override;

 private:
  explicit PgFileLocks(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn

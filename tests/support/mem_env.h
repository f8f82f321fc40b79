// An in-memory Env that can lose power: every file and directory lives in
// this object, and DropUnsyncedData puts it back to what a machine would
// find after a power cut under strict POSIX durability (leveldb's
// fault_injection_test, rocksdb's FaultInjectionTestFS).
//
// What it promises:
// - Durability is strict. A file's data is durable only as of its last
//   File::Sync; a directory entry (made by Open with a create mode,
//   CreateDir, Rename or Link; taken away by Remove, RemoveDir or Rename)
//   only after SyncDir of the directory that holds it. SyncFilesystem
//   makes everything durable. Nothing else is, so a test can prove that
//   the code under test syncs what it relies on.
// - DropUnsyncedData(seed) is the power cut. Every directory reachable from
//   "/" gets back the entries it had at its last SyncDir (a rename synced
//   in one of its two directories reverts in the other only), every file
//   the data it had at its last Sync (none if never synced). A non-zero
//   seed tears writes: a file that had grown past its synced length keeps a
//   seeded, deterministic prefix of the unsynced tail. Handles from before
//   the cut (File, FileLock, Directory) stay safe to use and destroy but
//   fail with kIo, as the process that held them is gone; all locks are
//   released.
// - SetFilesystemActive(false) freezes the disk at the instant of the cut:
//   every call that would change something (write, truncate, sync, create,
//   rename, link, remove, mkdir, rmdir, chmod, utime) fails with kIo and
//   changes nothing, while reads go on. DeactivateAfterMutations(n) does it
//   by itself after n more such calls, to cut power between any two steps
//   of the code under test.
// - Errors carry the FsErrorKind posix_env.cc would give (kNotFound,
//   kExists, kNotDirectory, kIsDirectory, kNotEmpty, kNoSpace, kBusy ...)
//   and the path in the message. A full disk (SetCapacity) writes what fits
//   and then fails with kNoSpace.
// - LockFile locks the file (the node, like flock), exclusively within this
//   MemEnv; closing the lock's file or destroying the lock releases it.
// - OpenDirectory holds the directory: its path() is /proc/self/fd/N, as
//   with posix_env, and keeps reaching the directory that was opened after
//   its name is renamed, removed or replaced.
// - Paths are normalised (repeated slashes, "." and ".."); a relative path
//   is taken from "/".
// - Thread-safe: one mutex guards the whole tree. Handles may outlive the
//   MemEnv (they share its state).
//
// What it does not do: symlinks (there are none, so follow_symlinks changes
// nothing), a umask (permissions are taken as given), users (uid and gid
// are 0, no permission checks), sparse files (a hole or a growing Truncate
// takes space like written zeros), O_DIRECT's page-cache bypass (a direct
// file only refuses unaligned writes, as Linux does), and durability of
// permissions and mtimes (they survive a power cut as they were). Opening
// a directory fails with kIsDirectory in every mode, where posix_env's
// read-only open succeeds and its reads fail. A
// directory that a partly synced rename would leave under two names keeps
// only the first name found walking from "/" breadth-first in name order:
// a real filesystem never shows a directory twice, and a cycle could not be
// walked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/base/clock.h"
#include "backend/base/env.h"

namespace cairn {
namespace mem_env_internal {
class State;
}  // namespace mem_env_internal

class MemEnv : public Env {
 public:
  // File and directory mtimes are read from `clock`.
  explicit MemEnv(Clock* clock = Clock::Default());
  ~MemEnv() override;
  MemEnv(const MemEnv&) = delete;
  MemEnv& operator=(const MemEnv&) = delete;

  // --- Env
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                             uint32_t permissions = 0600) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status Link(const std::string& existing, const std::string& new_path) override;
  absl::Status Remove(const std::string& path) override;
  absl::Status SetPermissions(const std::string& path, uint32_t permissions) override;
  absl::Status SetModifiedTime(const std::string& path, int64_t unix_seconds) override;
  absl::Status CreateDir(const std::string& path, uint32_t permissions = 0700) override;
  absl::Status RemoveDir(const std::string& path) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<Directory>> OpenDirectory(const std::string& path) override;
  absl::StatusOr<FileInfo> Stat(const std::string& path, bool follow_symlinks = true) override;
  bool Exists(const std::string& path) override;
  absl::StatusOr<SpaceInfo> StatFs(const std::string& path) override;
  absl::Status SyncFilesystem(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path,
                                                     uint32_t permissions = 0600) override;
  absl::StatusOr<bool> IsLocked(const std::string& path) override;

  // --- Power loss
  // The power cut and the restart after it (see the header comment); 0
  // drops every unsynced byte, another seed tears unsynced appends.
  void DropUnsyncedData(uint64_t seed = 0);
  // While false, every call that would change something fails with kIo.
  void SetFilesystemActive(bool active);
  // The next `count` changing calls go through, the one after them finds
  // the filesystem inactive (as SetFilesystemActive(false)).
  void DeactivateAfterMutations(uint64_t count);

  // --- Space
  // What StatFs reports as capacity and what file data may fill; 1 TiB
  // unless set. Lowering it below what is used leaves nothing available.
  void SetCapacity(uint64_t bytes);

  // --- What the code under test did, counted since construction
  uint64_t file_syncs() const;       // File::Sync calls, failed ones too
  uint64_t directory_syncs() const;  // SyncDir calls, failed ones too
  uint64_t bytes_written() const;    // bytes PWrite stored

 private:
  const std::shared_ptr<mem_env_internal::State> state_;
};

}  // namespace cairn

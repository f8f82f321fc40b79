// The seam between cairn and the files and directories it keeps: every disk
// access of every layer goes through an Env. Production code uses
// Env::Default() (POSIX calls); tests pass an in-memory Env that can drop
// what was not made durable (a power cut), fail the Nth write or fsync, or
// tear a write (tests/support/mem_env.h, tests/support/fault_env.h), so every
// durability guardrail can be tested.
//
// Durability follows POSIX, strictly: a file's data survives a crash only
// after File::Sync; a name created, renamed or removed survives only after
// SyncDir of its directory. The in-memory Env drops everything else.
//
// Errors carry an FsErrorKind (kNoSpace for ENOSPC/EDQUOT, kNotFound,
// kExists, kBusy, kIo otherwise), with the path in the message.
//
// What cairn creates is its owner's alone: files 0600 and directories 0700
// unless a caller asks otherwise, and a file is never opened through a
// symlink in its last component, so a link planted where cairn will write
// is refused, never followed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn {

// An open file.
class File {
 public:
  virtual ~File() = default;
  virtual absl::Status PWrite(uint64_t offset, std::string_view data) = 0;
  // Reads up to `length` bytes; fewer only at end of file.
  virtual absl::StatusOr<std::string> PRead(uint64_t offset, uint64_t length) = 0;
  // Makes the file's data durable (fdatasync). A failure means data may be
  // lost whatever a later Sync says; never retry it as if it had worked.
  virtual absl::Status Sync() = 0;
  virtual absl::Status Truncate(uint64_t size) = 0;
  virtual absl::StatusOr<uint64_t> Size() = 0;
  virtual absl::Status Close() = 0;
  // Takes the space of [0, length) on its filesystem, so later writes there
  // cannot run out of it (fallocate). Writes zeros where the filesystem
  // cannot allocate.
  virtual absl::Status Allocate(uint64_t length);
};

enum class OpenMode {
  kRead,             // existing file, read only
  kWriteExisting,    // existing file, write only (kernel control files)
  kReadWrite,        // existing or new file, read/write, kept as it is
  kCreateOrTruncate, // existing or new file, read/write, emptied
  kCreateExclusive,  // new file, read/write; kExists if present
  // As kCreateExclusive, bypassing the page cache (O_DIRECT) where the
  // filesystem allows it: writes must then use 4096-aligned buffers, offsets
  // and lengths. Falls back to buffered I/O where O_DIRECT is refused.
  kCreateExclusiveDirect,
};

// What Stat tells about a path.
struct FileInfo {
  bool is_directory = false;
  bool is_regular = false;
  bool is_symlink = false;  // only when Stat does not follow links
  uint64_t size = 0;
  uint32_t permissions = 0;  // the mode's permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Identity: the same (device, inode) is the same file or directory.
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t modified_sec = 0;  // mtime, Unix seconds
};

// Space of the filesystem holding a path.
struct SpaceInfo {
  uint64_t capacity_bytes = 0;
  uint64_t available_bytes = 0;  // what an unprivileged writer may still use
};

// An exclusive lock on a file, held until destroyed: one process at a time
// (flock). The locked file's content is the holder's to write (who holds
// it, for messages).
class FileLock {
 public:
  virtual ~FileLock() = default;
  virtual File& file() = 0;
};

// A directory held open, so that what is reached through it stays the
// directory that was opened even if another is mounted over its path (a
// disk swapped under a running volume).
class Directory {
 public:
  virtual ~Directory() = default;
  // A path through the handle; Env calls on paths below it reach the
  // opened directory.
  virtual const std::string& path() const = 0;
  // The directory's identity when it was opened.
  virtual const FileInfo& info() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  // --- Files
  virtual absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                                     uint32_t permissions = 0600) = 0;
  // Replaces `to` atomically when it exists.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // A second name for a file (a hard link).
  virtual absl::Status Link(const std::string& existing, const std::string& new_path) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;  // ok if absent
  virtual absl::Status SetPermissions(const std::string& path, uint32_t permissions) = 0;
  virtual absl::Status SetModifiedTime(const std::string& path, int64_t unix_seconds) = 0;

  // --- Directories
  virtual absl::Status CreateDir(const std::string& path,
                                 uint32_t permissions = 0700) = 0;  // ok if present
  virtual absl::Status RemoveDir(const std::string& path) = 0;      // empty; ok if absent
  // fsync of a directory, so entries created or removed in it are durable.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // The names in a directory, without "." and "..".
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<Directory>> OpenDirectory(const std::string& path) = 0;

  // --- What is there
  // kNotFound when the path does not exist. With `follow_symlinks` false,
  // a symlink is described itself, not its target (lstat).
  virtual absl::StatusOr<FileInfo> Stat(const std::string& path,
                                        bool follow_symlinks = true) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual absl::StatusOr<SpaceInfo> StatFs(const std::string& path) = 0;
  // Writes back everything cached for the filesystem holding `path`
  // (syncfs): for a FUSE mount, the pages the kernel holds for it.
  virtual absl::Status SyncFilesystem(const std::string& path) = 0;

  // --- Locks
  // Creates `path` if needed and locks it; kBusy when another holds it.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path,
                                                             uint32_t permissions = 0600) = 0;
  // Whether someone holds the lock on `path` (false when it does not exist).
  virtual absl::StatusOr<bool> IsLocked(const std::string& path) = 0;
};

}  // namespace cairn

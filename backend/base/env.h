// The seam between cairn and the files on its disks. Production code uses
// Env::Default(); tests pass an Env that fails the Nth write or fsync, tears
// writes, or drops what was not fsynced (see tests/fault_env.h), so every
// durability guardrail can be tested.
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

// An open file. Errors carry FsErrorKind kNoSpace for ENOSPC/EDQUOT and kIo
// for other I/O failures, with the path in the message.
class File {
 public:
  virtual ~File() = default;
  virtual absl::Status PWrite(uint64_t offset, std::string_view data) = 0;
  // Reads up to `length` bytes; fewer only at end of file.
  virtual absl::StatusOr<std::string> PRead(uint64_t offset,
                                            uint64_t length) = 0;
  virtual absl::Status Sync() = 0;  // fdatasync
  virtual absl::Status Truncate(uint64_t size) = 0;
  virtual absl::StatusOr<uint64_t> Size() = 0;
  virtual absl::Status Close() = 0;
};

enum class OpenMode {
  kRead,            // existing file, read only
  kCreateExclusive, // new file, read/write, fails if present
  kReadWrite,       // existing or new file, read/write
  // As kCreateExclusive, bypassing the page cache (O_DIRECT) where the
  // filesystem allows it: writes must then use 4096-aligned buffers, offsets
  // and lengths. Falls back to buffered I/O where O_DIRECT is refused.
  kCreateExclusiveDirect,
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  virtual absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path,
                                                     OpenMode mode) = 0;
  virtual absl::Status Rename(const std::string& from,
                              const std::string& to) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;  // ok if absent
  virtual absl::Status CreateDir(const std::string& path) = 0;  // ok if present
  // fsync of a directory, so entries created or removed in it are durable.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

}  // namespace cairn

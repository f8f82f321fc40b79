// Filesystem error kinds carried inside absl::Status.
//
// absl's canonical codes are too coarse for POSIX (ENOTEMPTY, EISDIR, ENODATA
// all look like FAILED_PRECONDITION or NOT_FOUND). Backend code that knows the
// exact POSIX condition attaches an FsErrorKind payload; fs/ maps that payload
// (or, when absent, the canonical code) to an errno in one place. Backend code
// itself never sees errno values from this header.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cairn {

enum class FsErrorKind {
  kNotFound,        // ENOENT
  kExists,          // EEXIST
  kNotDirectory,    // ENOTDIR
  kIsDirectory,     // EISDIR
  kNotEmpty,        // ENOTEMPTY
  kInvalid,         // EINVAL
  kNameTooLong,     // ENAMETOOLONG
  kNoAttribute,     // ENODATA (xattr missing)
  kRange,           // ERANGE
  kTooManyLinks,    // EMLINK
  kNoSpace,         // ENOSPC
  kIo,              // EIO
  kNotPermitted,    // EPERM
  kAccessDenied,    // EACCES
  kFileTooBig,      // EFBIG
  kNotSupported,    // EOPNOTSUPP
  kBusy,            // EBUSY
  kReadOnly,        // EROFS
  kStale,           // ESTALE: the inode is gone; the kernel looks the path up again
  kWouldBlock,      // EAGAIN: a lock another owner holds, asked for without waiting
  kInterrupted,     // EINTR: a wait the caller interrupted (a signal)
  kNoLocks,         // ENOLCK: the shared lock table cannot be reached or refused us
};

// Builds a status whose canonical code fits `kind` and which carries `kind`
// as a payload, so the exact POSIX condition survives across layers.
absl::Status FsError(FsErrorKind kind, std::string_view message);

// The kind attached by FsError, if any.
std::optional<FsErrorKind> GetFsErrorKind(const absl::Status& status);

// The one conversion of a failed system call: the FsErrorKind that fits
// errno `err` (kIo for those without their own kind), the errno itself
// (GetErrno), and the message "WHAT: strerror(err)".
absl::Status ErrnoError(int err, const std::string& what);

// The errno ErrnoError recorded, if any.
std::optional<int> GetErrno(const absl::Status& status);

// True when `status` says something does not exist, whichever way it was
// made (FsError kNotFound or absl::NotFoundError).
inline bool IsNotFoundError(const absl::Status& status) {
  return absl::IsNotFound(status) || GetFsErrorKind(status) == FsErrorKind::kNotFound;
}

}  // namespace cairn

#include "fs/errno_map.h"

#include <cerrno>

#include "backend/base/fs_error.h"

namespace cairn {

int ErrnoFromStatus(const absl::Status& status) {
  if (status.ok()) return 0;
  if (std::optional<FsErrorKind> kind = GetFsErrorKind(status)) {
    switch (*kind) {
      case FsErrorKind::kNotFound: return ENOENT;
      case FsErrorKind::kExists: return EEXIST;
      case FsErrorKind::kNotDirectory: return ENOTDIR;
      case FsErrorKind::kIsDirectory: return EISDIR;
      case FsErrorKind::kNotEmpty: return ENOTEMPTY;
      case FsErrorKind::kInvalid: return EINVAL;
      case FsErrorKind::kNameTooLong: return ENAMETOOLONG;
      case FsErrorKind::kNoAttribute: return ENODATA;
      case FsErrorKind::kRange: return ERANGE;
      case FsErrorKind::kTooManyLinks: return EMLINK;
      case FsErrorKind::kNoSpace: return ENOSPC;
      case FsErrorKind::kIo: return EIO;
      case FsErrorKind::kNotPermitted: return EPERM;
      case FsErrorKind::kAccessDenied: return EACCES;
      case FsErrorKind::kFileTooBig: return EFBIG;
      case FsErrorKind::kNotSupported: return EOPNOTSUPP;
      case FsErrorKind::kBusy: return EBUSY;
      case FsErrorKind::kReadOnly: return EROFS;
      case FsErrorKind::kStale: return ESTALE;
      case FsErrorKind::kWouldBlock: return EAGAIN;
      case FsErrorKind::kInterrupted: return EINTR;
      case FsErrorKind::kNoLocks: return ENOLCK;
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kNotFound: return ENOENT;
    case absl::StatusCode::kAlreadyExists: return EEXIST;
    case absl::StatusCode::kInvalidArgument: return EINVAL;
    case absl::StatusCode::kPermissionDenied: return EACCES;
    case absl::StatusCode::kResourceExhausted: return ENOSPC;
    case absl::StatusCode::kOutOfRange: return ERANGE;
    case absl::StatusCode::kUnimplemented: return EOPNOTSUPP;
    case absl::StatusCode::kFailedPrecondition: return EINVAL;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return EAGAIN;
    default: return EIO;
  }
}

}  // namespace cairn

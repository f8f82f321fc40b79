#include "backend/base/fs_error.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cairn {
namespace {

constexpr absl::string_view kPayloadUrl = "cairn/fs-error-kind";
constexpr absl::string_view kErrnoUrl = "cairn/errno";

absl::StatusCode CanonicalCode(FsErrorKind kind) {
  switch (kind) {
    case FsErrorKind::kNotFound:
    case FsErrorKind::kNoAttribute:
    case FsErrorKind::kStale:
      return absl::StatusCode::kNotFound;
    case FsErrorKind::kExists:
      return absl::StatusCode::kAlreadyExists;
    case FsErrorKind::kNotDirectory:
    case FsErrorKind::kIsDirectory:
    case FsErrorKind::kNotEmpty:
    case FsErrorKind::kBusy:
    case FsErrorKind::kReadOnly:
      return absl::StatusCode::kFailedPrecondition;
    case FsErrorKind::kInvalid:
    case FsErrorKind::kNameTooLong:
      return absl::StatusCode::kInvalidArgument;
    case FsErrorKind::kRange:
    case FsErrorKind::kFileTooBig:
      return absl::StatusCode::kOutOfRange;
    case FsErrorKind::kTooManyLinks:
    case FsErrorKind::kNoSpace:
      return absl::StatusCode::kResourceExhausted;
    case FsErrorKind::kIo:
      return absl::StatusCode::kDataLoss;
    case FsErrorKind::kNotPermitted:
    case FsErrorKind::kAccessDenied:
      return absl::StatusCode::kPermissionDenied;
    case FsErrorKind::kNotSupported:
      return absl::StatusCode::kUnimplemented;
    case FsErrorKind::kWouldBlock:
      return absl::StatusCode::kUnavailable;
    case FsErrorKind::kInterrupted:
      return absl::StatusCode::kCancelled;
    case FsErrorKind::kNoLocks:
      return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kUnknown;
}

FsErrorKind KindOfErrno(int err) {
  switch (err) {
    case ENOENT: return FsErrorKind::kNotFound;
    case EEXIST: return FsErrorKind::kExists;
    case ENOTDIR: return FsErrorKind::kNotDirectory;
    case EISDIR: return FsErrorKind::kIsDirectory;
    case ENOTEMPTY: return FsErrorKind::kNotEmpty;
    case EINVAL: return FsErrorKind::kInvalid;
    case ENAMETOOLONG: return FsErrorKind::kNameTooLong;
    case ENODATA: return FsErrorKind::kNoAttribute;
    case ERANGE: return FsErrorKind::kRange;
    case EMLINK: return FsErrorKind::kTooManyLinks;
    case ENOSPC:
    case EDQUOT: return FsErrorKind::kNoSpace;
    case EPERM: return FsErrorKind::kNotPermitted;
    case EACCES: return FsErrorKind::kAccessDenied;
    case EFBIG: return FsErrorKind::kFileTooBig;
    case EOPNOTSUPP: return FsErrorKind::kNotSupported;
    case EROFS: return FsErrorKind::kReadOnly;
    case ESTALE: return FsErrorKind::kStale;
    case EBUSY:
    case EWOULDBLOCK: return FsErrorKind::kBusy;
    default: return FsErrorKind::kIo;
  }
}

}  // namespace

absl::Status ErrnoError(int err, const std::string& what) {
  absl::Status status = FsError(KindOfErrno(err), absl::StrCat(what, ": ", strerror(err)));
  status.SetPayload(kErrnoUrl, absl::Cord(std::to_string(err)));
  return status;
}

std::optional<int> GetErrno(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrnoUrl);
  int err = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &err)) return std::nullopt;
  return err;
}

absl::Status FsError(FsErrorKind kind, std::string_view message) {
  absl::Status status(CanonicalCode(kind),
                      absl::string_view(message.data(), message.size()));
  status.SetPayload(kPayloadUrl,
                    absl::Cord(std::to_string(static_cast<int>(kind))));
  return status;
}

std::optional<FsErrorKind> GetFsErrorKind(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kPayloadUrl);
  if (!payload) return std::nullopt;
  int value = 0;
  for (char c : std::string(*payload)) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return static_cast<FsErrorKind>(value);
}

}  // namespace cairn

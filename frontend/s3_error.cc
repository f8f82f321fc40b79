#include "frontend/s3_error.h"

#include <optional>
#include <string>

#include "absl/strings/cord.h"

namespace cairn::frontend {
namespace {

constexpr std::string_view kPayloadUrl = "cairn.frontend.S3ErrorCode";

struct Entry {
  std::string_view name;
  int http_status;
};

Entry EntryOf(S3ErrorCode code) {
  switch (code) {
    case S3ErrorCode::kAccessDenied: return {"AccessDenied", 403};
    case S3ErrorCode::kAuthorizationHeaderMalformed: return {"AuthorizationHeaderMalformed", 400};
    case S3ErrorCode::kBadDigest: return {"BadDigest", 400};
    case S3ErrorCode::kBucketAlreadyExists: return {"BucketAlreadyExists", 409};
    case S3ErrorCode::kBucketAlreadyOwnedByYou: return {"BucketAlreadyOwnedByYou", 409};
    case S3ErrorCode::kBucketNotEmpty: return {"BucketNotEmpty", 409};
    case S3ErrorCode::kEntityTooLarge: return {"EntityTooLarge", 400};
    case S3ErrorCode::kEntityTooSmall: return {"EntityTooSmall", 400};
    case S3ErrorCode::kExistingObjectIsDirectory: return {"ExistingObjectIsDirectory", 409};
    case S3ErrorCode::kIncompleteBody: return {"IncompleteBody", 400};
    case S3ErrorCode::kInternalError: return {"InternalError", 500};
    case S3ErrorCode::kInvalidAccessKeyId: return {"InvalidAccessKeyId", 403};
    case S3ErrorCode::kInvalidArgument: return {"InvalidArgument", 400};
    case S3ErrorCode::kInvalidBucketName: return {"InvalidBucketName", 400};
    case S3ErrorCode::kInvalidDigest: return {"InvalidDigest", 400};
    case S3ErrorCode::kInvalidPart: return {"InvalidPart", 400};
    case S3ErrorCode::kInvalidPartOrder: return {"InvalidPartOrder", 400};
    case S3ErrorCode::kInvalidRange: return {"InvalidRange", 416};
    case S3ErrorCode::kInvalidRequest: return {"InvalidRequest", 400};
    case S3ErrorCode::kKeyTooLongError: return {"KeyTooLongError", 400};
    case S3ErrorCode::kMalformedXML: return {"MalformedXML", 400};
    case S3ErrorCode::kMethodNotAllowed: return {"MethodNotAllowed", 405};
    case S3ErrorCode::kMissingContentLength: return {"MissingContentLength", 411};
    case S3ErrorCode::kMissingSecurityHeader: return {"MissingSecurityHeader", 400};
    case S3ErrorCode::kNoSuchBucket: return {"NoSuchBucket", 404};
    case S3ErrorCode::kNoSuchKey: return {"NoSuchKey", 404};
    case S3ErrorCode::kNoSuchUpload: return {"NoSuchUpload", 404};
    case S3ErrorCode::kNotImplemented: return {"NotImplemented", 501};
    case S3ErrorCode::kObjectParentIsFile: return {"ObjectParentIsFile", 409};
    case S3ErrorCode::kPreconditionFailed: return {"PreconditionFailed", 412};
    case S3ErrorCode::kNotModified: return {"NotModified", 304};
    case S3ErrorCode::kRequestTimeTooSkewed: return {"RequestTimeTooSkewed", 403};
    case S3ErrorCode::kSignatureDoesNotMatch: return {"SignatureDoesNotMatch", 403};
    case S3ErrorCode::kSlowDown: return {"SlowDown", 503};
    case S3ErrorCode::kXAmzContentSHA256Mismatch: return {"XAmzContentSHA256Mismatch", 400};
  }
  return {"InternalError", 500};
}

}  // namespace

absl::Status S3Error(S3ErrorCode code, std::string_view message) {
  absl::Status status(absl::StatusCode::kFailedPrecondition, std::string(message));
  status.SetPayload(std::string(kPayloadUrl), absl::Cord(std::to_string(static_cast<int>(code))));
  return status;
}

S3ErrorCode S3ErrorCodeOf(const absl::Status& status) {
  auto payload = status.GetPayload(std::string(kPayloadUrl));
  if (!payload) return S3ErrorCode::kInternalError;
  return static_cast<S3ErrorCode>(std::stoi(std::string(*payload)));
}

std::string_view S3ErrorName(S3ErrorCode code) { return EntryOf(code).name; }
int S3ErrorHttpStatus(S3ErrorCode code) { return EntryOf(code).http_status; }

}  // namespace cairn::frontend

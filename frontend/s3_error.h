// The errors an S3 request can end in, as S3 names them. A handler returns
// an absl::Status made by S3Error(); the server turns it into the HTTP
// status and the <Error> document S3 clients parse. A Status that carries
// no S3 code (a failure of the volume) answers 500 InternalError.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cairn::frontend {

enum class S3ErrorCode {
  kAccessDenied,                  // 403
  kAuthorizationHeaderMalformed,  // 400
  kBadDigest,                     // 400: Content-MD5 or a checksum did not match
  kBucketAlreadyExists,           // 409: another user's
  kBucketAlreadyOwnedByYou,       // 409
  kBucketNotEmpty,                // 409
  kEntityTooLarge,                // 400
  kEntityTooSmall,                // 400: a part but the last under 5 MiB
  kExistingObjectIsDirectory,     // 409 (not AWS: a key where a directory is)
  kIncompleteBody,                // 400
  kInternalError,                 // 500
  kInvalidAccessKeyId,            // 403
  kInvalidArgument,               // 400
  kInvalidBucketName,             // 400
  kInvalidDigest,                 // 400
  kInvalidPart,                   // 400: a part missing or with another ETag
  kInvalidPartOrder,              // 400
  kInvalidRange,                  // 416
  kInvalidRequest,                // 400
  kKeyTooLongError,               // 400
  kMalformedXML,                  // 400
  kMethodNotAllowed,              // 405
  kMissingContentLength,          // 411
  kMissingSecurityHeader,         // 400
  kNoSuchBucket,                  // 404
  kNoSuchKey,                     // 404
  kNoSuchUpload,                  // 404
  kNotImplemented,                // 501
  kObjectParentIsFile,            // 409 (not AWS: a key below a file)
  kPreconditionFailed,            // 412
  kNotModified,                   // 304
  kRequestTimeTooSkewed,          // 403
  kSignatureDoesNotMatch,         // 403
  kSlowDown,                      // 503
  kXAmzContentSHA256Mismatch,     // 400
};

// A Status whose payload names `code`; the message goes to the client.
absl::Status S3Error(S3ErrorCode code, std::string_view message);
// The code `status` carries; kInternalError when it carries none.
S3ErrorCode S3ErrorCodeOf(const absl::Status& status);
// "NoSuchKey", ... as in the <Code> element.
std::string_view S3ErrorName(S3ErrorCode code);
int S3ErrorHttpStatus(S3ErrorCode code);

}  // namespace cairn::frontend

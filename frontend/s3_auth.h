// Who sent an S3 request, and whether its body is what was signed: AWS
// Signature Version 4 checked on the server side (Authorization header and
// presigned URLs), the keys file, and the aws-chunked body framing that
// SDKs use for signed streaming uploads and trailing checksums.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cairn::frontend {

// One line of the keys file:
//   ACCESS_KEY SECRET_KEY UID GID [ro] [BUCKET,...]
struct S3Key {
  std::string access_key;
  std::string secret_key;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool read_only = false;
  std::vector<std::string> buckets;  // empty: every bucket
};

// Parses the keys file's text ('#' starts a comment; blank lines skipped).
// An error names the line and what is wrong with it.
absl::StatusOr<std::vector<S3Key>> ParseKeysFile(std::string_view text);

// The keys file, read again when its mtime, size or inode changes, so that
// adding or removing a key needs no restart. Refuses a file that is not
// owner-only (mode & 077) or not owned by the daemon's user.
class KeysFile {
 public:
  explicit KeysFile(std::string path) : path_(std::move(path)) {}
  // The key named `access_key`, after reloading the file if it changed;
  // nullopt when there is no such key; an error when the file is missing,
  // unsafe or malformed (the last good keys are not used then).
  absl::StatusOr<std::optional<S3Key>> Find(std::string_view access_key);
  const std::string& path() const { return path_; }

 private:
  absl::Status ReloadIfChanged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string path_;
  absl::Mutex mu_;
  struct Stamp {
    int64_t mtime_ns = -1;
    int64_t size = -1;
    uint64_t ino = 0;
    bool operator==(const Stamp&) const = default;
  };
  Stamp stamp_ ABSL_GUARDED_BY(mu_);
  std::vector<S3Key> keys_ ABSL_GUARDED_BY(mu_);
};

// What the verifier needs from an HTTP request, as received.
struct SignedRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // the raw request-target: "/bucket/key%20x?list-type=2&prefix=a"
  // Header names as sent (any case); values as sent.
  std::vector<std::pair<std::string, std::string>> headers;
};

// How the body is protected.
enum class PayloadKind {
  kSha256,                    // x-amz-content-sha256 is the body's hex SHA-256
  kUnsigned,                  // UNSIGNED-PAYLOAD (and presigned URLs)
  kStreamingSigned,           // STREAMING-AWS4-HMAC-SHA256-PAYLOAD
  kStreamingSignedTrailer,    // STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
  kStreamingUnsignedTrailer,  // STREAMING-UNSIGNED-PAYLOAD-TRAILER
};

struct Authenticated {
  S3Key key;
  PayloadKind payload = PayloadKind::kUnsigned;
  std::string payload_sha256;  // for kSha256: the lowercase hex to check the body against
  // For the streaming kinds that sign chunks: what the chunk signatures
  // chain from.
  std::string seed_signature;
  std::string signing_key;  // raw 32-byte HMAC key of the request's scope
  std::string amz_date;     // "20130524T000000Z"
  std::string scope;        // "20130524/us-east-1/s3/aws4_request"
};

// Checks the request's signature (Authorization: AWS4-HMAC-SHA256 ... or the
// X-Amz-* query parameters of a presigned URL) against the key's secret.
// Errors are S3Error statuses (frontend/s3_error.h): AccessDenied for an
// anonymous request or an expired presigned URL, InvalidAccessKeyId,
// SignatureDoesNotMatch, RequestTimeTooSkewed (more than 15 minutes from
// `now`), AuthorizationHeaderMalformed (including a wrong region or
// service in the scope), InvalidRequest (as AWS: a header-signed request
// without x-amz-content-sha256, or Signature Version 2), InvalidArgument (a
// bad x-amz-content-sha256 value or %-escape). A keys file that cannot be
// used is returned as KeysFile::Find reports it, with no S3 code (500).
absl::StatusOr<Authenticated> Authenticate(const SignedRequest& request, KeysFile& keys,
                                           std::string_view region, absl::Time now);

// A running x-amz-checksum-* value of a body (CRC32, CRC32C, CRC64NVME,
// SHA-1 or SHA-256), finished as S3 writes it: base64 of the big-endian
// CRC or of the digest.
class PayloadChecksum {
 public:
  // For a header name in lower case ("x-amz-checksum-crc32c"); null if it
  // names none of the five.
  static std::unique_ptr<PayloadChecksum> For(std::string_view header);
  virtual ~PayloadChecksum() = default;
  virtual void Update(std::string_view data) = 0;
  virtual std::string Finish() = 0;  // once
};

// Decodes an aws-chunked body ("SIZE[;chunk-signature=SIG]\r\nDATA\r\n" ...
// "0[;chunk-signature=SIG]\r\n" [trailers "\r\n"] "\r\n"), checking each
// chunk's signature when the kind signs chunks, and at the end the trailing
// checksum header (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or
// -sha256, named by x-amz-trailer) against the decoded data, and the
// trailer's signature for kStreamingSignedTrailer. Memory is bounded: at most one chunk header and
// the trailer are buffered, never a whole chunk.
class AwsChunkedDecoder {
 public:
  // `trailer_name`: the x-amz-trailer header's value (lowercase), or empty.
  AwsChunkedDecoder(const Authenticated& auth, std::string trailer_name);
  // Feeds the next bytes of the raw body; appends the decoded data to `out`.
  // An error (S3Error: IncompleteBody, SignatureDoesNotMatch, BadDigest,
  // InvalidRequest for bad framing) is final. A chunk's data is passed on
  // before its signature (which follows it) is checked, so nothing decoded
  // may be made visible to readers before done().
  absl::Status Feed(std::string_view raw, std::string& out);
  // True once the final chunk and the trailer were read and checked.
  bool done() const;
  // Call when the raw body ended: an error unless done().
  absl::Status Finish() const;
  // The decoded trailer's checksum header and value, if one came.
  std::optional<std::pair<std::string, std::string>> trailer_checksum() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace cairn::frontend

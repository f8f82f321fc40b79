// AWS Signature Version 4 for S3 requests sent with an Authorization header.
//
// Only what cairn's S3 backend sends is covered: single-chunk payloads (a
// SHA-256 or UNSIGNED-PAYLOAD), no presigned URLs, no chunked uploads. S3 does
// not normalise or re-encode paths, so the path is signed exactly as sent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty if none
};

struct SigningRequest {
  std::string method;  // "GET", "PUT", ...
  std::string host;    // Host header value, with ":port" when not the scheme's default
  std::string path;    // the request path exactly as sent, already URI-encoded ("/bucket/my%20key")
  // Decoded name, value (value may be empty).
  std::vector<std::pair<std::string, std::string>> query;
  // Other headers to sign, names in any case: range, content-type, x-amz-*...
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_sha256;  // lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string amz_date;        // "20130524T000000Z"
  std::string region;          // "us-east-1"
  std::string service = "s3";
  // S3 wants x-amz-content-sha256 sent and signed; the generic test suite does not.
  bool sign_content_sha256 = true;
};

// The headers to add to the request: "Authorization", "x-amz-date", and when set
// "x-amz-content-sha256" and "x-amz-security-token" (session token). All signed.
// Entries in request.headers named host, x-amz-date or (when signed)
// x-amz-content-sha256 are ignored: the request fields are what gets signed.
std::vector<std::pair<std::string, std::string>> SignV4(const SigningRequest& request,
                                                        const Credentials& credentials);

// Pieces, exposed for tests and debugging (never log secrets).
// The canonical request includes host, x-amz-date and, when signed,
// x-amz-content-sha256. It cannot see Credentials, so a session token appears
// only when the caller put x-amz-security-token into request.headers (which is
// what SignV4 does).
std::string CanonicalRequest(const SigningRequest& request);
std::string StringToSign(const SigningRequest& request);

// RFC 3986 percent-encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) are
// kept, every other byte becomes %XX with uppercase hex; '/' is kept unless
// encode_slash. Use encode_slash=false to build an S3 object path from a key.
std::string UriEncode(std::string_view text, bool encode_slash);

std::string Sha256Hex(std::string_view data);

// SigV4 "trimall" of a header value: leading and trailing whitespace
// dropped, every inner run (the line breaks of folded headers included)
// one space, because proxies may re-space header values in transit.
std::string TrimAll(std::string_view value);

// "YYYYMMDDTHHMMSSZ" in UTC, the x-amz-date format.
std::string AmzDate(int64_t unix_seconds);

}  // namespace cairn::s3

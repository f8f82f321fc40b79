#include "frontend/s3_auth.h"

#include <fcntl.h>
#include <isa-l/crc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "backend/base/crc32c.h"
#include "backend/base/crc64nvme.h"
#include "backend/s3/sigv4.h"
#include "frontend/s3_error.h"

namespace cairn::frontend {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kScopeTerminator = "aws4_request";
constexpr std::string_view kService = "s3";
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr absl::Duration kMaxClockSkew = absl::Minutes(15);
constexpr int64_t kMaxPresignedExpirySeconds = 7 * 24 * 3600;  // AWS's limit
constexpr size_t kSignatureHexSize = 64;
constexpr size_t kMaxChunkHeaderBytes = 4 * 1024;
constexpr size_t kMaxTrailerBytes = 16 * 1024;

// ---------------------------------------------------------------------------
// Strings. Debian's Abseil has its own string_view, which std::string_view
// does not convert to, so the absl::Str* helpers are not used here.

void AppendPiece(std::string& out, std::string_view text) { out.append(text); }
template <std::integral Number>
void AppendPiece(std::string& out, Number number) {
  out += std::to_string(number);
}
template <typename... Pieces>
void Append(std::string& out, const Pieces&... pieces) {
  (AppendPiece(out, pieces), ...);
}
template <typename... Pieces>
std::string Cat(const Pieces&... pieces) {
  std::string out;
  Append(out, pieces...);
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    if (end == std::string_view::npos) return parts;
    text.remove_prefix(end + 1);
  }
}

bool IsHttpWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsHttpWhitespace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsHttpWhitespace(text.back())) text.remove_suffix(1);
  return text;
}

std::string ToLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// ---------------------------------------------------------------------------
// Keys file

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !IsBlank(line[i])) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

// Plain decimal only: "+5", " 5" or "0x5" in a keys file is a typo, not an id.
std::optional<uint32_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(value);
}

absl::Status KeysLineError(int line_number, std::string_view what) {
  return absl::InvalidArgumentError(Cat("keys file line ", line_number, ": ", what));
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

absl::Status CheckKeysFileIsPrivate(const std::string& path, const struct stat& st) {
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "keys file %s is readable by others (mode %04o): chmod 600 it", path, st.st_mode & 07777));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(
        absl::StrFormat("keys file %s is owned by uid %u, not by the daemon's uid %u: chown it",
                        path, st.st_uid, geteuid()));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(Cat("keys file ", path, " is not a regular file"));
  }
  return absl::OkStatus();
}

absl::Status ErrnoError(int error, std::string_view what) {
  std::string message = Cat(what, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// The keys file's metadata, checked on every call and not only when it
// changed: chmod and chown do not touch mtime.
absl::StatusOr<struct stat> StatPrivateKeysFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(Cat("keys file ", path,
                                     " does not exist: create it (mode 600) with lines "
                                     "'ACCESS_KEY SECRET_KEY UID GID [ro] [BUCKET,...]'"));
    }
    return ErrnoError(error, Cat("cannot stat keys file ", path));
  }
  absl::Status safe = CheckKeysFileIsPrivate(path, st);
  if (!safe.ok()) return safe;
  return st;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct LoadedKeys {
  struct stat st;  // of the file the keys were read from
  std::vector<S3Key> keys;
};

absl::StatusOr<LoadedKeys> LoadKeysFile(const std::string& path) {
  FileDescriptor fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError(errno, Cat("cannot open keys file ", path));
  // The file may have been replaced since it was stat'ed: judge and stamp
  // what was actually opened.
  LoadedKeys loaded;
  if (fstat(fd.get(), &loaded.st) != 0) {
    return ErrnoError(errno, Cat("cannot stat keys file ", path));
  }
  absl::Status safe = CheckKeysFileIsPrivate(path, loaded.st);
  if (!safe.ok()) return safe;
  // Secrets pass through these buffers: they are wiped, not just freed.
  std::string text;
  char buffer[4096];
  while (true) {
    ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    int error = errno;
    OPENSSL_cleanse(buffer, sizeof(buffer));
    OPENSSL_cleanse(text.data(), text.size());
    return ErrnoError(error, Cat("cannot read keys file ", path));
  }
  OPENSSL_cleanse(buffer, sizeof(buffer));
  absl::StatusOr<std::vector<S3Key>> keys = ParseKeysFile(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        Cat(path, ": ", std::string(keys.status().message())));
  }
  loaded.keys = std::move(*keys);
  return loaded;
}

// ---------------------------------------------------------------------------
// Hashing

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (char c : bytes) {
    auto byte = static_cast<unsigned char>(c);
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

// Should OpenSSL fail, the MAC comes back empty, which matches no signature:
// the check fails closed.
std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &mac_size);
  std::string out(reinterpret_cast<const char*>(mac), mac_size);
  OPENSSL_cleanse(mac, sizeof(mac));
  return out;
}

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(written));
  return out;
}

std::string BigEndianBase64(uint32_t value) {
  const unsigned char bytes[4] = {
      static_cast<unsigned char>(value >> 24), static_cast<unsigned char>(value >> 16),
      static_cast<unsigned char>(value >> 8), static_cast<unsigned char>(value)};
  return Base64(bytes, sizeof(bytes));
}

std::string BigEndianBase64(uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (56 - 8 * i));
  return Base64(bytes, sizeof(bytes));
}

struct DigestContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using DigestContext = std::unique_ptr<EVP_MD_CTX, DigestContextDeleter>;

DigestContext NewDigest(const EVP_MD* type) {
  DigestContext context(EVP_MD_CTX_new());
  if (context == nullptr || EVP_DigestInit_ex(context.get(), type, nullptr) != 1) return nullptr;
  return context;
}

// Finishes `context` and starts it again for the next message.
std::string FinishDigest(EVP_MD_CTX* context) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context, digest, &size);
  EVP_DigestInit_ex(context, EVP_MD_CTX_get0_md(context), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

// The signature strings are hex we produce ourselves and hex the client
// sent; comparing them in constant time keeps the time a forgery attempt
// takes from telling how many leading characters it got right.
bool SignaturesEqual(std::string_view expected, std::string_view received) {
  return expected.size() == received.size() &&
         CRYPTO_memcmp(expected.data(), received.data(), expected.size()) == 0;
}

bool IsLowerOrUpperHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool IsHexSha256(std::string_view text) {
  return text.size() == kSignatureHexSize &&
         std::all_of(text.begin(), text.end(), IsLowerOrUpperHex);
}

// ---------------------------------------------------------------------------
// Canonical request

// Request headers with lowercase names, in the order received.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

HeaderList LowercaseHeaders(const SignedRequest& request) {
  HeaderList headers;
  headers.reserve(request.headers.size());
  for (const auto& [name, value] : request.headers) {
    headers.emplace_back(ToLower(name), value);
  }
  return headers;
}

std::vector<const std::string*> ValuesOf(const HeaderList& headers, std::string_view name) {
  std::vector<const std::string*> values;
  for (const auto& [header_name, value] : headers) {
    if (header_name == name) values.push_back(&value);
  }
  return values;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// '+' stays '+': SigV4 clients percent-encode spaces, so a raw '+' was meant
// literally (S3 itself reads it that way).
std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int high = HexValue(text[i + 1]);
    int low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

// Clients disagree on which characters to escape in a path ('$', '!', ...)
// while each signs what it sent; decoding and re-encoding every segment the
// RFC 3986 way gives the one form they all mean.
absl::StatusOr<std::string> CanonicalUri(std::string_view path) {
  if (path.empty()) return std::string("/");
  std::string canonical;
  canonical.reserve(path.size());
  for (std::string_view segment : Split(path, '/')) {
    std::optional<std::string> decoded = PercentDecode(segment);
    if (!decoded) {
      return S3Error(S3ErrorCode::kInvalidArgument,
                     Cat("the request path has a malformed %-escape in '", segment, "'"));
    }
    canonical += s3::UriEncode(*decoded, /*encode_slash=*/true);
    canonical += '/';
  }
  canonical.pop_back();  // the '/' after the last segment
  return canonical;
}

using QueryList = std::vector<std::pair<std::string, std::string>>;

// Decoded name and value of every parameter, in the order sent; a parameter
// without '=' ("?lifecycle") has an empty value.
absl::StatusOr<QueryList> ParseQuery(std::string_view query) {
  QueryList params;
  if (query.empty()) return params;
  for (std::string_view param : Split(query, '&')) {
    if (param.empty()) continue;
    size_t equals = param.find('=');
    std::string_view raw_name = param.substr(0, equals);
    std::string_view raw_value = equals == std::string_view::npos ? "" : param.substr(equals + 1);
    std::optional<std::string> name = PercentDecode(raw_name);
    std::optional<std::string> value = PercentDecode(raw_value);
    if (!name || !value) {
      return S3Error(S3ErrorCode::kInvalidArgument,
                     Cat("the query string has a malformed %-escape in '", param, "'"));
    }
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

std::string CanonicalQuery(const QueryList& params, bool presigned) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const auto& [name, value] : params) {
    if (presigned && name == "X-Amz-Signature") continue;
    encoded.emplace_back(s3::UriEncode(name, true), s3::UriEncode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string query;
  for (const auto& [name, value] : encoded) {
    if (!query.empty()) query += '&';
    Append(query, name, "=", value);
  }
  return query;
}

const std::string* FindParam(const QueryList& params, std::string_view name) {
  for (const auto& [param_name, value] : params) {
    if (param_name == name) return &value;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The signature's parameters, from the Authorization header or the query

struct SignatureParams {
  std::string access_key;
  std::string scope_date;  // "20130524"
  std::string scope_region;
  std::string scope_service;
  std::string signed_headers;  // "host;range;x-amz-date", as sent
  std::string signature;       // lowercase hex
  std::string amz_date;        // "20130524T000000Z"
  absl::Time time;
  int64_t expires_seconds = 0;  // presigned only
};

absl::Status Malformed(std::string_view message) {
  return S3Error(S3ErrorCode::kAuthorizationHeaderMalformed, message);
}

// "AK/20130524/us-east-1/s3/aws4_request". The access key is whatever comes
// before the last four parts.
absl::Status ParseCredential(std::string_view credential, SignatureParams& params) {
  std::vector<std::string_view> parts = Split(credential, '/');
  if (parts.size() < 5) {
    return Malformed(Cat("the credential '", credential,
                         "' is not ACCESS_KEY/DATE/REGION/SERVICE/aws4_request"));
  }
  size_t n = parts.size();
  if (parts[n - 1] != kScopeTerminator) {
    return Malformed(Cat("the credential '", credential, "' does not end in /aws4_request"));
  }
  size_t access_key_end = credential.size() - (parts[n - 4].size() + parts[n - 3].size() +
                                               parts[n - 2].size() + parts[n - 1].size() + 4);
  params.access_key = std::string(credential.substr(0, access_key_end));
  params.scope_date = std::string(parts[n - 4]);
  params.scope_region = std::string(parts[n - 3]);
  params.scope_service = std::string(parts[n - 2]);
  if (params.access_key.empty()) return Malformed("the credential has no access key");
  return absl::OkStatus();
}

// Parsed by hand: absl's %Y would swallow the whole "20130524T..." run.
std::optional<absl::Time> ParseAmzDate(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
  auto number = [&](size_t start, size_t size) -> std::optional<int> {
    int value = 0;
    for (char c : text.substr(start, size)) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    return value;
  };
  std::optional<int> year = number(0, 4), month = number(4, 2), day = number(6, 2),
                     hour = number(9, 2), minute = number(11, 2), second = number(13, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  absl::CivilSecond civil(*year, *month, *day, *hour, *minute, *second);
  // CivilSecond normalises (Feb 30 becomes Mar 2); a date that moved was invalid.
  if (civil.month() != *month || civil.day() != *day || civil.hour() != *hour ||
      civil.minute() != *minute || civil.second() != *second) {
    return std::nullopt;
  }
  return absl::FromCivil(civil, absl::UTCTimeZone());
}

std::optional<absl::Time> ParseHttpDate(std::string_view text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", std::string(text), absl::UTCTimeZone(), &time,
                       &error)) {
    return std::nullopt;
  }
  return time;
}

std::string FormatAmzDate(absl::Time time) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", time, absl::UTCTimeZone());
}

absl::Status CheckSignatureHex(std::string_view signature) {
  if (!IsHexSha256(signature)) {
    return Malformed(Cat("the signature '", signature, "' is not 64 hex digits"));
  }
  return absl::OkStatus();
}

// Authorization: AWS4-HMAC-SHA256 Credential=AK/..., SignedHeaders=a;b, Signature=hex
absl::StatusOr<SignatureParams> ParseAuthorizationHeader(std::string_view header,
                                                         const HeaderList& headers) {
  header = Trim(header);
  if (!header.starts_with(kAlgorithm) ||
      (header.size() > kAlgorithm.size() && !IsHttpWhitespace(header[kAlgorithm.size()]))) {
    if (header.starts_with("AWS ")) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     "Signature Version 2 is not supported: sign requests with AWS4-HMAC-SHA256 "
                     "(Signature Version 4)");
    }
    return Malformed("the Authorization header does not start with AWS4-HMAC-SHA256");
  }
  SignatureParams params;
  bool have_credential = false, have_signed_headers = false, have_signature = false;
  for (std::string_view component : Split(header.substr(kAlgorithm.size()), ',')) {
    component = Trim(component);
    if (component.empty()) continue;
    size_t equals = component.find('=');
    if (equals == std::string_view::npos) {
      return Malformed(
          Cat("the Authorization header has '", component, "' where NAME=VALUE was expected"));
    }
    std::string_view name = component.substr(0, equals);
    std::string_view value = component.substr(equals + 1);
    if (name == "Credential") {
      absl::Status status = ParseCredential(value, params);
      if (!status.ok()) return status;
      have_credential = true;
    } else if (name == "SignedHeaders") {
      params.signed_headers = std::string(value);
      have_signed_headers = true;
    } else if (name == "Signature") {
      params.signature = ToLower(value);
      have_signature = true;
    } else {
      return Malformed(Cat("the Authorization header has an unknown part '", name, "'"));
    }
  }
  if (!have_credential || !have_signed_headers || !have_signature) {
    return Malformed(
        "the Authorization header needs Credential=, SignedHeaders= and Signature= parts");
  }
  absl::Status hex = CheckSignatureHex(params.signature);
  if (!hex.ok()) return hex;

  std::vector<const std::string*> amz_dates = ValuesOf(headers, "x-amz-date");
  std::vector<const std::string*> dates = ValuesOf(headers, "date");
  if (amz_dates.size() > 1 || dates.size() > 1) {
    return S3Error(S3ErrorCode::kInvalidArgument, "the request has more than one date header");
  }
  if (!amz_dates.empty()) {
    std::string_view text = Trim(*amz_dates[0]);
    std::optional<absl::Time> time = ParseAmzDate(text);
    if (!time) {
      return S3Error(S3ErrorCode::kAccessDenied,
                     Cat("x-amz-date '", text, "' is not YYYYMMDDTHHMMSSZ"));
    }
    params.time = *time;
    params.amz_date = std::string(text);
  } else if (!dates.empty()) {
    std::string_view text = Trim(*dates[0]);
    std::optional<absl::Time> time = ParseHttpDate(text);
    if (!time) {
      return S3Error(S3ErrorCode::kAccessDenied,
                     Cat("the Date header '", text,
                         "' is not an RFC 1123 date (Fri, 24 May 2013 00:00:00 GMT)"));
    }
    params.time = *time;
    params.amz_date = FormatAmzDate(*time);
  } else {
    return S3Error(S3ErrorCode::kAccessDenied,
                   "AWS authentication requires a valid Date or x-amz-date header");
  }
  return params;
}

absl::StatusOr<SignatureParams> ParsePresignedQuery(const QueryList& query) {
  auto require = [&](std::string_view name) -> absl::StatusOr<std::string> {
    const std::string* value = FindParam(query, name);
    if (value == nullptr) {
      return Malformed(Cat("the presigned URL has no ", name, " query parameter"));
    }
    return *value;
  };
  SignatureParams params;
  absl::StatusOr<std::string> algorithm = require("X-Amz-Algorithm");
  if (!algorithm.ok()) return algorithm.status();
  if (*algorithm != kAlgorithm) {
    return Malformed(Cat("X-Amz-Algorithm is '", *algorithm, "', not ", kAlgorithm));
  }
  absl::StatusOr<std::string> credential = require("X-Amz-Credential");
  if (!credential.ok()) return credential.status();
  absl::Status status = ParseCredential(*credential, params);
  if (!status.ok()) return status;
  absl::StatusOr<std::string> date = require("X-Amz-Date");
  if (!date.ok()) return date.status();
  std::optional<absl::Time> time = ParseAmzDate(*date);
  if (!time) return Malformed(Cat("X-Amz-Date '", *date, "' is not YYYYMMDDTHHMMSSZ"));
  params.time = *time;
  params.amz_date = *date;
  absl::StatusOr<std::string> expires = require("X-Amz-Expires");
  if (!expires.ok()) return expires.status();
  std::optional<uint32_t> seconds = ParseId(*expires);
  if (!seconds || *seconds < 1 || *seconds > kMaxPresignedExpirySeconds) {
    return Malformed(Cat("X-Amz-Expires '", *expires, "' is not a number of seconds from 1 to ",
                         kMaxPresignedExpirySeconds));
  }
  params.expires_seconds = *seconds;
  absl::StatusOr<std::string> signed_headers = require("X-Amz-SignedHeaders");
  if (!signed_headers.ok()) return signed_headers.status();
  params.signed_headers = *signed_headers;
  absl::StatusOr<std::string> signature = require("X-Amz-Signature");
  if (!signature.ok()) return signature.status();
  params.signature = ToLower(*signature);
  status = CheckSignatureHex(params.signature);
  if (!status.ok()) return status;
  return params;
}

absl::Status CheckScope(const SignatureParams& params, std::string_view region) {
  if (params.scope_date != std::string_view(params.amz_date).substr(0, 8)) {
    return Malformed(Cat("the credential's date ", params.scope_date, " is not the request's date ",
                         params.amz_date.substr(0, 8)));
  }
  if (params.scope_region != region) {
    return Malformed(
        Cat("the region '", params.scope_region, "' is wrong; expecting '", region, "'"));
  }
  if (params.scope_service != kService) {
    return Malformed(
        Cat("the service '", params.scope_service, "' in the credential is wrong; expecting 's3'"));
  }
  return absl::OkStatus();
}

absl::Status CheckTime(const SignatureParams& params, bool presigned, absl::Time now) {
  if (presigned) {
    if (params.time - now > kMaxClockSkew) {
      return S3Error(
          S3ErrorCode::kAccessDenied,
          Cat("Request is not yet valid: X-Amz-Date ", params.amz_date,
              " is more than 15 minutes ahead of the server's clock ", FormatAmzDate(now)));
    }
    if (now > params.time + absl::Seconds(params.expires_seconds)) {
      return S3Error(
          S3ErrorCode::kAccessDenied,
          Cat("Request has expired: X-Amz-Date ", params.amz_date, " plus X-Amz-Expires ",
              params.expires_seconds, "s is before the server's time ", FormatAmzDate(now)));
    }
    return absl::OkStatus();
  }
  if (absl::AbsDuration(params.time - now) > kMaxClockSkew) {
    return S3Error(
        S3ErrorCode::kRequestTimeTooSkewed,
        Cat("The difference between the request time ", params.amz_date, " and the server's time ",
            FormatAmzDate(now), " is more than 15 minutes: check the client's clock"));
  }
  return absl::OkStatus();
}

struct Payload {
  PayloadKind kind = PayloadKind::kUnsigned;
  std::string hash;  // what the canonical request's last line says
};

absl::StatusOr<Payload> PayloadOf(const HeaderList& headers, bool presigned) {
  std::vector<const std::string*> values = ValuesOf(headers, "x-amz-content-sha256");
  if (values.size() > 1) {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   "the request has more than one x-amz-content-sha256 header");
  }
  if (values.empty()) {
    if (presigned) return Payload{PayloadKind::kUnsigned, std::string(kUnsignedPayload)};
    return S3Error(S3ErrorCode::kInvalidRequest,
                   "Missing required header for this request: x-amz-content-sha256");
  }
  std::string value(Trim(*values[0]));
  if (IsHexSha256(value)) return Payload{PayloadKind::kSha256, value};
  static constexpr std::pair<std::string_view, PayloadKind> kKinds[] = {
      {kUnsignedPayload, PayloadKind::kUnsigned},
      {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadKind::kStreamingSigned},
      {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadKind::kStreamingSignedTrailer},
      {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadKind::kStreamingUnsignedTrailer},
  };
  for (const auto& [name, kind] : kKinds) {
    if (value == name) return Payload{kind, value};
  }
  return S3Error(S3ErrorCode::kInvalidArgument,
                 Cat("x-amz-content-sha256 '", value,
                     "' is neither a hex SHA-256 nor UNSIGNED-PAYLOAD nor a "
                     "STREAMING-... payload"));
}

absl::StatusOr<std::string> CanonicalHeaders(const HeaderList& headers,
                                             std::string_view signed_headers) {
  std::string canonical;
  bool signs_host = false;
  for (std::string_view name : Split(signed_headers, ';')) {
    std::string lower = ToLower(name);
    if (lower.empty()) return Malformed("SignedHeaders has an empty header name");
    signs_host = signs_host || lower == "host";
    std::vector<const std::string*> values = ValuesOf(headers, lower);
    if (values.empty()) {
      return S3Error(S3ErrorCode::kAccessDenied,
                     Cat("the header '", lower, "' is in SignedHeaders but not in the request"));
    }
    Append(canonical, lower, ":");
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) canonical += ',';
      canonical += s3::TrimAll(*values[i]);
    }
    canonical += '\n';
  }
  if (!signs_host) return Malformed("the host header must be signed (it is not in SignedHeaders)");
  return canonical;
}

std::string SigningKey(std::string_view secret_key, const SignatureParams& params) {
  std::string secret = Cat("AWS4", secret_key);
  std::string key = HmacSha256(secret, params.scope_date);
  OPENSSL_cleanse(secret.data(), secret.size());
  for (std::string_view part : {std::string_view(params.scope_region),
                                std::string_view(params.scope_service), kScopeTerminator}) {
    std::string next = HmacSha256(key, part);
    OPENSSL_cleanse(key.data(), key.size());
    key = std::move(next);
  }
  return key;
}

std::string ScopeOf(const SignatureParams& params) {
  return Cat(params.scope_date, "/", params.scope_region, "/", params.scope_service, "/",
             kScopeTerminator);
}

bool IsStreaming(PayloadKind kind) {
  return kind == PayloadKind::kStreamingSigned || kind == PayloadKind::kStreamingSignedTrailer ||
         kind == PayloadKind::kStreamingUnsignedTrailer;
}

bool SignsChunks(PayloadKind kind) {
  return kind == PayloadKind::kStreamingSigned || kind == PayloadKind::kStreamingSignedTrailer;
}

bool HasTrailer(PayloadKind kind) {
  return kind == PayloadKind::kStreamingSignedTrailer ||
         kind == PayloadKind::kStreamingUnsignedTrailer;
}

}  // namespace

// ---------------------------------------------------------------------------

absl::StatusOr<std::vector<S3Key>> ParseKeysFile(std::string_view text) {
  std::vector<S3Key> keys;
  std::vector<int> line_of_key;
  int line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> fields = SplitFields(line);
    if (fields.empty()) continue;
    if (fields.size() < 4) {
      return KeysLineError(line_number,
                           Cat("expected ACCESS_KEY SECRET_KEY UID GID [ro] [BUCKET,...], "
                               "found ",
                               fields.size(), " field", fields.size() == 1 ? "" : "s"));
    }
    S3Key key;
    key.access_key = std::string(fields[0]);
    key.secret_key = std::string(fields[1]);
    std::optional<uint32_t> uid = ParseId(fields[2]);
    if (!uid) return KeysLineError(line_number, Cat("UID '", fields[2], "' is not a number"));
    std::optional<uint32_t> gid = ParseId(fields[3]);
    if (!gid) return KeysLineError(line_number, Cat("GID '", fields[3], "' is not a number"));
    key.uid = *uid;
    key.gid = *gid;
    size_t next = 4;
    if (next < fields.size() && fields[next] == "ro") {
      key.read_only = true;
      ++next;
    }
    if (next < fields.size()) {
      for (std::string_view bucket : Split(fields[next], ',')) {
        if (bucket.empty()) {
          return KeysLineError(
              line_number, Cat("the bucket list '", fields[next], "' has an empty bucket name"));
        }
        key.buckets.emplace_back(bucket);
      }
      ++next;
    }
    if (next < fields.size()) {
      return KeysLineError(line_number, Cat("unexpected '", fields[next],
                                            "' after the bucket list (write buckets as a,b,c; "
                                            "'ro' goes before them)"));
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].access_key == key.access_key) {
        return KeysLineError(line_number, Cat("access key '", key.access_key,
                                              "' is already on line ", line_of_key[i]));
      }
    }
    keys.push_back(std::move(key));
    line_of_key.push_back(line_number);
  }
  return keys;
}

absl::StatusOr<std::optional<S3Key>> KeysFile::Find(std::string_view access_key) {
  absl::MutexLock lock(&mu_);
  absl::Status status = ReloadIfChanged();
  if (!status.ok()) return status;
  for (const S3Key& key : keys_) {
    if (key.access_key == access_key) return key;
  }
  return std::nullopt;
}

// Runs under mu_ on purpose: a stat costs less than the contention it would
// save, and holding the lock while a changed file is read keeps concurrent
// requests from reading and parsing it twice.
absl::Status KeysFile::ReloadIfChanged() {
  absl::StatusOr<struct stat> st = StatPrivateKeysFile(path_);
  if (st.ok() && Stamp{MtimeNs(*st), st->st_size, st->st_ino} == stamp_) {
    return absl::OkStatus();
  }
  absl::StatusOr<LoadedKeys> loaded = st.ok() ? LoadKeysFile(path_) : st.status();
  if (!loaded.ok()) {
    // Nothing is authorised from a file that is now unsafe or broken, and
    // the next call looks again.
    keys_.clear();
    stamp_ = Stamp{};
    return loaded.status();
  }
  keys_ = std::move(loaded->keys);
  stamp_ = Stamp{MtimeNs(loaded->st), loaded->st.st_size, loaded->st.st_ino};
  return absl::OkStatus();
}

absl::StatusOr<Authenticated> Authenticate(const SignedRequest& request, KeysFile& keys,
                                           std::string_view region, absl::Time now) {
  HeaderList headers = LowercaseHeaders(request);
  std::string_view target = request.target;
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query_text =
      question == std::string_view::npos ? "" : target.substr(question + 1);
  absl::StatusOr<QueryList> query = ParseQuery(query_text);
  if (!query.ok()) return query.status();

  std::vector<const std::string*> authorization = ValuesOf(headers, "authorization");
  const bool presigned = FindParam(*query, "X-Amz-Signature") != nullptr;
  if (authorization.empty() && !presigned) {
    return S3Error(S3ErrorCode::kAccessDenied,
                   "anonymous requests are not accepted: sign the request with an access key "
                   "from the keys file");
  }
  if (!authorization.empty() && presigned) {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   "Only one auth mechanism allowed: the request has both an Authorization "
                   "header and X-Amz-Signature");
  }
  if (authorization.size() > 1) {
    return Malformed("the request has more than one Authorization header");
  }

  absl::StatusOr<SignatureParams> params =
      presigned ? ParsePresignedQuery(*query)
                : ParseAuthorizationHeader(*authorization[0], headers);
  if (!params.ok()) return params.status();
  absl::Status status = CheckScope(*params, region);
  if (!status.ok()) return status;
  status = CheckTime(*params, presigned, now);
  if (!status.ok()) return status;
  absl::StatusOr<Payload> payload = PayloadOf(headers, presigned);
  if (!payload.ok()) return payload.status();

  absl::StatusOr<std::optional<S3Key>> key = keys.Find(params->access_key);
  if (!key.ok()) return key.status();
  if (!key->has_value()) {
    return S3Error(S3ErrorCode::kInvalidAccessKeyId,
                   Cat("the access key '", params->access_key, "' is not in the keys file"));
  }

  absl::StatusOr<std::string> uri = CanonicalUri(path);
  if (!uri.ok()) return uri.status();
  absl::StatusOr<std::string> canonical_headers = CanonicalHeaders(headers, params->signed_headers);
  if (!canonical_headers.ok()) return canonical_headers.status();
  std::string canonical_request =
      Cat(request.method, "\n", *uri, "\n", CanonicalQuery(*query, presigned), "\n",
          *canonical_headers, "\n", params->signed_headers, "\n", payload->hash);
  std::string scope = ScopeOf(*params);
  std::string string_to_sign =
      Cat(kAlgorithm, "\n", params->amz_date, "\n", scope, "\n", s3::Sha256Hex(canonical_request));
  std::string signing_key = SigningKey((*key)->secret_key, *params);
  std::string expected = Hex(HmacSha256(signing_key, string_to_sign));
  if (!SignaturesEqual(expected, params->signature)) {
    OPENSSL_cleanse(signing_key.data(), signing_key.size());
    return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                   "The request signature we calculated does not match the signature you "
                   "provided. Check your secret access key and signing method.");
  }

  Authenticated result;
  result.key = std::move(**key);
  result.payload = payload->kind;
  if (payload->kind == PayloadKind::kSha256) result.payload_sha256 = ToLower(payload->hash);
  if (IsStreaming(payload->kind)) {
    result.seed_signature = expected;
    result.signing_key = std::move(signing_key);
    result.amz_date = params->amz_date;
    result.scope = std::move(scope);
  } else {
    OPENSSL_cleanse(signing_key.data(), signing_key.size());
  }
  return result;
}

// ---------------------------------------------------------------------------
// aws-chunked

namespace {

enum class ChecksumAlgorithm { kNone, kCrc32, kCrc32c, kCrc64Nvme, kSha1, kSha256 };

// The running checksum of the decoded data that the trailer will claim.
class RunningChecksum {
 public:
  RunningChecksum() = default;
  explicit RunningChecksum(ChecksumAlgorithm algorithm) : algorithm_(algorithm) {
    if (algorithm == ChecksumAlgorithm::kSha1) digest_ = NewDigest(EVP_sha1());
    if (algorithm == ChecksumAlgorithm::kSha256) digest_ = NewDigest(EVP_sha256());
  }
  // False when OpenSSL could not set up the digest the algorithm needs.
  bool ok() const {
    return digest_ != nullptr ||
           (algorithm_ != ChecksumAlgorithm::kSha1 && algorithm_ != ChecksumAlgorithm::kSha256);
  }
  void Update(std::string_view data) {
    switch (algorithm_) {
      case ChecksumAlgorithm::kNone:
        break;
      case ChecksumAlgorithm::kCrc32:
        crc_ =
            crc32_gzip_refl(crc_, reinterpret_cast<const unsigned char*>(data.data()), data.size());
        break;
      case ChecksumAlgorithm::kCrc32c:
        crc_ = Crc32cExtend(crc_, data);
        break;
      case ChecksumAlgorithm::kCrc64Nvme:
        crc64_ = Crc64NvmeExtend(crc64_, data);
        break;
      case ChecksumAlgorithm::kSha1:
      case ChecksumAlgorithm::kSha256:
        EVP_DigestUpdate(digest_.get(), data.data(), data.size());
        break;
    }
  }
  // Base64 as S3 sends it; call once.
  std::string Finish() {
    switch (algorithm_) {
      case ChecksumAlgorithm::kNone:
        return "";
      case ChecksumAlgorithm::kCrc32:
      case ChecksumAlgorithm::kCrc32c:
        return BigEndianBase64(crc_);
      case ChecksumAlgorithm::kCrc64Nvme:
        return BigEndianBase64(crc64_);
      case ChecksumAlgorithm::kSha1:
      case ChecksumAlgorithm::kSha256: {
        std::string digest = FinishDigest(digest_.get());
        return Base64(reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
      }
    }
    return "";
  }

 private:
  ChecksumAlgorithm algorithm_ = ChecksumAlgorithm::kNone;
  uint32_t crc_ = 0;
  uint64_t crc64_ = 0;
  DigestContext digest_;
};

std::optional<ChecksumAlgorithm> ChecksumAlgorithmOf(std::string_view trailer) {
  if (trailer == "x-amz-checksum-crc32") return ChecksumAlgorithm::kCrc32;
  if (trailer == "x-amz-checksum-crc32c") return ChecksumAlgorithm::kCrc32c;
  if (trailer == "x-amz-checksum-crc64nvme") return ChecksumAlgorithm::kCrc64Nvme;
  if (trailer == "x-amz-checksum-sha1") return ChecksumAlgorithm::kSha1;
  if (trailer == "x-amz-checksum-sha256") return ChecksumAlgorithm::kSha256;
  return std::nullopt;
}

absl::Status Framing(std::string_view message) {
  return S3Error(S3ErrorCode::kInvalidRequest, Cat("aws-chunked body: ", message));
}

}  // namespace

struct AwsChunkedDecoder::State {
  enum class Phase { kChunkHeader, kChunkData, kChunkDataEnd, kTrailer, kDone };

  PayloadKind kind;
  std::string signing_key;
  std::string amz_date;
  std::string scope;
  std::string previous_signature;

  // Lowercase names the x-amz-trailer header announced.
  std::vector<std::string> announced_trailers;
  std::string checksum_name;  // the announced checksum trailer, or empty
  RunningChecksum checksum;
  std::optional<std::pair<std::string, std::string>> trailer_checksum;

  Phase phase = Phase::kChunkHeader;
  std::string line;  // the partial header or trailer line
  uint64_t chunk_remaining = 0;
  std::string chunk_signature;  // the current chunk's claimed signature
  DigestContext chunk_digest;
  int chunk_end_bytes_seen = 0;  // of the "\r\n" after a chunk's data
  std::string trailer_section;   // complete trailer lines so far, each "line\n"
  absl::Status error;

  ~State() { OPENSSL_cleanse(signing_key.data(), signing_key.size()); }

  absl::Status Fail(absl::Status status) {
    error = status;
    return status;
  }

  absl::Status CheckChunkSignature(std::string_view data_sha256_hex) {
    std::string string_to_sign = Cat("AWS4-HMAC-SHA256-PAYLOAD\n", amz_date, "\n", scope, "\n",
                                     previous_signature, "\n", kEmptySha256, "\n", data_sha256_hex);
    std::string expected = Hex(HmacSha256(signing_key, string_to_sign));
    if (!SignaturesEqual(expected, chunk_signature)) {
      return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                     "a chunk signature of the aws-chunked body does not match: the data was "
                     "changed in transit or signed with another key");
    }
    previous_signature = std::move(expected);
    return absl::OkStatus();
  }

  // Accumulates bytes of a CRLF-ended line from `raw`; returns true with the
  // line (CRLF stripped) in `line` once it is complete.
  absl::StatusOr<bool> TakeLine(std::string_view& raw, size_t max_bytes, std::string_view what) {
    size_t newline = raw.find('\n');
    size_t take = newline == std::string_view::npos ? raw.size() : newline + 1;
    if (line.size() + take > max_bytes + 2) {
      return Framing(Cat(what, " is longer than ", max_bytes, " bytes"));
    }
    line.append(raw.substr(0, take));
    raw.remove_prefix(take);
    if (newline == std::string_view::npos) return false;
    if (line.size() < 2 || line[line.size() - 2] != '\r') {
      return Framing(Cat(what, " ends in a bare LF, not CRLF"));
    }
    line.resize(line.size() - 2);
    return true;
  }

  absl::Status StartChunk() {
    std::string_view header = line;
    size_t semicolon = header.find(';');
    std::string_view size_text = header.substr(0, semicolon);
    if (size_text.empty() || size_text.size() > 15) {
      return Framing(
          Cat("chunk header '", header.substr(0, 80), "' does not start with a hex size"));
    }
    uint64_t size = 0;
    for (char c : size_text) {
      int digit = HexValue(c);
      if (digit < 0) {
        return Framing(
            Cat("chunk header '", header.substr(0, 80), "' does not start with a hex size"));
      }
      size = size * 16 + static_cast<uint64_t>(digit);
    }
    chunk_signature.clear();
    bool have_signature = false;
    if (semicolon != std::string_view::npos) {
      for (std::string_view extension : Split(header.substr(semicolon + 1), ';')) {
        constexpr std::string_view kPrefix = "chunk-signature=";
        if (extension.starts_with(kPrefix)) {
          chunk_signature = ToLower(extension.substr(kPrefix.size()));
          have_signature = true;
        }
      }
    }
    if (SignsChunks(kind)) {
      if (!have_signature) {
        return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                       "a chunk of the aws-chunked body has no chunk-signature");
      }
      if (!IsHexSha256(chunk_signature)) {
        return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                       "a chunk-signature of the aws-chunked body is not 64 hex digits");
      }
    }
    line.clear();
    if (size == 0) {
      if (SignsChunks(kind)) {
        absl::Status status = CheckChunkSignature(kEmptySha256);
        if (!status.ok()) return status;
      }
      phase = Phase::kTrailer;
      return absl::OkStatus();
    }
    chunk_remaining = size;
    phase = Phase::kChunkData;
    return absl::OkStatus();
  }

  absl::Status EndChunk() {
    if (SignsChunks(kind)) {
      absl::Status status = CheckChunkSignature(Hex(FinishDigest(chunk_digest.get())));
      if (!status.ok()) return status;
    }
    phase = Phase::kChunkHeader;
    return absl::OkStatus();
  }

  // `line` is one complete trailer line.
  absl::Status AddTrailerLine() {
    if (trailer_section.size() + line.size() + 1 > kMaxTrailerBytes) {
      return Framing(Cat("the trailer is longer than ", kMaxTrailerBytes, " bytes"));
    }
    Append(trailer_section, line, "\n");
    line.clear();
    return absl::OkStatus();
  }

  absl::Status FinishTrailer() {
    if (!HasTrailer(kind) && !trailer_section.empty()) {
      return Framing("trailer headers came, but x-amz-content-sha256 is not a ...-TRAILER kind");
    }
    std::string canonical;  // what the trailer signature covers
    std::vector<std::string> received;
    std::optional<std::string> trailer_signature;
    for (std::string_view trailer_line : Split(trailer_section, '\n')) {
      if (trailer_line.empty()) continue;
      size_t colon = trailer_line.find(':');
      if (colon == std::string_view::npos) {
        return Framing(
            Cat("the trailer line '", trailer_line.substr(0, 80), "' is not NAME:VALUE"));
      }
      std::string name = ToLower(Trim(trailer_line.substr(0, colon)));
      std::string value(Trim(trailer_line.substr(colon + 1)));
      if (name == "x-amz-trailer-signature") {
        trailer_signature = ToLower(value);
        continue;
      }
      if (std::find(announced_trailers.begin(), announced_trailers.end(), name) ==
          announced_trailers.end()) {
        return Framing(Cat("the trailer '", name, "' was not announced in x-amz-trailer"));
      }
      if (std::find(received.begin(), received.end(), name) != received.end()) {
        return Framing(Cat("the trailer '", name, "' came twice"));
      }
      received.push_back(name);
      Append(canonical, name, ":", value, "\n");
      if (name == checksum_name) trailer_checksum.emplace(name, value);
    }
    if (kind == PayloadKind::kStreamingSignedTrailer) {
      if (!trailer_signature) {
        return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                       "the aws-chunked body's trailer has no x-amz-trailer-signature");
      }
      std::string string_to_sign = Cat("AWS4-HMAC-SHA256-TRAILER\n", amz_date, "\n", scope, "\n",
                                       previous_signature, "\n", s3::Sha256Hex(canonical));
      std::string expected = Hex(HmacSha256(signing_key, string_to_sign));
      if (!SignaturesEqual(expected, *trailer_signature)) {
        return S3Error(S3ErrorCode::kSignatureDoesNotMatch,
                       "the x-amz-trailer-signature of the aws-chunked body does not match");
      }
    }
    for (const std::string& name : announced_trailers) {
      if (std::find(received.begin(), received.end(), name) == received.end()) {
        return S3Error(
            S3ErrorCode::kInvalidRequest,
            Cat("x-amz-trailer announced '", name, "' but the body's trailer does not have it"));
      }
    }
    if (!checksum_name.empty()) {
      std::string computed = checksum.Finish();
      if (trailer_checksum->second != computed) {
        return S3Error(S3ErrorCode::kBadDigest,
                       Cat("The ", checksum_name, " you specified (", trailer_checksum->second,
                           ") did not match the calculated checksum (", computed, ")"));
      }
    }
    phase = Phase::kDone;
    return absl::OkStatus();
  }

  absl::Status Feed(std::string_view raw, std::string& out) {
    while (!raw.empty()) {
      switch (phase) {
        case Phase::kChunkHeader: {
          absl::StatusOr<bool> complete = TakeLine(raw, kMaxChunkHeaderBytes, "a chunk header");
          if (!complete.ok()) return complete.status();
          if (*complete) {
            absl::Status status = StartChunk();
            if (!status.ok()) return status;
          }
          break;
        }
        case Phase::kChunkData: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_remaining, raw.size()));
          std::string_view data = raw.substr(0, take);
          if (SignsChunks(kind)) EVP_DigestUpdate(chunk_digest.get(), data.data(), data.size());
          checksum.Update(data);
          out.append(data);
          raw.remove_prefix(take);
          chunk_remaining -= take;
          if (chunk_remaining == 0) {
            phase = Phase::kChunkDataEnd;
            chunk_end_bytes_seen = 0;
          }
          break;
        }
        case Phase::kChunkDataEnd: {
          char expected = chunk_end_bytes_seen == 0 ? '\r' : '\n';
          if (raw.front() != expected) {
            return Framing("a chunk's data is not followed by CRLF (is the chunk size right?)");
          }
          raw.remove_prefix(1);
          if (++chunk_end_bytes_seen == 2) {
            absl::Status status = EndChunk();
            if (!status.ok()) return status;
          }
          break;
        }
        case Phase::kTrailer: {
          absl::StatusOr<bool> complete = TakeLine(raw, kMaxTrailerBytes, "a trailer line");
          if (!complete.ok()) return complete.status();
          if (!*complete) break;
          absl::Status status = line.empty() ? FinishTrailer() : AddTrailerLine();
          if (!status.ok()) return status;
          break;
        }
        case Phase::kDone:
          return Framing(Cat(raw.size(), " bytes follow the end of the body"));
      }
    }
    return absl::OkStatus();
  }
};

namespace {

class RunningPayloadChecksum final : public PayloadChecksum {
 public:
  explicit RunningPayloadChecksum(ChecksumAlgorithm algorithm) : checksum_(algorithm) {}
  void Update(std::string_view data) override { checksum_.Update(data); }
  std::string Finish() override { return checksum_.Finish(); }
  bool ok() const { return checksum_.ok(); }

 private:
  RunningChecksum checksum_;
};

}  // namespace

std::unique_ptr<PayloadChecksum> PayloadChecksum::For(std::string_view header) {
  std::optional<ChecksumAlgorithm> algorithm = ChecksumAlgorithmOf(header);
  if (!algorithm) return nullptr;
  auto checksum = std::make_unique<RunningPayloadChecksum>(*algorithm);
  if (!checksum->ok()) return nullptr;
  return checksum;
}

AwsChunkedDecoder::AwsChunkedDecoder(const Authenticated& auth, std::string trailer_name)
    : state_(std::make_shared<State>()) {
  State& state = *state_;
  state.kind = auth.payload;
  state.signing_key = auth.signing_key;
  state.amz_date = auth.amz_date;
  state.scope = auth.scope;
  state.previous_signature = auth.seed_signature;
  state.chunk_digest = NewDigest(EVP_sha256());
  if (state.chunk_digest == nullptr) {
    state.error = absl::InternalError("cannot set up SHA-256 (OpenSSL EVP_DigestInit failed)");
    return;
  }
  if (!IsStreaming(auth.payload)) {
    state.error =
        absl::InternalError("AwsChunkedDecoder needs a STREAMING-... x-amz-content-sha256 request");
    return;
  }
  for (std::string_view name : Split(trailer_name, ',')) {
    std::string lower = ToLower(Trim(name));
    if (lower.empty()) continue;
    std::optional<ChecksumAlgorithm> algorithm = ChecksumAlgorithmOf(lower);
    if (algorithm) {
      if (!state.checksum_name.empty()) {
        state.error =
            S3Error(S3ErrorCode::kInvalidRequest, "x-amz-trailer names more than one checksum");
        return;
      }
      state.checksum_name = lower;
      state.checksum = RunningChecksum(*algorithm);
      if (!state.checksum.ok()) {
        state.error = absl::InternalError("cannot set up the trailer's digest (OpenSSL)");
        return;
      }
    } else if (lower.starts_with("x-amz-checksum-")) {
      state.error = S3Error(S3ErrorCode::kInvalidRequest,
                            Cat("x-amz-trailer names ", lower,
                                ", which this server does not verify: use "
                                "x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or -sha256"));
      return;
    }
    state.announced_trailers.push_back(std::move(lower));
  }
  if (!state.announced_trailers.empty() && !HasTrailer(auth.payload)) {
    state.error = S3Error(S3ErrorCode::kInvalidRequest,
                          "x-amz-trailer is set, but x-amz-content-sha256 is not a ...-TRAILER "
                          "kind");
  }
}

absl::Status AwsChunkedDecoder::Feed(std::string_view raw, std::string& out) {
  State& state = *state_;
  if (!state.error.ok()) return state.error;
  absl::Status status = state.Feed(raw, out);
  if (!status.ok()) return state.Fail(status);
  return absl::OkStatus();
}

bool AwsChunkedDecoder::done() const {
  return state_->error.ok() && state_->phase == State::Phase::kDone;
}

absl::Status AwsChunkedDecoder::Finish() const {
  if (!state_->error.ok()) return state_->error;
  if (state_->phase != State::Phase::kDone) {
    return S3Error(S3ErrorCode::kIncompleteBody,
                   "the aws-chunked body ended before its final chunk and trailer: the upload "
                   "was cut short");
  }
  return absl::OkStatus();
}

std::optional<std::pair<std::string, std::string>> AwsChunkedDecoder::trailer_checksum() const {
  return state_->trailer_checksum;
}

}  // namespace cairn::frontend

#include "frontend/s3_util.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/base/fs_error.h"
#include "frontend/s3_error.h"

namespace cairn::frontend {




std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\t':
      case '\n': out += c; break;
      default:
        // A parser would turn a raw CR into LF, and XML 1.0 has no other
        // control characters at all: they go as character references,
        // as AWS sends them (clients that list such keys ask for
        // encoding-type=url).
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "&#", static_cast<int>(c), ";");
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string XmlUnescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    size_t end = text.find(';', i);
    if (end == std::string_view::npos) {
      out += text.substr(i);
      break;
    }
    std::string_view entity = text.substr(i + 1, end - i - 1);
    if (entity == "amp") out += '&';
    else if (entity == "lt") out += '<';
    else if (entity == "gt") out += '>';
    else if (entity == "quot") out += '"';
    else if (entity == "apos") out += '\'';
    else if (!entity.empty() && entity[0] == '#') {
      uint32_t code = 0;
      bool ok = entity.size() > 1 && (entity[1] == 'x'
                                          ? absl::SimpleHexAtoi(Absl(entity.substr(2)), &code)
                                          : absl::SimpleAtoi(Absl(entity.substr(1)), &code));
      if (ok && code < 0x80) out += static_cast<char>(code);
      else out += absl::StrCat("&", Absl(entity), ";");
    } else {
      out += absl::StrCat("&", Absl(entity), ";");
    }
    i = end;
  }
  return out;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

absl::StatusOr<bool> ListingUrlEncoded(const S3Request& request) {
  auto it = request.query.find("encoding-type");
  if (it == request.query.end() || it->second.empty()) return false;
  if (it->second != "url") {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   absl::StrCat("encoding-type must be url, not '", it->second, "'"));
  }
  return true;
}

std::string ListingText(std::string_view text, bool url_encoded) {
  return XmlEscape(url_encoded ? UrlEncode(text) : text);
}

absl::StatusOr<size_t> ListingLimit(const S3Request& request, const std::string& name) {
  auto it = request.query.find(name);
  if (it == request.query.end() || it->second.empty()) return 1000;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < 0) {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   absl::StrCat(name, " must be a whole number >= 0 (at most 1000 are listed), not '",
                                it->second, "'"));
  }
  return static_cast<size_t>(std::min<int64_t>(value, 1000));
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    int value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        absl::SimpleHexAtoi(Absl(text.substr(i + 1, 2)), &value)) {
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string HttpDate(const Timespec& t) {
  time_t seconds = t.sec;
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char text[64];
  strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

std::string IsoDate(const Timespec& t) {
  time_t seconds = t.sec;
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char text[64];
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  return absl::StrCat(text, ".", absl::StrFormat("%03d", t.nsec / 1000000), "Z");
}

std::optional<int64_t> ParseHttpDate(const std::string& text_in) {
  // ISO 8601 with fractions of a second ("2026-12-05T15:32:06.275Z"):
  // the whole seconds are what counts.
  std::string text = text_in;
  if (size_t dot = text.find('.'); dot != std::string::npos && text.find('T') < dot &&
                                   !text.empty() && text.back() == 'Z') {
    text = text.substr(0, dot) + "Z";
  }
  struct tm tm = {};
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                             "%a %b %d %H:%M:%S %Y", "%Y-%m-%dT%H:%M:%SZ"}) {
    tm = {};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return timegm(&tm);
  }
  return std::nullopt;
}


std::string Quoted(std::string_view etag) { return absl::StrCat("\"", Absl(etag), "\""); }

std::string Unquoted(std::string_view etag) {
  absl::string_view stripped = absl::StripAsciiWhitespace(Absl(etag));
  etag = std::string_view(stripped.data(), stripped.size());
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

std::string EtagStamp(const std::string& md5_hex, const InodeAttr& attr) {
  return absl::StrCat(md5_hex, " ", attr.size, " ", attr.mtime.sec, ".", attr.mtime.nsec);
}

std::string EtagOf(FileSystem& fs, const InodeAttr& attr) {
  absl::StatusOr<std::string> stamp = fs.GetXattr(attr.ino, kEtagXattr);
  if (stamp.ok()) {
    std::string_view md5_hex = std::string_view(*stamp).substr(0, stamp->find(' '));
    if (*stamp == EtagStamp(std::string(md5_hex), attr)) return std::string(md5_hex);
  }
  Md5 md5;
  md5.Update(absl::StrCat("cairn-etag ", attr.ino, " ", attr.size, " ", attr.mtime.sec, ".",
                          attr.mtime.nsec));
  return absl::StrCat(absl::BytesToHexString(md5.Finish()), "-1");
}

std::string UploadStamp(const std::string& upload_id, const InodeAttr& attr) {
  return EtagStamp(upload_id, attr);
}

std::optional<std::string> UploadOf(FileSystem& fs, const InodeAttr& attr) {
  absl::StatusOr<std::string> stamp = fs.GetXattr(attr.ino, kUploadXattr);
  if (!stamp.ok()) return std::nullopt;
  std::string id = stamp->substr(0, stamp->find(' '));
  if (id.empty() || *stamp != UploadStamp(id, attr)) return std::nullopt;
  return id;
}

std::string PartSizesStamp(const std::vector<uint64_t>& sizes, const InodeAttr& attr) {
  return EtagStamp(absl::StrJoin(sizes, ","), attr);
}

std::optional<std::vector<uint64_t>> PartSizesOf(FileSystem& fs, const InodeAttr& attr) {
  absl::StatusOr<std::string> stamp = fs.GetXattr(attr.ino, kPartsXattr);
  if (!stamp.ok()) return std::nullopt;
  std::string list = stamp->substr(0, stamp->find(' '));
  if (*stamp != EtagStamp(list, attr)) return std::nullopt;
  std::vector<uint64_t> sizes;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    uint64_t size = 0;
    if (!absl::SimpleAtoi(item, &size)) return std::nullopt;
    sizes.push_back(size);
  }
  return sizes;
}

std::string ChecksumStamp(const std::pair<std::string, std::string>& checksum,
                          const InodeAttr& attr) {
  return absl::StrCat(checksum.first, " ", checksum.second, " ", attr.size, " ", attr.mtime.sec,
                      ".", attr.mtime.nsec);
}

std::optional<std::pair<std::string, std::string>> ChecksumOf(FileSystem& fs,
                                                              const InodeAttr& attr) {
  absl::StatusOr<std::string> stamp = fs.GetXattr(attr.ino, kChecksumXattr);
  if (!stamp.ok()) return std::nullopt;
  std::vector<std::string> parts = absl::StrSplit(*stamp, ' ');
  if (parts.size() != 4) return std::nullopt;
  std::pair<std::string, std::string> checksum{parts[0], parts[1]};
  if (*stamp != ChecksumStamp(checksum, attr)) return std::nullopt;
  return checksum;
}

absl::StatusOr<Resolved> Resolve(FileSystem& fs, const InodeAttr& bucket, const KeyPath& path,
                                 const S3Key& who) {
  Resolved resolved;
  InodeAttr dir = bucket;
  for (size_t i = 0; i + 1 < path.components.size(); ++i) {
    absl::StatusOr<InodeAttr> next = fs.Find(dir.ino, path.components[i]);
    if (!next.ok()) {
      if (IsNotFound(next.status())) return resolved;
      return next.status();
    }
    if (!S_ISDIR(next->mode)) {
      resolved.parent_is_file = true;
      return resolved;
    }
    if (!MayAccess(*next, who, kMaySearch)) return Denied("a directory on the key's path");
    dir = *next;
  }
  resolved.parent = dir;
  absl::StatusOr<InodeAttr> target = fs.Find(dir.ino, path.components.back());
  if (target.ok()) {
    resolved.target = *target;
  } else if (!IsNotFound(target.status())) {
    return target.status();
  }
  return resolved;
}

bool HasObjectBelow(FileSystem& fs, const InodeAttr& dir, const S3Key& who) {
  if (!MayAccess(dir, who, kMayRead | kMaySearch)) return false;
  bool found = false;
  std::vector<InodeId> subdirs;
  absl::Status listed = fs.ReadDir(dir.ino, 0, false, [&](const DirEntry& e, const InodeAttr&) {
    if (S_ISDIR(e.mode)) {
      subdirs.push_back(e.ino);
      return true;
    }
    found = S_ISREG(e.mode);
    return !found;
  });
  if (!listed.ok() || found) return found;
  for (InodeId sub : subdirs) {
    if (fs.GetXattr(sub, kDirObjectXattr).ok()) return true;
    absl::StatusOr<InodeAttr> attr = fs.GetAttr(sub);
    if (attr.ok() && HasObjectBelow(fs, *attr, who)) return true;
  }
  return false;
}

bool RemoveEmptyTree(FileSystem& fs, const InodeAttr& dir, const S3Key& who,
                     const std::function<void(InodeId, const std::string&)>& forget) {
  std::vector<std::pair<std::string, InodeId>> subdirs;
  absl::Status listed = fs.ReadDir(dir.ino, 0, false, [&](const DirEntry& e, const InodeAttr&) {
    if (S_ISDIR(e.mode)) subdirs.emplace_back(e.name, e.ino);
    return true;
  });
  if (!listed.ok()) return false;
  if (!subdirs.empty() && !MayAccess(dir, who, kMayWrite | kMaySearch)) return false;
  for (const auto& [name, ino] : subdirs) {
    absl::StatusOr<InodeAttr> attr = fs.GetAttr(ino);
    if (!attr.ok() || !RemoveEmptyTree(fs, *attr, who, forget)) return false;
    if (!fs.Rmdir(dir.ino, name).ok()) return false;
    if (forget) forget(dir.ino, name);
  }
  return true;
}

bool MayAccess(const InodeAttr& attr, const S3Key& who, int mask) {
  if (who.uid == 0) {
    // root may read and write anything, and search anything searchable.
    if (!(mask & kMaySearch)) return true;
    return S_ISDIR(attr.mode) || (attr.mode & 0111) != 0;
  }
  int bits;
  if (attr.uid == who.uid) bits = (attr.mode >> 6) & 7;
  else if (attr.gid == who.gid) bits = (attr.mode >> 3) & 7;
  else bits = attr.mode & 7;
  return (bits & mask) == mask;
}

absl::Status Denied(std::string_view what) {
  return S3Error(S3ErrorCode::kAccessDenied, absl::StrCat("access denied: ", Absl(what)));
}

bool IsKind(const absl::Status& status, FsErrorKind kind) {
  return GetFsErrorKind(status) == kind;
}

absl::Status AsS3(absl::Status status) {
  if (status.ok() || S3ErrorCodeOf(status) != S3ErrorCode::kInternalError) return status;
  std::optional<FsErrorKind> kind = GetFsErrorKind(status);
  if (!kind) return status;
  switch (*kind) {
    case FsErrorKind::kAccessDenied:
    case FsErrorKind::kNotPermitted:
      return S3Error(S3ErrorCode::kAccessDenied, std::string(status.message()));
    case FsErrorKind::kReadOnly:
      return S3Error(S3ErrorCode::kAccessDenied,
                     absl::StrCat("the volume is mounted read-only: ", status.message()));
    case FsErrorKind::kNameTooLong:
      return S3Error(S3ErrorCode::kKeyTooLongError, std::string(status.message()));
    default:
      return status;
  }
}


Condition ConditionOf(const std::map<std::string, std::string>& headers,
                      const std::string& prefix) {
  Condition condition;
  auto find = [&](const std::string& name) -> std::optional<std::string> {
    auto it = headers.find(prefix + name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  };
  condition.if_match = find("if-match");
  condition.if_none_match = find("if-none-match");
  if (auto since = find("if-modified-since")) condition.if_modified_since = ParseHttpDate(*since);
  if (auto since = find("if-unmodified-since")) {
    condition.if_unmodified_since = ParseHttpDate(*since);
  }
  return condition;
}

namespace {

bool EtagListMatches(const std::string& list, const std::string& etag) {
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    std::string candidate = Unquoted(std::string_view(item.data(), item.size()));
    if (candidate == "*" || candidate == etag) return true;
  }
  return false;
}

}  // namespace

absl::Status CheckCondition(const Condition& c, const std::string& etag, const Timespec& mtime,
                            bool read) {
  if (c.if_match) {
    if (!EtagListMatches(*c.if_match, etag)) {
      return S3Error(S3ErrorCode::kPreconditionFailed, "If-Match: the ETag differs");
    }
  } else if (c.if_unmodified_since && mtime.sec > *c.if_unmodified_since) {
    return S3Error(S3ErrorCode::kPreconditionFailed, "If-Unmodified-Since: modified since");
  }
  if (c.if_none_match) {
    if (EtagListMatches(*c.if_none_match, etag)) {
      return S3Error(read ? S3ErrorCode::kNotModified : S3ErrorCode::kPreconditionFailed,
                     "If-None-Match: the ETag matches");
    }
  } else if (read && c.if_modified_since && mtime.sec <= *c.if_modified_since) {
    return S3Error(S3ErrorCode::kNotModified, "If-Modified-Since: not modified since");
  }
  return absl::OkStatus();
}

namespace {

constexpr std::string_view kKeptHeaders[] = {"cache-control", "content-disposition",
                                             "content-encoding", "content-language", "expires"};

}  // namespace

bool IsStoredHeader(const std::string& lower_name) {
  if (absl::StartsWith(lower_name, "x-amz-meta-") || lower_name == "content-type") return true;
  for (std::string_view kept : kKeptHeaders) {
    if (lower_name == kept) return true;
  }
  return false;
}

std::string XattrOfHeader(const std::string& lower_name) {
  if (absl::StartsWith(lower_name, "x-amz-meta-")) {
    return absl::StrCat(kMetaXattrPrefix, lower_name.substr(strlen("x-amz-meta-")));
  }
  if (lower_name == "content-type") return kContentTypeXattr;
  return absl::StrCat(kHeaderXattrPrefix, lower_name);
}

std::optional<std::string> HeaderOfXattr(const std::string& xattr) {
  if (absl::StartsWith(xattr, kMetaXattrPrefix)) {
    return absl::StrCat("x-amz-meta-", xattr.substr(strlen(kMetaXattrPrefix)));
  }
  if (xattr == kContentTypeXattr) return std::string("content-type");
  if (absl::StartsWith(xattr, kHeaderXattrPrefix)) {
    std::string header = xattr.substr(strlen(kHeaderXattrPrefix));
    if (IsStoredHeader(header)) return header;
  }
  return std::nullopt;
}

std::optional<std::string> ChecksumHeaderOfAlgorithm(std::string_view algorithm) {
  std::string header = absl::StrCat("x-amz-checksum-", absl::AsciiStrToLower(Absl(algorithm)));
  if (!PayloadChecksum::For(header)) return std::nullopt;
  return header;
}

std::string ChecksumElement(std::string_view header) {
  std::string_view name = header.substr(std::min(header.size(), strlen("x-amz-checksum-")));
  return absl::StrCat("Checksum", absl::AsciiStrToUpper(Absl(name)));
}

bool SendsChecksum(const S3Request& request) {
  for (const auto& [name, value] : request.headers) {
    if (absl::StartsWith(name, "x-amz-checksum-") && PayloadChecksum::For(name)) return true;
  }
  auto trailer = request.headers.find("x-amz-trailer");
  return trailer != request.headers.end() &&
         absl::StrContains(absl::AsciiStrToLower(trailer->second), "x-amz-checksum-");
}

absl::StatusOr<size_t> ChecksummingBody::Read(char* buffer, size_t size) {
  absl::StatusOr<size_t> n = inner_.Read(buffer, size);
  if (n.ok() && *n > 0) checksum_->Update(std::string_view(buffer, *n));
  return n;
}

std::string HeaderOr(const S3Request& request, const std::string& name,
                     const std::string& fallback) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? fallback : it->second;
}

absl::StatusOr<size_t> FileBodyReader::Read(char* buffer, size_t size) {
  if (offset_ >= end_) return 0;
  absl::StatusOr<std::string> data =
      fs_.Read(ino_, offset_, std::min<uint64_t>(size, end_ - offset_));
  if (!data.ok()) return data.status();
  if (data->empty()) {
    return S3Error(S3ErrorCode::kInternalError, "the copy's source shrank while read");
  }
  std::copy(data->begin(), data->end(), buffer);
  offset_ += data->size();
  return data->size();
}

}  // namespace cairn::frontend

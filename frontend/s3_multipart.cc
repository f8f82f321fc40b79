// Multipart uploads: each part is a nameless file of its own, stored in
// blobs when it is uploaded; Complete fills the object's nameless file with
// the parts' extents (FileSystem::Concatenate: their blobs are shared, no
// byte is copied) and publishes it as a PUT would.
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "frontend/s3_error.h"
#include "frontend/s3_handler.h"
#include "frontend/s3_names.h"
#include "frontend/s3_util.h"

namespace cairn::frontend {
namespace {

constexpr int kMaxParts = 10000;
constexpr size_t kMaxUploads = 10000;

std::string NewUploadId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // Unique enough within one daemon: the time and a counter.
    static std::atomic<uint64_t> counter{0};
    return absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", counter++);
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

std::string OwnerXml(const S3Key& who) {
  return absl::StrCat("<ID>", who.uid, "</ID><DisplayName>", who.uid, "</DisplayName>");
}

std::string IsoTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// The (PartNumber, ETag) pairs of a CompleteMultipartUpload document.
absl::StatusOr<std::vector<std::pair<int, std::string>>> ParseCompletion(const std::string& xml) {
  std::vector<std::pair<int, std::string>> parts;
  for (size_t at = xml.find("<Part>"); at != std::string::npos; at = xml.find("<Part>", at)) {
    size_t end = xml.find("</Part>", at);
    if (end == std::string::npos) return S3Error(S3ErrorCode::kMalformedXML, "a <Part> is not closed");
    std::string part = xml.substr(at, end - at);
    auto field = [&](const std::string& name) -> std::optional<std::string> {
      size_t open = part.find("<" + name + ">");
      size_t close = part.find("</" + name + ">");
      if (open == std::string::npos || close == std::string::npos || close < open) {
        return std::nullopt;
      }
      open += name.size() + 2;
      return XmlUnescape(part.substr(open, close - open));
    };
    std::optional<std::string> number = field("PartNumber");
    std::optional<std::string> etag = field("ETag");
    int value = 0;
    if (!number || !etag || !absl::SimpleAtoi(*number, &value)) {
      return S3Error(S3ErrorCode::kMalformedXML, "each <Part> needs a <PartNumber> and an <ETag>");
    }
    parts.emplace_back(value, Unquoted(*etag));
    at = end;
  }
  if (parts.empty()) {
    return S3Error(S3ErrorCode::kMalformedXML,
                   "CompleteMultipartUpload needs at least one <Part>");
  }
  return parts;
}

absl::StatusOr<std::string> ReadSmallBody(BodyReader& body, size_t limit) {
  std::string text;
  char buffer[16384];
  for (;;) {
    absl::StatusOr<size_t> n = body.Read(buffer, sizeof buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) return text;
    text.append(buffer, *n);
    if (text.size() > limit) {
      return S3Error(S3ErrorCode::kMalformedXML, "the request document is too large");
    }
  }
}

std::string QueryValue(const S3Request& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? "" : it->second;
}

}  // namespace

S3Handler::~S3Handler() {
  absl::MutexLock lock(&uploads_mu_);
  for (const auto& [id, upload] : uploads_) ReleaseParts(upload);
}

void S3Handler::ReleaseParts(const Upload& upload) {
  // Each part is a nameless file: releasing frees it and its blobs.
  for (const auto& [number, part] : upload.parts) fs_.Release(part.ino, O_WRONLY);
}

absl::StatusOr<S3Handler::Upload*> S3Handler::FindUpload(const S3Request& request) {
  auto it = uploads_.find(QueryValue(request, "uploadId"));
  if (it == uploads_.end() || it->second.bucket != request.bucket ||
      it->second.key != request.key) {
    return S3Error(S3ErrorCode::kNoSuchUpload,
                   "no such upload for this key: it was completed, aborted, expired, or the "
                   "daemon restarted since it began; start the upload again");
  }
  if (request.key_owner.uid != 0 && request.key_owner.uid != it->second.owner.uid) {
    return Denied("the upload was begun by another uid");
  }
  return &it->second;
}

absl::StatusOr<S3Response> S3Handler::CreateMultipartUpload(const S3Request& request,
                                                            const InodeAttr& bucket) {
  if (request.key_owner.read_only) return Denied("the key is read-only");
  absl::StatusOr<KeyPath> path = ParseKey(request.key);
  if (!path.ok()) return path.status();
  if (path->dir_key) {
    return S3Error(S3ErrorCode::kInvalidRequest,
                   "a key ending in '/' names a directory, which holds no data");
  }
  Upload upload;
  upload.bucket = request.bucket;
  upload.key = request.key;
  upload.owner = request.key_owner;
  upload.initiated = absl::Now();
  for (const auto& [name, value] : request.headers) {
    if (IsStoredHeader(name)) {
      upload.headers[name] = value;
    }
  }
  std::string id = NewUploadId();
  {
    absl::MutexLock lock(&uploads_mu_);
    // Uploads left behind go when a new one begins.
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      if (!it->second.completing &&
          upload.initiated - it->second.initiated > options_.multipart_expiry) {
        ReleaseParts(it->second);
        it = uploads_.erase(it);
      } else {
        ++it;
      }
    }
    if (uploads_.size() >= kMaxUploads) {
      return S3Error(S3ErrorCode::kSlowDown,
                     "too many multipart uploads are under way; complete or abort some");
    }
    uploads_.emplace(id, std::move(upload));
  }
  S3Response response;
  response.body = absl::StrCat(kXmlHeader, "<InitiateMultipartUploadResult xmlns=\"", kXmlns,
                               "\"><Bucket>", XmlEscape(request.bucket), "</Bucket><Key>",
                               XmlEscape(request.key), "</Key><UploadId>", id,
                               "</UploadId></InitiateMultipartUploadResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::UploadPart(const S3Request& request,
                                                 const InodeAttr& bucket) {
  int number = 0;
  if (!absl::SimpleAtoi(QueryValue(request, "partNumber"), &number) || number < 1 ||
      number > kMaxParts) {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   absl::StrCat("partNumber must be a whole number from 1 to ", kMaxParts));
  }
  // Of two uploads of one part number, the one begun last is the part,
  // whichever ends last (a client's retry must win over its stalled
  // first try).
  uint64_t begun = 0;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);
    if (!upload.ok()) return upload.status();
    begun = ++part_uploads_begun_;
  }
  const bool copy = request.headers.count("x-amz-copy-source") > 0;
  std::optional<InodeAttr> source;
  uint64_t first = 0, end = 0;
  if (copy) {
    absl::StatusOr<InodeAttr> found = CopySource(request);
    if (!found.ok()) return found.status();
    source = *found;
    end = source->size;
    std::string range = HeaderOr(request, "x-amz-copy-source-range");
    if (!range.empty()) {
      uint64_t a = 0, b = 0;
      size_t dash = range.find('-');
      if (!absl::StartsWith(range, "bytes=") || dash == std::string::npos ||
          !absl::SimpleAtoi(range.substr(6, dash - 6), &a) ||
          !absl::SimpleAtoi(range.substr(dash + 1), &b) || a > b) {
        return S3Error(S3ErrorCode::kInvalidArgument,
                       "x-amz-copy-source-range must be bytes=FIRST-LAST");
      }
      if (b >= source->size) {
        return S3Error(S3ErrorCode::kInvalidRange,
                       absl::StrCat("x-amz-copy-source-range goes past the source's ",
                                    source->size, " bytes"));
      }
      first = a;
      end = b + 1;
    }
  }

  absl::StatusOr<InodeAttr> file =
      fs_.CreateUnnamed(bucket.ino, 0644, Caller{request.key_owner.uid, request.key_owner.gid});
  if (!file.ok()) return file.status();
  bool kept = false;
  struct Unkept {
    FileSystem& fs;
    InodeId ino;
    const bool& kept;
    ~Unkept() {
      if (!kept) fs.Release(ino, O_WRONLY);
    }
  } unkept{fs_, file->ino, kept};

  absl::StatusOr<std::string> md5_hex;
  if (copy) {
    if (absl::Status s = fs_.Open(source->ino, O_RDONLY); !s.ok()) return s;
    OpenFile open(fs_, source->ino);
    FileBodyReader body(fs_, source->ino, first, end);
    S3Request plain = request;
    plain.headers.erase("content-md5");
    md5_hex = StreamBody(file->ino, plain, body, end - first);
  } else {
    uint64_t expected = UINT64_MAX;
    std::string length = HeaderOr(request, "x-amz-decoded-content-length",
                                  HeaderOr(request, "content-length"));
    if (!length.empty() && !absl::SimpleAtoi(length, &expected)) {
      return S3Error(S3ErrorCode::kInvalidArgument, "Content-Length is not a number");
    }
    md5_hex = StreamBody(file->ino, request, *request.body, expected);
  }
  // StreamBody stored the part in blobs and committed them: Complete
  // shares only blobs that exist.
  if (!md5_hex.ok()) return md5_hex.status();
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(file->ino);
  if (!attr.ok()) return attr.status();

  std::optional<Part> replaced;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);  // aborted meanwhile?
    if (!upload.ok()) return upload.status();
    if ((*upload)->completing) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed");
    }
    Part part{file->ino, attr->size, *md5_hex, absl::Now(), begun};
    auto [it, inserted] = (*upload)->parts.emplace(number, part);
    if (inserted) {
      kept = true;
    } else if (it->second.begun < begun) {
      replaced = it->second;
      it->second = part;
      kept = true;
    }
    // else a later upload of this part number ended first: it stays, and
    // this one's file goes (`kept` false).
  }
  if (replaced) fs_.Release(replaced->ino, O_WRONLY);

  S3Response response;
  if (copy) {
    response.body = absl::StrCat(kXmlHeader, "<CopyPartResult xmlns=\"", kXmlns, "\"><ETag>",
                                 XmlEscape(Quoted(*md5_hex)), "</ETag><LastModified>",
                                 IsoTime(absl::Now()), "</LastModified></CopyPartResult>");
    response.headers.emplace_back("Content-Type", "application/xml");
  } else {
    response.headers.emplace_back("ETag", Quoted(*md5_hex));
  }
  return response;
}

absl::StatusOr<S3Response> S3Handler::CompleteMultipartUpload(const S3Request& request,
                                                              const InodeAttr& bucket) {
  absl::StatusOr<std::string> xml = ReadSmallBody(*request.body, 4 << 20);
  if (!xml.ok()) return xml.status();
  absl::StatusOr<std::vector<std::pair<int, std::string>>> wanted = ParseCompletion(*xml);
  if (!wanted.ok()) return wanted.status();

  std::vector<InodeId> inos;
  std::vector<uint64_t> part_sizes;
  Md5 etag_md5;
  S3Request object = request;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);
    if (!upload.ok()) {
      // Completing again what was completed answers as the first time, as
      // S3 does: a client that lost the first answer retries.
      auto done = completed_.find(QueryValue(request, "uploadId"));
      if (done != completed_.end() && done->second.bucket == request.bucket &&
          done->second.key == request.key) {
        return CompletionAnswer(request, done->second.etag);
      }
      return upload.status();
    }
    if ((*upload)->completing) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed already");
    }
    int previous = 0;
    for (size_t i = 0; i < wanted->size(); ++i) {
      const auto& [number, etag] = (*wanted)[i];
      if (number <= previous) {
        return S3Error(S3ErrorCode::kInvalidPartOrder,
                       "the parts must be listed in ascending order of PartNumber");
      }
      previous = number;
      auto part = (*upload)->parts.find(number);
      if (part == (*upload)->parts.end() || part->second.md5_hex != etag) {
        return S3Error(S3ErrorCode::kInvalidPart,
                       absl::StrCat("part ", number,
                                    " was not uploaded, or was uploaded again with another "
                                    "ETag"));
      }
      if (i + 1 < wanted->size() && part->second.size < options_.min_part_bytes) {
        return S3Error(S3ErrorCode::kEntityTooSmall,
                       absl::StrCat("part ", number, " holds ", part->second.size,
                                    " bytes; every part but the last must hold at least ",
                                    options_.min_part_bytes));
      }
      etag_md5.Update(absl::HexStringToBytes(part->second.md5_hex));
      inos.push_back(part->second.ino);
      part_sizes.push_back(part->second.size);
    }
    (*upload)->completing = true;
    // The object's metadata is what the initiation carried.
    for (auto it = object.headers.begin(); it != object.headers.end();) {
      if (IsStoredHeader(it->first)) {
        it = object.headers.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [name, value] : (*upload)->headers) object.headers[name] = value;
  }
  object.headers.erase("content-md5");
  const std::string etag =
      absl::StrCat(absl::BytesToHexString(etag_md5.Finish()), "-", wanted->size());

  absl::StatusOr<Written> written =
      WriteObject(object, bucket, request.key, nullptr, [&](InodeId ino) -> absl::StatusOr<std::string> {
        absl::StatusOr<InodeAttr> filled = fs_.Concatenate(ino, inos);
        if (!filled.ok()) return filled.status();
        absl::Status kept = fs_.SetXattr(ino, kPartsXattr, PartSizesStamp(part_sizes, *filled),
                                         XattrMode::kCreateOrReplace);
        if (!kept.ok()) return kept;
        return etag;
      });

  absl::MutexLock lock(&uploads_mu_);
  auto it = uploads_.find(QueryValue(request, "uploadId"));
  if (!written.ok()) {
    // The client may complete again (or abort).
    if (it != uploads_.end()) it->second.completing = false;
    return written.status();
  }
  if (it != uploads_.end()) {
    ReleaseParts(it->second);  // the object holds their blobs now
    uploads_.erase(it);
  }
  const std::string id = QueryValue(request, "uploadId");
  if (completed_.emplace(id, Completed{request.bucket, request.key, etag}).second) {
    completed_order_.push_back(id);
  }
  while (completed_order_.size() > kRememberedCompletions) {
    completed_.erase(completed_order_.front());
    completed_order_.pop_front();
  }
  return CompletionAnswer(request, etag);
}

S3Response S3Handler::CompletionAnswer(const S3Request& request, const std::string& etag) {
  S3Response response;
  response.body = absl::StrCat(
      kXmlHeader, "<CompleteMultipartUploadResult xmlns=\"", kXmlns, "\"><Location>/",
      XmlEscape(request.bucket), "/", XmlEscape(request.key), "</Location><Bucket>",
      XmlEscape(request.bucket), "</Bucket><Key>", XmlEscape(request.key), "</Key><ETag>",
      XmlEscape(Quoted(etag)), "</ETag></CompleteMultipartUploadResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::AbortMultipartUpload(const S3Request& request) {
  Upload upload;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> found = FindUpload(request);
    if (!found.ok()) return found.status();
    if ((*found)->completing) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed");
    }
    upload = std::move(**found);
    uploads_.erase(QueryValue(request, "uploadId"));
  }
  ReleaseParts(upload);
  S3Response response;
  response.status = 204;
  return response;
}

absl::StatusOr<S3Response> S3Handler::ListParts(const S3Request& request) {
  int marker = 0;
  int max_parts = 1000;
  if (std::string text = QueryValue(request, "part-number-marker"); !text.empty()) {
    if (!absl::SimpleAtoi(text, &marker)) {
      return S3Error(S3ErrorCode::kInvalidArgument, "part-number-marker must be a number");
    }
  }
  if (std::string text = QueryValue(request, "max-parts"); !text.empty()) {
    if (!absl::SimpleAtoi(text, &max_parts) || max_parts < 0) {
      return S3Error(S3ErrorCode::kInvalidArgument, "max-parts must be a number >= 0");
    }
    max_parts = std::min(max_parts, 1000);
  }
  absl::MutexLock lock(&uploads_mu_);
  absl::StatusOr<Upload*> upload = FindUpload(request);
  if (!upload.ok()) return upload.status();
  std::string parts;
  int listed = 0, last = marker;
  bool truncated = false;
  for (auto it = (*upload)->parts.upper_bound(marker); it != (*upload)->parts.end(); ++it) {
    if (listed == max_parts) {
      truncated = true;
      break;
    }
    absl::StrAppend(&parts, "<Part><PartNumber>", it->first, "</PartNumber><LastModified>",
                    IsoTime(it->second.modified), "</LastModified><ETag>",
                    XmlEscape(Quoted(it->second.md5_hex)), "</ETag><Size>", it->second.size,
                    "</Size></Part>");
    last = it->first;
    ++listed;
  }
  S3Response response;
  response.body = absl::StrCat(
      kXmlHeader, "<ListPartsResult xmlns=\"", kXmlns, "\"><Bucket>", XmlEscape(request.bucket),
      "</Bucket><Key>", XmlEscape(request.key), "</Key><UploadId>",
      XmlEscape(QueryValue(request, "uploadId")), "</UploadId><Initiator>",
      OwnerXml((*upload)->owner), "</Initiator><Owner>", OwnerXml((*upload)->owner),
      "</Owner><StorageClass>STANDARD</StorageClass><PartNumberMarker>", marker,
      "</PartNumberMarker><NextPartNumberMarker>", last, "</NextPartNumberMarker><MaxParts>",
      max_parts, "</MaxParts><IsTruncated>", truncated ? "true" : "false", "</IsTruncated>", parts,
      "</ListPartsResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::ListMultipartUploads(const S3Request& request) {
  const std::string prefix = QueryValue(request, "prefix");
  std::string entries;
  {
    absl::MutexLock lock(&uploads_mu_);
    // In key order, then upload id, as S3 lists them.
    std::vector<std::pair<std::string, std::string>> found;
    for (const auto& [id, upload] : uploads_) {
      if (upload.bucket != request.bucket || !absl::StartsWith(upload.key, prefix)) continue;
      if (request.key_owner.uid != 0 && upload.owner.uid != request.key_owner.uid) continue;
      found.emplace_back(upload.key, id);
    }
    std::sort(found.begin(), found.end());
    if (found.size() > 1000) found.resize(1000);
    for (const auto& [key, id] : found) {
      const Upload& upload = uploads_.at(id);
      absl::StrAppend(&entries, "<Upload><Key>", XmlEscape(key), "</Key><UploadId>", id,
                      "</UploadId><Initiator>", OwnerXml(upload.owner), "</Initiator><Owner>",
                      OwnerXml(upload.owner),
                      "</Owner><StorageClass>STANDARD</StorageClass><Initiated>",
                      IsoTime(upload.initiated), "</Initiated></Upload>");
    }
  }
  S3Response response;
  response.body = absl::StrCat(
      kXmlHeader, "<ListMultipartUploadsResult xmlns=\"", kXmlns, "\"><Bucket>",
      XmlEscape(request.bucket), "</Bucket><KeyMarker></KeyMarker><UploadIdMarker>"
      "</UploadIdMarker><Prefix>", XmlEscape(prefix),
      "</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>", entries,
      "</ListMultipartUploadsResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

}  // namespace cairn::frontend

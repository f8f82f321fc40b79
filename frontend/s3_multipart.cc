// Multipart uploads: each upload is a record in the namespace, and each
// part a nameless file of its own that the record holds, stored in blobs
// when it is uploaded; Complete fills the object's nameless file with the
// parts' extents (FileSystem::Concatenate: their blobs are shared, no byte
// is copied) and publishes it in the commit that ends the upload and frees
// the parts (FileSystem::PublishUpload). An upload survives a restart.
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backend/base/log.h"
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

// One <Part> of a CompleteMultipartUpload document.
struct WantedPart {
  int number = 0;
  std::string etag;
  // <ChecksumCRC32C> and the like, by element name.
  std::map<std::string, std::string> checksums;
};

absl::StatusOr<std::vector<WantedPart>> ParseCompletion(const std::string& xml) {
  std::vector<WantedPart> parts;
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
    WantedPart wanted;
    if (!number || !etag || !absl::SimpleAtoi(*number, &wanted.number)) {
      return S3Error(S3ErrorCode::kMalformedXML, "each <Part> needs a <PartNumber> and an <ETag>");
    }
    wanted.etag = Unquoted(*etag);
    for (size_t tag = part.find("<Checksum"); tag != std::string::npos;
         tag = part.find("<Checksum", tag + 1)) {
      size_t close = part.find('>', tag);
      if (close == std::string::npos) break;
      std::string name = part.substr(tag + 1, close - tag - 1);
      if (std::optional<std::string> value = field(name)) wanted.checksums[name] = *value;
    }
    parts.push_back(std::move(wanted));
    at = end;
  }
  if (parts.empty()) {
    return S3Error(S3ErrorCode::kMalformedXML,
                   "CompleteMultipartUpload needs at least one <Part>");
  }
  return parts;
}

// The checksums an upload may ask for are those PayloadChecksum computes.
constexpr char kChecksumPrefix[] = "x-amz-checksum-";

// "x-amz-checksum-crc32c" for "CRC32C", if PayloadChecksum has it.
std::optional<std::string> ChecksumHeaderOf(std::string_view algorithm) {
  std::string header = absl::StrCat(kChecksumPrefix, absl::AsciiStrToLower(Absl(algorithm)));
  if (algorithm.empty() || !PayloadChecksum::For(header)) return std::nullopt;
  return header;
}
// "CRC32C" for "x-amz-checksum-crc32c".
std::string AlgorithmOf(const std::string& header) {
  return absl::AsciiStrToUpper(header.substr(sizeof kChecksumPrefix - 1));
}
// "ChecksumCRC32C", the XML element S3 names the value in.
std::string ChecksumElement(const std::string& header) {
  return absl::StrCat("Checksum", AlgorithmOf(header));
}

// The checksum of a multipart object, as S3 composes it: the checksum of
// the parts' raw checksums one after another, in base64, and "-" and the
// number of parts.
absl::StatusOr<std::string> CompositeChecksum(const std::string& header,
                                              const std::vector<std::string>& part_checksums) {
  std::unique_ptr<PayloadChecksum> sum = PayloadChecksum::For(header);
  if (!sum) return absl::InternalError(absl::StrCat("no checksum for ", header));
  for (const std::string& part : part_checksums) {
    std::string raw;
    if (!absl::Base64Unescape(part, &raw)) {
      return absl::InternalError("a part's stored checksum is not base64");
    }
    sum->Update(raw);
  }
  return absl::StrCat(sum->Finish(), "-", part_checksums.size());
}

// A body passed on as it is read, checksummed on the way (the copy of a
// part, whose checksum no client sent).
class ChecksummingReader final : public BodyReader {
 public:
  ChecksummingReader(BodyReader& inner, std::string header)
      : inner_(inner), header_(std::move(header)), sum_(PayloadChecksum::For(header_)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    absl::StatusOr<size_t> n = inner_.Read(buffer, size);
    if (!n.ok() || sum_ == nullptr) return n;
    if (*n > 0) {
      sum_->Update(std::string_view(buffer, *n));
    } else if (!value_) {
      value_ = sum_->Finish();
    }
    return n;
  }
  std::optional<std::pair<std::string, std::string>> Checksum() const override {
    if (!value_) return std::nullopt;
    return std::make_pair(header_, *value_);
  }

 private:
  BodyReader& inner_;
  const std::string header_;
  std::unique_ptr<PayloadChecksum> sum_;
  std::optional<std::string> value_;
};

absl::Time TimeOf(const Timespec& t) {
  return absl::FromUnixSeconds(t.sec) + absl::Nanoseconds(t.nsec);
}
Timespec TimespecOf(absl::Time t) {
  int64_t ns = absl::ToUnixNanos(t);
  return Timespec{ns / 1000000000, static_cast<uint32_t>(ns % 1000000000)};
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

absl::Status S3Handler::LoadUploads() {
  if (uploads_loaded_) return absl::OkStatus();
  std::map<std::string, Upload> loaded;
  absl::Status listed = fs_.ListUploads("", [&](const std::string& id,
                                                const MultipartUploadRecord& record) {
    Upload upload;
    upload.bucket = record.bucket;
    upload.key = record.key;
    upload.owner.access_key = record.access_key;
    upload.owner.uid = record.uid;
    upload.owner.gid = record.gid;
    upload.initiated = TimeOf(record.initiated);
    upload.checksum_header = record.checksum_header;
    loaded.emplace(id, std::move(upload));
    // Never more than kMaxUploads are begun; a namespace holding more
    // (written by another build) is indexed no further.
    return loaded.size() < 2 * kMaxUploads;
  });
  if (!listed.ok()) return listed;
  for (auto& [id, upload] : loaded) uploads_.try_emplace(id, std::move(upload));
  uploads_loaded_ = true;
  return absl::OkStatus();
}

void S3Handler::AbortExpiredUploads() {
  // A read-only volume changes nothing; its next read-write start sweeps.
  if (fs_.read_only()) return;
  const absl::Time now = absl::Now();
  std::vector<std::string> expired;
  {
    absl::MutexLock lock(&uploads_mu_);
    for (auto& [id, upload] : uploads_) {
      if (!upload.ending && now - upload.initiated > options_.multipart_expiry) {
        upload.ending = true;
        expired.push_back(id);
      }
    }
  }
  for (const std::string& id : expired) {
    absl::Status aborted = fs_.AbortUpload(id);
    if (!aborted.ok() && !IsNotFound(aborted)) {
      LogError("S3: could not abort expired multipart upload %s: %s", id, aborted.ToString());
    }
    absl::MutexLock lock(&uploads_mu_);
    if (aborted.ok() || IsNotFound(aborted)) {
      uploads_.erase(id);
    } else if (auto it = uploads_.find(id); it != uploads_.end()) {
      it->second.ending = false;  // tried again at the next sweep
    }
  }
}

absl::StatusOr<S3Handler::Upload*> S3Handler::FindUpload(const S3Request& request) {
  if (absl::Status s = LoadUploads(); !s.ok()) return s;
  auto it = uploads_.find(QueryValue(request, "uploadId"));
  if (it == uploads_.end() || it->second.bucket != request.bucket ||
      it->second.key != request.key) {
    return S3Error(S3ErrorCode::kNoSuchUpload,
                   "no such upload for this key: it was completed, aborted or expired; start "
                   "the upload again");
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
  MultipartUploadRecord record;
  record.bucket = request.bucket;
  record.key = request.key;
  record.uid = request.key_owner.uid;
  record.gid = request.key_owner.gid;
  record.access_key = request.key_owner.access_key;
  const absl::Time initiated = absl::Now();
  record.initiated = TimespecOf(initiated);
  for (const auto& [name, value] : request.headers) {
    if (IsStoredHeader(name)) record.headers.emplace_back(name, value);
  }
  if (std::string algorithm = HeaderOr(request, "x-amz-checksum-algorithm"); !algorithm.empty()) {
    std::optional<std::string> header = ChecksumHeaderOf(algorithm);
    if (!header) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     absl::StrCat("x-amz-checksum-algorithm ", algorithm,
                                  " is not one this server computes"));
    }
    record.checksum_header = *header;
  }
  if (std::string type = absl::AsciiStrToUpper(HeaderOr(request, "x-amz-checksum-type"));
      !type.empty() && type != "COMPOSITE") {
    return S3Error(S3ErrorCode::kInvalidRequest,
                   "only COMPOSITE checksums of multipart uploads are served");
  }
  AbortExpiredUploads();
  std::string id = NewUploadId();
  {
    absl::MutexLock lock(&uploads_mu_);
    if (absl::Status s = LoadUploads(); !s.ok()) return s;
    if (uploads_.size() >= kMaxUploads) {
      return S3Error(S3ErrorCode::kSlowDown,
                     "too many multipart uploads are under way; complete or abort some");
    }
    Upload upload;
    upload.bucket = record.bucket;
    upload.key = record.key;
    upload.owner = request.key_owner;
    upload.owner.secret_key.clear();
    upload.owner.buckets.clear();
    upload.initiated = initiated;
    upload.checksum_header = record.checksum_header;
    upload.ending = true;  // unusable until its record is durable
    uploads_.emplace(id, std::move(upload));
  }
  // Synced before the answer: an id a client holds survives a crash.
  absl::Status begun = fs_.BeginUpload(id, record);
  {
    absl::MutexLock lock(&uploads_mu_);
    if (!begun.ok()) {
      uploads_.erase(id);
      return begun;
    }
    uploads_.at(id).ending = false;
  }
  S3Response response;
  response.body = absl::StrCat(kXmlHeader, "<InitiateMultipartUploadResult xmlns=\"", kXmlns,
                               "\"><Bucket>", XmlEscape(request.bucket), "</Bucket><Key>",
                               XmlEscape(request.key), "</Key><UploadId>", id,
                               "</UploadId></InitiateMultipartUploadResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  if (!record.checksum_header.empty()) {
    response.headers.emplace_back("x-amz-checksum-algorithm", AlgorithmOf(record.checksum_header));
    response.headers.emplace_back("x-amz-checksum-type", "COMPOSITE");
  }
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
  const std::string id = QueryValue(request, "uploadId");
  const bool copy = request.headers.count("x-amz-copy-source") > 0;
  uint64_t begun = 0;
  std::string checksum_header;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);
    if (!upload.ok()) return upload.status();
    checksum_header = (*upload)->checksum_header;
    begun = ++part_uploads_begun_;
    part_slots_[{id, number}].in_flight++;
  }
  struct InFlight {
    S3Handler& handler;
    std::pair<std::string, int> slot;
    ~InFlight() {
      absl::MutexLock lock(&handler.uploads_mu_);
      auto it = handler.part_slots_.find(slot);
      if (it != handler.part_slots_.end() && --it->second.in_flight == 0) {
        handler.part_slots_.erase(it);
      }
    }
  } in_flight{*this, {id, number}};

  if (!checksum_header.empty() && !copy) {
    // Checked before the body is read, and again once it was.
    const bool sent = request.headers.count(checksum_header) > 0 ||
                      absl::AsciiStrToLower(HeaderOr(request, "x-amz-trailer")) == checksum_header;
    if (!sent) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     absl::StrCat("the upload was begun with x-amz-checksum-algorithm ",
                                  AlgorithmOf(checksum_header), ": each part must carry ",
                                  checksum_header, " (as a header or a trailer)"));
    }
  }
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
  // The handle goes whatever happens: a part the upload recorded is held
  // by its record; one it did not is freed.
  struct Unkept {
    FileSystem& fs;
    InodeId ino;
    ~Unkept() { fs.Release(ino, O_WRONLY); }
  } unkept{fs_, file->ino};

  absl::StatusOr<std::string> md5_hex;
  std::optional<std::pair<std::string, std::string>> checksum;
  if (copy) {
    if (absl::Status s = fs_.Open(source->ino, O_RDONLY); !s.ok()) return s;
    OpenFile open(fs_, source->ino);
    FileBodyReader body(fs_, source->ino, first, end);
    S3Request plain = request;
    plain.headers.erase("content-md5");
    if (checksum_header.empty()) {
      md5_hex = StreamBody(file->ino, plain, body, end - first);
    } else {
      ChecksummingReader summed(body, checksum_header);
      md5_hex = StreamBody(file->ino, plain, summed, end - first);
      checksum = summed.Checksum();
    }
  } else {
    uint64_t expected = UINT64_MAX;
    std::string length = HeaderOr(request, "x-amz-decoded-content-length",
                                  HeaderOr(request, "content-length"));
    if (!length.empty() && !absl::SimpleAtoi(length, &expected)) {
      return S3Error(S3ErrorCode::kInvalidArgument, "Content-Length is not a number");
    }
    md5_hex = StreamBody(file->ino, request, *request.body, expected);
    if (md5_hex.ok()) checksum = request.body->Checksum();
  }
  // StreamBody stored the part in blobs and committed them: Complete
  // shares only blobs that exist.
  if (!md5_hex.ok()) return md5_hex.status();
  if (!checksum_header.empty() && (!checksum || checksum->first != checksum_header)) {
    return S3Error(S3ErrorCode::kInvalidRequest,
                   absl::StrCat("the part carried no ", checksum_header,
                                ", which its upload was begun with"));
  }
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(file->ino);
  if (!attr.ok()) return attr.status();

  MultipartPartRecord part;
  part.number = static_cast<uint32_t>(number);
  part.ino = file->ino;
  part.size = attr->size;
  part.etag = *md5_hex;
  if (!checksum_header.empty()) part.checksum = checksum->second;
  part.modified = TimespecOf(absl::Now());
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);  // aborted meanwhile?
    if (!upload.ok()) return upload.status();
    if ((*upload)->ending) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed or aborted");
    }
    PartSlot& slot = part_slots_[{id, number}];
    // A later upload of this part number ended first: it stays, and this
    // one's file goes.
    if (slot.recorded_begun < begun) {
      // Under the lock, so that the records land in the order of this
      // check; the commit is a log append, the sync comes after.
      absl::StatusOr<std::optional<MultipartPartRecord>> replaced = fs_.AddUploadPart(id, part);
      if (!replaced.ok()) return replaced.status();
      slot.recorded_begun = begun;
    }
  }
  if (absl::Status s = fs_.SyncUploads(); !s.ok()) return s;

  S3Response response;
  if (copy) {
    std::string sum;
    if (checksum) {
      const std::string element = ChecksumElement(checksum->first);
      sum = absl::StrCat("<", element, ">", checksum->second, "</", element, ">");
    }
    response.body = absl::StrCat(kXmlHeader, "<CopyPartResult xmlns=\"", kXmlns, "\"><ETag>",
                                 XmlEscape(Quoted(*md5_hex)), "</ETag><LastModified>",
                                 IsoTime(absl::Now()), "</LastModified>", sum,
                                 "</CopyPartResult>");
    response.headers.emplace_back("Content-Type", "application/xml");
  } else {
    response.headers.emplace_back("ETag", Quoted(*md5_hex));
    if (checksum) response.headers.emplace_back(checksum->first, checksum->second);
  }
  return response;
}

absl::StatusOr<S3Response> S3Handler::CompleteMultipartUpload(const S3Request& request,
                                                              const InodeAttr& bucket) {
  absl::StatusOr<std::string> xml = ReadSmallBody(*request.body, 4 << 20);
  if (!xml.ok()) return xml.status();
  absl::StatusOr<std::vector<WantedPart>> wanted = ParseCompletion(*xml);
  if (!wanted.ok()) return wanted.status();
  const std::string id = QueryValue(request, "uploadId");

  std::string checksum_header;
  absl::Status gone;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> upload = FindUpload(request);
    if (!upload.ok()) {
      // Completing again what was completed answers as the first time, as
      // S3 does: a client that lost the first answer retries.
      auto done = completed_.find(id);
      if (done != completed_.end() && done->second.bucket == request.bucket &&
          done->second.key == request.key) {
        return CompletionAnswer(request, done->second);
      }
      gone = upload.status();
    } else if ((*upload)->ending) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed or aborted");
    } else {
      (*upload)->ending = true;
      checksum_header = (*upload)->checksum_header;
    }
  }
  if (!gone.ok()) {
    // Forgotten by a restart: the object may still be the one it made.
    if (S3ErrorCodeOf(gone) != S3ErrorCode::kNoSuchUpload) return gone;
    absl::StatusOr<std::optional<Completed>> kept = CompletionKeptWith(request, bucket, id);
    if (!kept.ok()) return kept.status();
    if (!kept->has_value()) return gone;
    return CompletionAnswer(request, **kept);
  }
  // Until the commit, a failure leaves the upload as it was: completable.
  bool ended = false;
  struct Unending {
    S3Handler& handler;
    const std::string& id;
    const bool& ended;
    ~Unending() {
      if (ended) return;
      absl::MutexLock lock(&handler.uploads_mu_);
      if (auto it = handler.uploads_.find(id); it != handler.uploads_.end()) {
        it->second.ending = false;
      }
    }
  } unending{*this, id, ended};

  absl::StatusOr<std::optional<MultipartUploadRecord>> record = fs_.GetUpload(id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) {
    return S3Error(S3ErrorCode::kNoSuchUpload, "the upload's record is gone");
  }
  // Every part's record (at most kMaxParts, small each).
  std::map<int, MultipartPartRecord> parts;
  absl::Status listed = fs_.ListUploadParts(id, 0, [&](const MultipartPartRecord& part) {
    parts.emplace(static_cast<int>(part.number), part);
    return true;
  });
  if (!listed.ok()) return listed;

  std::vector<InodeId> inos;
  std::vector<uint64_t> part_sizes;
  std::vector<std::string> part_checksums;
  Md5 etag_md5;
  const std::string element = checksum_header.empty() ? "" : ChecksumElement(checksum_header);
  int previous = 0;
  for (size_t i = 0; i < wanted->size(); ++i) {
    const WantedPart& want = (*wanted)[i];
    if (want.number <= previous) {
      return S3Error(S3ErrorCode::kInvalidPartOrder,
                     "the parts must be listed in ascending order of PartNumber");
    }
    previous = want.number;
    auto part = parts.find(want.number);
    if (part == parts.end() || part->second.etag != want.etag) {
      return S3Error(S3ErrorCode::kInvalidPart,
                     absl::StrCat("part ", want.number,
                                  " was not uploaded, or was uploaded again with another ETag"));
    }
    for (const auto& [name, value] : want.checksums) {
      if (name != element) {
        return S3Error(S3ErrorCode::kInvalidRequest,
                       absl::StrCat("<", name, "> of part ", want.number, ": the upload was ",
                                    element.empty() ? "begun without a checksum algorithm"
                                                    : absl::StrCat("begun with ", element)));
      }
      if (value != part->second.checksum) {
        return S3Error(S3ErrorCode::kInvalidPart,
                       absl::StrCat("part ", want.number, "'s ", name, " is ",
                                    part->second.checksum, ", not ", value));
      }
    }
    if (i + 1 < wanted->size() && part->second.size < options_.min_part_bytes) {
      return S3Error(S3ErrorCode::kEntityTooSmall,
                     absl::StrCat("part ", want.number, " holds ", part->second.size,
                                  " bytes; every part but the last must hold at least ",
                                  options_.min_part_bytes));
    }
    etag_md5.Update(absl::HexStringToBytes(part->second.etag));
    inos.push_back(part->second.ino);
    part_sizes.push_back(part->second.size);
    part_checksums.push_back(part->second.checksum);
  }
  Completed done{request.bucket, request.key, "", std::nullopt};
  done.etag = absl::StrCat(absl::BytesToHexString(etag_md5.Finish()), "-", wanted->size());
  if (!checksum_header.empty()) {
    absl::StatusOr<std::string> composite = CompositeChecksum(checksum_header, part_checksums);
    if (!composite.ok()) return composite.status();
    done.checksum = std::make_pair(checksum_header, *composite);
  }

  // The object's metadata is what the initiation carried.
  S3Request object = request;
  for (auto it = object.headers.begin(); it != object.headers.end();) {
    if (IsStoredHeader(it->first)) {
      it = object.headers.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, value] : (*record)->headers) object.headers[name] = value;
  object.headers.erase("content-md5");

  // Each step but the last changes only the object's nameless file (a
  // crash frees it at the next mount, the upload still there); the last
  // names it and ends the upload in one commit (PublishUpload).
  absl::StatusOr<Written> written = WriteObject(
      object, bucket, request.key, nullptr,
      [&](InodeId ino) -> absl::StatusOr<std::string> {
        absl::StatusOr<InodeAttr> filled = fs_.Concatenate(ino, inos);
        if (!filled.ok()) return filled.status();
        absl::Status kept = fs_.SetXattr(ino, kPartsXattr, PartSizesStamp(part_sizes, *filled),
                                         XattrMode::kCreateOrReplace);
        if (!kept.ok()) return kept;
        // Named with the object by the commit that ends the upload: a
        // Complete repeated after a restart finds the upload's id there.
        kept = fs_.SetXattr(ino, kUploadXattr, UploadStamp(id, *filled),
                            XattrMode::kCreateOrReplace);
        if (!kept.ok()) return kept;
        if (done.checksum) {
          kept = fs_.SetXattr(ino, kChecksumXattr, ChecksumStamp(*done.checksum, *filled),
                              XattrMode::kCreateOrReplace);
          if (!kept.ok()) return kept;
        }
        return done.etag;
      },
      id);
  if (!written.ok()) return written.status();

  absl::MutexLock lock(&uploads_mu_);
  ended = true;
  uploads_.erase(id);
  if (completed_.emplace(id, done).second) completed_order_.push_back(id);
  while (completed_order_.size() > kRememberedCompletions) {
    completed_.erase(completed_order_.front());
    completed_order_.pop_front();
  }
  return CompletionAnswer(request, done);
}

absl::StatusOr<std::optional<S3Handler::Completed>> S3Handler::CompletionKeptWith(
    const S3Request& request, const InodeAttr& bucket, const std::string& id) {
  absl::StatusOr<KeyPath> path = ParseKey(request.key);
  if (!path.ok() || path->dir_key) return std::nullopt;
  absl::StatusOr<Resolved> found = Resolve(fs_, bucket, *path, request.key_owner);
  if (!found.ok()) return found.status();
  if (!found->target || !S_ISREG(found->target->mode)) return std::nullopt;
  // The file as the lookup found it (deleted since, its stamp reads as
  // none). A PUT or copy since made another file, which has no such stamp
  // (or its own upload's); a write through the mount voids the stamp.
  const InodeAttr& attr = *found->target;
  if (UploadOf(fs_, attr) != id) return std::nullopt;
  if (request.key_owner.uid != 0 && request.key_owner.uid != attr.uid) {
    return Denied("the upload was completed by another uid");
  }
  return Completed{request.bucket, request.key, EtagOf(fs_, attr), ChecksumOf(fs_, attr)};
}

S3Response S3Handler::CompletionAnswer(const S3Request& request, const Completed& done) {
  std::string sum;
  if (done.checksum) {
    const std::string element = ChecksumElement(done.checksum->first);
    sum = absl::StrCat("<", element, ">", done.checksum->second, "</", element,
                       "><ChecksumType>COMPOSITE</ChecksumType>");
  }
  S3Response response;
  response.body = absl::StrCat(
      kXmlHeader, "<CompleteMultipartUploadResult xmlns=\"", kXmlns, "\"><Location>/",
      XmlEscape(request.bucket), "/", XmlEscape(request.key), "</Location><Bucket>",
      XmlEscape(request.bucket), "</Bucket><Key>", XmlEscape(request.key), "</Key><ETag>",
      XmlEscape(Quoted(done.etag)), "</ETag>", sum, "</CompleteMultipartUploadResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::AbortMultipartUpload(const S3Request& request) {
  const std::string id = QueryValue(request, "uploadId");
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> found = FindUpload(request);
    if (!found.ok()) return found.status();
    if ((*found)->ending) {
      return S3Error(S3ErrorCode::kNoSuchUpload, "the upload is being completed or aborted");
    }
    (*found)->ending = true;
  }
  // One commit drops the record and frees the parts.
  absl::Status aborted = fs_.AbortUpload(id);
  {
    absl::MutexLock lock(&uploads_mu_);
    if (aborted.ok() || IsNotFound(aborted)) {
      uploads_.erase(id);
    } else if (auto it = uploads_.find(id); it != uploads_.end()) {
      it->second.ending = false;
    }
  }
  if (!aborted.ok() && !IsNotFound(aborted)) return aborted;
  S3Response response;
  response.status = 204;
  return response;
}

absl::StatusOr<S3Response> S3Handler::ListParts(const S3Request& request) {
  int marker = 0;
  int max_parts = 1000;
  if (std::string text = QueryValue(request, "part-number-marker"); !text.empty()) {
    if (!absl::SimpleAtoi(text, &marker) || marker < 0) {
      return S3Error(S3ErrorCode::kInvalidArgument, "part-number-marker must be a number");
    }
  }
  if (std::string text = QueryValue(request, "max-parts"); !text.empty()) {
    if (!absl::SimpleAtoi(text, &max_parts) || max_parts < 0) {
      return S3Error(S3ErrorCode::kInvalidArgument, "max-parts must be a number >= 0");
    }
    max_parts = std::min(max_parts, 1000);
  }
  Upload upload;
  {
    absl::MutexLock lock(&uploads_mu_);
    absl::StatusOr<Upload*> found = FindUpload(request);
    if (!found.ok()) return found.status();
    upload = **found;
  }
  const std::string id = QueryValue(request, "uploadId");
  std::string parts;
  int listed = 0, last = marker;
  bool truncated = false;
  absl::Status scanned = fs_.ListUploadParts(
      id, static_cast<uint32_t>(marker), [&](const MultipartPartRecord& part) {
        if (listed == max_parts) {
          truncated = true;
          return false;
        }
        std::string sum;
        if (!upload.checksum_header.empty() && !part.checksum.empty()) {
          const std::string element = ChecksumElement(upload.checksum_header);
          sum = absl::StrCat("<", element, ">", part.checksum, "</", element, ">");
        }
        absl::StrAppend(&parts, "<Part><PartNumber>", part.number, "</PartNumber><LastModified>",
                        IsoTime(TimeOf(part.modified)), "</LastModified><ETag>",
                        XmlEscape(Quoted(part.etag)), "</ETag><Size>", part.size, "</Size>", sum,
                        "</Part>");
        last = static_cast<int>(part.number);
        ++listed;
        return true;
      });
  if (!scanned.ok()) return scanned;
  std::string algorithm;
  if (!upload.checksum_header.empty()) {
    algorithm = absl::StrCat("<ChecksumAlgorithm>", AlgorithmOf(upload.checksum_header),
                             "</ChecksumAlgorithm><ChecksumType>COMPOSITE</ChecksumType>");
  }
  S3Response response;
  response.body = absl::StrCat(
      kXmlHeader, "<ListPartsResult xmlns=\"", kXmlns, "\"><Bucket>", XmlEscape(request.bucket),
      "</Bucket><Key>", XmlEscape(request.key), "</Key><UploadId>", XmlEscape(id),
      "</UploadId><Initiator>", OwnerXml(upload.owner), "</Initiator><Owner>",
      OwnerXml(upload.owner), "</Owner><StorageClass>STANDARD</StorageClass>", algorithm,
      "<PartNumberMarker>", marker, "</PartNumberMarker><NextPartNumberMarker>", last,
      "</NextPartNumberMarker><MaxParts>", max_parts, "</MaxParts><IsTruncated>",
      truncated ? "true" : "false", "</IsTruncated>", parts, "</ListPartsResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::ListMultipartUploads(const S3Request& request) {
  const std::string prefix = QueryValue(request, "prefix");
  const std::string delimiter = QueryValue(request, "delimiter");
  const std::string key_marker = QueryValue(request, "key-marker");
  // As S3: an upload id marker means nothing without a key marker.
  const std::string id_marker = key_marker.empty() ? "" : QueryValue(request, "upload-id-marker");
  absl::StatusOr<bool> url_encoded = ListingUrlEncoded(request);
  if (!url_encoded.ok()) return url_encoded.status();
  auto encode = [&](const std::string& text) { return ListingText(text, *url_encoded); };
  absl::StatusOr<size_t> limit = ListingLimit(request, "max-uploads");
  if (!limit.ok()) return limit.status();
  const size_t max_uploads = *limit;

  std::string entries, prefixes;
  size_t listed = 0;
  bool truncated = false;
  std::string next_key, next_id;
  {
    absl::MutexLock lock(&uploads_mu_);
    if (absl::Status s = LoadUploads(); !s.ok()) return s;
    // In key order, then upload id: the order the markers page in.
    std::vector<std::pair<std::string, std::string>> found;
    for (const auto& [id, upload] : uploads_) {
      if (upload.bucket != request.bucket || !absl::StartsWith(upload.key, prefix)) continue;
      if (request.key_owner.uid != 0 && upload.owner.uid != request.key_owner.uid) continue;
      found.emplace_back(upload.key, id);
    }
    std::sort(found.begin(), found.end());
    std::string last_common;
    for (const auto& [key, id] : found) {
      // The uploads of keys holding the delimiter past the prefix roll up
      // into one common prefix, counted once, and listed only if it sorts
      // after the key marker (else an earlier page listed it).
      size_t at = delimiter.empty() ? std::string::npos : key.find(delimiter, prefix.size());
      if (at != std::string::npos) {
        std::string common = key.substr(0, at + delimiter.size());
        if (common <= key_marker || common == last_common) continue;
        if (listed == max_uploads) {
          truncated = true;
          break;
        }
        absl::StrAppend(&prefixes, "<CommonPrefixes><Prefix>", encode(common),
                        "</Prefix></CommonPrefixes>");
        ++listed;
        next_key = common;
        next_id.clear();
        last_common = std::move(common);
        continue;
      }
      const bool after = key > key_marker || (key == key_marker && !id_marker.empty() &&
                                              id > id_marker);
      if (!after) continue;
      if (listed == max_uploads) {
        truncated = true;
        break;
      }
      const Upload& upload = uploads_.at(id);
      std::string algorithm;
      if (!upload.checksum_header.empty()) {
        algorithm = absl::StrCat("<ChecksumAlgorithm>", AlgorithmOf(upload.checksum_header),
                                 "</ChecksumAlgorithm>");
      }
      absl::StrAppend(&entries, "<Upload><Key>", encode(key), "</Key><UploadId>", id,
                      "</UploadId><Initiator>", OwnerXml(upload.owner), "</Initiator><Owner>",
                      OwnerXml(upload.owner),
                      "</Owner><StorageClass>STANDARD</StorageClass><Initiated>",
                      IsoTime(upload.initiated), "</Initiated>", algorithm, "</Upload>");
      ++listed;
      next_key = key;
      next_id = id;
    }
  }
  if (listed == 0) {
    // Nothing listed (max-uploads=0, or past the end): the next page
    // starts where this one did.
    next_key = key_marker;
    next_id = id_marker;
  }
  // The elements in the order of S3's ListMultipartUploadsResult.
  std::string body = absl::StrCat(
      kXmlHeader, "<ListMultipartUploadsResult xmlns=\"", kXmlns, "\"><Bucket>",
      XmlEscape(request.bucket), "</Bucket><KeyMarker>", encode(key_marker),
      "</KeyMarker><UploadIdMarker>", XmlEscape(id_marker), "</UploadIdMarker><NextKeyMarker>",
      encode(next_key), "</NextKeyMarker><Prefix>", encode(prefix), "</Prefix>");
  if (!delimiter.empty()) absl::StrAppend(&body, "<Delimiter>", encode(delimiter), "</Delimiter>");
  absl::StrAppend(&body, "<NextUploadIdMarker>", XmlEscape(next_id),
                  "</NextUploadIdMarker><MaxUploads>", max_uploads, "</MaxUploads><IsTruncated>",
                  truncated ? "true" : "false", "</IsTruncated>", entries, prefixes);
  if (*url_encoded) absl::StrAppend(&body, "<EncodingType>url</EncodingType>");
  absl::StrAppend(&body, "</ListMultipartUploadsResult>");
  S3Response response;
  response.body = std::move(body);
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

}  // namespace cairn::frontend

#include "frontend/s3_handler.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "frontend/s3_error.h"
#include "frontend/s3_key_walk.h"
#include "frontend/s3_names.h"
#include "frontend/s3_util.h"

namespace cairn::frontend {
S3Handler::S3Handler(FileSystem& fs, Options options) : fs_(fs), options_(std::move(options)) {
  {
    absl::MutexLock lock(&uploads_mu_);
    // A failure is logged and met again by the first multipart request.
    if (absl::Status s = LoadUploads(); !s.ok()) {
      LogError("S3: could not load the multipart uploads under way: %s", s.ToString());
      return;
    }
  }
  AbortExpiredUploads();
}

absl::StatusOr<S3Response> S3Handler::Handle(const S3Request& request) {
  absl::StatusOr<S3Response> response;
  if (request.bucket.empty()) {
    if (request.method != "GET") {
      return S3Error(S3ErrorCode::kMethodNotAllowed, "only GET (ListBuckets) is served at /");
    }
    response = ListBuckets(request);
  } else if (request.key.empty()) {
    response = BucketOperation(request);
  } else {
    response = ObjectOperation(request);
  }
  if (!response.ok()) return AsS3(response.status());
  return response;
}

absl::StatusOr<S3Response> S3Handler::ListBuckets(const S3Request& request) {
  // Paging as the 2024 API has it: max-buckets, continuation-token (the
  // last name of the previous page), prefix, bucket-region.
  auto query = [&](const char* name) {
    auto it = request.query.find(name);
    return it == request.query.end() ? std::optional<std::string>() : it->second;
  };
  size_t max_buckets = 10000;
  if (std::optional<std::string> text = query("max-buckets")) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value < 1 || value > 10000) {
      return S3Error(S3ErrorCode::kInvalidArgument,
                     "max-buckets must be a whole number from 1 to 10000");
    }
    max_buckets = static_cast<size_t>(value);
  }
  const std::optional<std::string> token = query("continuation-token");
  const std::optional<std::string> prefix = query("prefix");
  const std::optional<std::string> region = query("bucket-region");
  absl::StatusOr<InodeAttr> root = fs_.GetAttr(kRootInode);
  if (!root.ok()) return root.status();
  if (!MayAccess(*root, request.key_owner, kMayRead | kMaySearch)) {
    return Denied("the volume's top directory is not readable for this key's uid");
  }
  const S3Key& who = request.key_owner;
  std::vector<std::pair<std::string, InodeId>> buckets;
  absl::Status listed = fs_.ReadDir(kRootInode, 0, false, [&](const DirEntry& e, const InodeAttr&) {
    if (!S_ISDIR(e.mode) || !IsValidBucketName(e.name)) return true;
    if (prefix && !absl::StartsWith(e.name, *prefix)) return true;
    if (token && e.name <= *token) return true;
    if (!who.buckets.empty() &&
        std::find(who.buckets.begin(), who.buckets.end(), e.name) == who.buckets.end()) {
      return true;
    }
    buckets.emplace_back(e.name, e.ino);
    return true;
  });
  if (!listed.ok()) return listed;
  // Every bucket is in the one region the frontend serves.
  if (region && *region != options_.region) buckets.clear();
  std::sort(buckets.begin(), buckets.end());
  std::string body = absl::StrCat(kXmlHeader, "<ListAllMyBucketsResult xmlns=\"", kXmlns,
                                  "\"><Owner><ID>", who.uid, "</ID><DisplayName>", who.uid,
                                  "</DisplayName></Owner><Buckets>");
  size_t listed_count = 0;
  std::string last;
  bool truncated = false;
  for (const auto& [name, ino] : buckets) {
    absl::StatusOr<InodeAttr> attr = fs_.GetAttr(ino);
    if (!attr.ok()) continue;  // removed while listed
    if (listed_count == max_buckets) {
      truncated = true;
      break;
    }
    absl::StrAppend(&body, "<Bucket><Name>", XmlEscape(name), "</Name><CreationDate>",
                    IsoDate(attr->btime), "</CreationDate><BucketRegion>",
                    XmlEscape(options_.region), "</BucketRegion></Bucket>");
    ++listed_count;
    last = name;
  }
  absl::StrAppend(&body, "</Buckets>");
  // A token only when more buckets follow, as AWS answers.
  if (truncated) {
    absl::StrAppend(&body, "<ContinuationToken>", XmlEscape(last), "</ContinuationToken>");
  }
  if (prefix) absl::StrAppend(&body, "<Prefix>", XmlEscape(*prefix), "</Prefix>");
  absl::StrAppend(&body, "</ListAllMyBucketsResult>");
  S3Response response;
  response.body = std::move(body);
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<InodeAttr> S3Handler::OpenBucket(const S3Request& request) {
  const S3Key& who = request.key_owner;
  if (!who.buckets.empty() &&
      std::find(who.buckets.begin(), who.buckets.end(), request.bucket) == who.buckets.end()) {
    return Denied(absl::StrCat("this key may not use bucket ", request.bucket));
  }
  if (!IsValidBucketName(request.bucket)) {
    return S3Error(S3ErrorCode::kNoSuchBucket,
                   absl::StrCat("no bucket ", request.bucket,
                                " (a top-level directory is a bucket only with a valid bucket "
                                "name)"));
  }
  absl::StatusOr<InodeAttr> root = fs_.GetAttr(kRootInode);
  if (!root.ok()) return root.status();
  if (!MayAccess(*root, who, kMaySearch)) return Denied("the volume's top directory");
  absl::StatusOr<InodeAttr> bucket = fs_.Find(kRootInode, request.bucket);
  if (!bucket.ok() || !S_ISDIR(bucket->mode)) {
    if (!bucket.ok() && !IsNotFound(bucket.status())) return bucket.status();
    return S3Error(S3ErrorCode::kNoSuchBucket, absl::StrCat("no bucket ", request.bucket));
  }
  if (!MayAccess(*bucket, who, kMaySearch)) {
    return Denied(absl::StrCat("bucket ", request.bucket, " is not searchable for this key"));
  }
  return bucket;
}

absl::StatusOr<S3Response> S3Handler::BucketOperation(const S3Request& request) {
  const S3Key& who = request.key_owner;
  if (request.method == "PUT" && request.query.empty()) {
    if (who.read_only) return Denied("the key is read-only");
    if (!IsValidBucketName(request.bucket)) {
      return S3Error(S3ErrorCode::kInvalidBucketName,
                     "a bucket name is 3-63 characters of a-z, 0-9, '.' and '-', starting and "
                     "ending with a letter or digit");
    }
    if (!who.buckets.empty() &&
        std::find(who.buckets.begin(), who.buckets.end(), request.bucket) == who.buckets.end()) {
      return Denied(absl::StrCat("this key may not use bucket ", request.bucket));
    }
    // A configuration body (the location constraint) is read and ignored.
    char drain[4096];
    for (;;) {
      absl::StatusOr<size_t> n = request.body->Read(drain, sizeof drain);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
    }
    absl::StatusOr<InodeAttr> existing = fs_.Find(kRootInode, request.bucket);
    if (existing.ok()) {
      if (existing->uid == who.uid && S_ISDIR(existing->mode)) {
        // us-east-1 answers its owner's second CreateBucket with success
        // (and changes nothing); other regions with an error.
        if (options_.region == "us-east-1") {
          S3Response response;
          response.headers.emplace_back("Location", absl::StrCat("/", request.bucket));
          return response;
        }
        return S3Error(S3ErrorCode::kBucketAlreadyOwnedByYou,
                       absl::StrCat("you own bucket ", request.bucket, " already"));
      }
      return S3Error(S3ErrorCode::kBucketAlreadyExists,
                     absl::StrCat("the name ", request.bucket,
                                  " is taken on this volume; choose another"));
    }
    absl::StatusOr<InodeAttr> root = fs_.GetAttr(kRootInode);
    if (!root.ok()) return root.status();
    if (!MayAccess(*root, who, kMayWrite | kMaySearch)) {
      return Denied("making a bucket needs write access to the volume's top directory");
    }
    NewNode node;
    node.mode = S_IFDIR | 0755;
    absl::StatusOr<InodeAttr> made =
        fs_.MakeNode(kRootInode, request.bucket, node, Caller{who.uid, who.gid});
    if (!made.ok()) return made.status();
    // MakeNode counts a lookup for the kernel; the kernel never got one.
    fs_.Forget(made->ino, 1);
    if (absl::Status s = fs_.FsyncDir(kRootInode); !s.ok()) return s;
    if (options_.forget_name) options_.forget_name(kRootInode, request.bucket);
    S3Response response;
    response.headers.emplace_back("Location", absl::StrCat("/", request.bucket));
    return response;
  }
  absl::StatusOr<InodeAttr> bucket = OpenBucket(request);
  if (!bucket.ok()) return bucket.status();
  if (request.method == "HEAD") {
    S3Response response;
    response.headers.emplace_back("x-amz-bucket-region", options_.region);
    return response;
  }
  if (request.method == "DELETE" && request.query.empty()) {
    if (who.read_only) return Denied("the key is read-only");
    absl::StatusOr<InodeAttr> root = fs_.GetAttr(kRootInode);
    if (!root.ok()) return root.status();
    if (!MayAccess(*root, who, kMayWrite | kMaySearch)) {
      return Denied("removing a bucket needs write access to the volume's top directory");
    }
    absl::Status removed = fs_.Rmdir(kRootInode, request.bucket);
    // Directories that hold no object are no keys: a bucket of them is
    // empty to S3, and they go with it.
    if (IsKind(removed, FsErrorKind::kNotEmpty) && !HasObjectBelow(fs_, *bucket, who) &&
        RemoveEmptyTree(fs_, *bucket, who, options_.forget_name)) {
      removed = fs_.Rmdir(kRootInode, request.bucket);
    }
    if (IsKind(removed, FsErrorKind::kNotEmpty)) {
      return S3Error(S3ErrorCode::kBucketNotEmpty,
                     absl::StrCat("bucket ", request.bucket, " is not empty"));
    }
    if (!removed.ok()) return removed;
    if (absl::Status s = fs_.FsyncDir(kRootInode); !s.ok()) return s;
    if (options_.forget_name) options_.forget_name(kRootInode, request.bucket);
    S3Response response;
    response.status = 204;
    return response;
  }
  if (request.method == "GET" && request.query.count("location")) {
    S3Response response;
    // us-east-1 answers an empty constraint, as AWS does.
    std::string region = options_.region == "us-east-1" ? "" : XmlEscape(options_.region);
    response.body = absl::StrCat(kXmlHeader, "<LocationConstraint xmlns=\"", kXmlns, "\">",
                                 region, "</LocationConstraint>");
    response.headers.emplace_back("Content-Type", "application/xml");
    return response;
  }
  if (request.method == "GET" && request.query.count("versioning")) {
    S3Response response;
    response.body = absl::StrCat(kXmlHeader, "<VersioningConfiguration xmlns=\"", kXmlns,
                                 "\"/>");
    response.headers.emplace_back("Content-Type", "application/xml");
    return response;
  }
  // Before ListObjects: ?uploads takes the same prefix, delimiter and
  // encoding-type.
  if (request.method == "GET" && request.query.count("uploads")) {
    return ListMultipartUploads(request);
  }
  if (request.method == "GET" &&
      (request.query.empty() || request.query.count("list-type") ||
       request.query.count("versions") || request.query.count("prefix") ||
       request.query.count("delimiter") || request.query.count("marker") ||
       request.query.count("max-keys") || request.query.count("encoding-type"))) {
    return ListObjects(request, *bucket);
  }
  if (request.method == "POST" && request.query.count("delete")) {
    return DeleteObjects(request, *bucket);
  }
  return S3Error(S3ErrorCode::kNotImplemented,
                 absl::StrCat("this bucket operation is not served: ", request.method));
}

absl::StatusOr<S3Response> S3Handler::ObjectOperation(const S3Request& request) {
  absl::StatusOr<InodeAttr> bucket = OpenBucket(request);
  if (!bucket.ok()) return bucket.status();
  const bool has_upload = request.query.count("uploadId") > 0;
  if (request.method == "POST" && request.query.count("uploads")) {
    return CreateMultipartUpload(request, *bucket);
  }
  if (request.method == "PUT" && has_upload) return UploadPart(request, *bucket);
  if (request.method == "POST" && has_upload) return CompleteMultipartUpload(request, *bucket);
  if (request.method == "DELETE" && has_upload) return AbortMultipartUpload(request);
  if (request.method == "GET" && has_upload) return ListParts(request);
  if (request.query.count("tagging") || request.query.count("acl") ||
      request.query.count("retention") || request.query.count("legal-hold") ||
      request.query.count("attributes")) {
    return S3Error(S3ErrorCode::kNotImplemented, "this object sub-resource is not served");
  }
  if (request.method == "PUT") {
    if (request.headers.count("x-amz-copy-source")) return CopyObject(request, *bucket);
    return PutObject(request, *bucket);
  }
  if (request.method == "GET") return GetObject(request, *bucket, /*head=*/false);
  if (request.method == "HEAD") return GetObject(request, *bucket, /*head=*/true);
  if (request.method == "DELETE") return DeleteObject(request, *bucket);
  return S3Error(S3ErrorCode::kMethodNotAllowed,
                 absl::StrCat(request.method, " is not served on an object"));
}


absl::StatusOr<std::string> S3Handler::StreamBody(InodeId ino, const S3Request& request,
                                                  BodyReader& body, uint64_t expected_length) {
  // Straight into blobs as the body comes (not through the write cache
  // and its journal): each byte is written to disk once. Whatever fails
  // below drops the writer unfinished, and the nameless file's release
  // frees what it stored.
  absl::StatusOr<std::unique_ptr<BlobStreamWriter>> writer = fs_.StreamInto(ino);
  if (!writer.ok()) return writer.status();
  Md5 md5;
  std::string buffer(kIoBytes, '\0');
  uint64_t written = 0;
  for (;;) {
    absl::StatusOr<size_t> n = body.Read(buffer.data(), buffer.size());
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (written + *n > options_.max_object_bytes) {
      return S3Error(S3ErrorCode::kEntityTooLarge,
                     absl::StrCat("an object or part may hold at most ",
                                  options_.max_object_bytes, " bytes in one PUT"));
    }
    std::string_view data(buffer.data(), *n);
    md5.Update(data);
    if (absl::Status s = (*writer)->Append(data); !s.ok()) return s;
    written += *n;
  }
  if (expected_length != UINT64_MAX && written != expected_length) {
    return S3Error(S3ErrorCode::kIncompleteBody,
                   absl::StrCat("the body held ", written, " bytes, not the ", expected_length,
                                " announced"));
  }
  const std::string digest = md5.Finish();
  if (auto it = request.headers.find("content-md5"); it != request.headers.end()) {
    std::string sent;
    if (!absl::Base64Unescape(it->second, &sent) || sent.size() != 16) {
      return S3Error(S3ErrorCode::kInvalidDigest, "Content-MD5 is not a base64 MD5");
    }
    if (sent != digest) {
      return S3Error(S3ErrorCode::kBadDigest, "the body's MD5 differs from Content-MD5");
    }
  }
  if (absl::Status s = (*writer)->Finish(); !s.ok()) return s;
  return absl::BytesToHexString(digest);
}

absl::StatusOr<S3Handler::Written> S3Handler::WriteObject(const S3Request& request,
                                                          const InodeAttr& bucket,
                                                          const std::string& key,
                                                          BodyReader* body, const Fill& fill,
                                                          const std::string& upload_id) {
  const S3Key& who = request.key_owner;
  if (who.read_only) return Denied("the key is read-only");
  absl::StatusOr<KeyPath> path = ParseKey(key);
  if (!path.ok()) return path.status();
  const Caller caller{who.uid, who.gid};

  // The directories on the way, made as mkdir -p would.
  InodeAttr dir = bucket;
  const size_t dirs = path->dir_key ? path->components.size() : path->components.size() - 1;
  for (size_t i = 0; i < dirs; ++i) {
    const std::string& name = path->components[i];
    absl::StatusOr<InodeAttr> next = fs_.Find(dir.ino, name);
    if (!next.ok() && IsNotFound(next.status())) {
      if (!MayAccess(dir, who, kMayWrite | kMaySearch)) {
        return Denied("making a directory on the key's path");
      }
      NewNode node;
      node.mode = S_IFDIR | 0755;
      next = fs_.MakeNode(dir.ino, name, node, caller);
      if (next.ok()) {
        fs_.Forget(next->ino, 1);  // MakeNode counted a lookup the kernel never got
        if (options_.forget_name) options_.forget_name(dir.ino, name);
      } else if (IsKind(next.status(), FsErrorKind::kExists)) {
        next = fs_.Find(dir.ino, name);  // made meanwhile
      }
    }
    if (!next.ok()) return next.status();
    if (!S_ISDIR(next->mode)) {
      return S3Error(S3ErrorCode::kObjectParentIsFile,
                     absl::StrCat("'", name, "' on the key's path is a file, not a directory; "
                                  "an object cannot be stored below it"));
    }
    if (!MayAccess(*next, who, kMaySearch)) return Denied("a directory on the key's path");
    dir = *next;
  }

  if (path->dir_key) {
    // "dir/": a directory object. It holds no bytes.
    char probe[1];
    absl::StatusOr<size_t> n = body != nullptr ? body->Read(probe, sizeof probe) : 0;
    if (!n.ok()) return n.status();
    if (*n != 0) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     "a key ending in '/' names a directory, which holds no data");
    }
    absl::Status marked = fs_.SetXattr(dir.ino, kDirObjectXattr, "", XattrMode::kCreateOrReplace);
    if (!marked.ok()) return marked;
    // Its x-amz-meta-* too (s3fs keeps a directory's mode and owner there).
    if (MayAccess(dir, who, kMayWrite)) {
      if (absl::Status s = ReplaceStoredHeaders(dir.ino, request); !s.ok()) return s;
    }
    if (absl::Status s = fs_.FsyncDir(dir.ino); !s.ok()) return s;
    return Written{dir, kEmptyMd5};
  }

  const std::string& name = path->components.back();
  if (!MayAccess(dir, who, kMayWrite | kMaySearch)) {
    return Denied("writing an object needs write access to its directory");
  }
  // Conditional write: checked here for the answer, and again in the
  // commit (Publish) so that a race cannot slip past.
  PublishCondition condition;
  Condition wanted = ConditionOf(request.headers);
  if (wanted.if_none_match && Unquoted(*wanted.if_none_match) == "*") {
    condition.kind = PublishCondition::Kind::kMustBeAbsent;
  }
  absl::StatusOr<InodeAttr> existing = fs_.Find(dir.ino, name);
  if (existing.ok() && S_ISDIR(existing->mode)) {
    return S3Error(S3ErrorCode::kExistingObjectIsDirectory,
                   absl::StrCat("the key names a directory; delete what is below it first, or "
                                "use a key ending in '/'"));
  }
  if (!existing.ok() && !IsNotFound(existing.status())) return existing.status();
  if (wanted.if_match || (wanted.if_none_match && condition.kind != PublishCondition::Kind::kMustBeAbsent)) {
    if (!existing.ok()) {
      if (wanted.if_match) return S3Error(S3ErrorCode::kNoSuchKey, "If-Match: no such object");
    } else {
      if (absl::Status s = CheckCondition(wanted, EtagOf(fs_, *existing), existing->mtime, false);
          !s.ok()) {
        return s;
      }
      if (wanted.if_match) {
        condition.kind = PublishCondition::Kind::kMustBe;
        condition.ino = existing->ino;
        condition.ctime = existing->ctime;
      }
    }
  }
  if (condition.kind == PublishCondition::Kind::kMustBeAbsent && existing.ok()) {
    return S3Error(S3ErrorCode::kPreconditionFailed, "If-None-Match: the object exists");
  }

  absl::StatusOr<InodeAttr> file = fs_.CreateUnnamed(dir.ino, 0644, caller);
  if (!file.ok()) return file.status();
  // Frees the file unless it got its name.
  struct Unnamed {
    FileSystem& fs;
    InodeId ino;
    ~Unnamed() { fs.Release(ino, O_WRONLY); }
  } unnamed{fs_, file->ino};

  absl::StatusOr<std::string> etag = fill(file->ino);
  if (!etag.ok()) return etag.status();

  // The object's S3 facts, set while it has no name: a reader never sees
  // the object without them.
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(file->ino);
  if (!attr.ok()) return attr.status();
  auto set = [&](const std::string& xattr, const std::string& value) {
    return fs_.SetXattr(file->ino, xattr, value, XattrMode::kCreateOrReplace);
  };
  if (absl::Status s = set(kEtagXattr, EtagStamp(*etag, *attr)); !s.ok()) return s;
  for (const auto& [header, value] : request.headers) {
    if (!IsStoredHeader(header)) continue;
    if (absl::Status s = set(XattrOfHeader(header), value); !s.ok()) return s;
  }

  absl::Status published = upload_id.empty()
                               ? fs_.Publish(file->ino, dir.ino, name, condition)
                               : fs_.PublishUpload(upload_id, file->ino, dir.ino, name, condition);
  if (IsKind(published, FsErrorKind::kExists) || IsKind(published, FsErrorKind::kStale)) {
    return S3Error(S3ErrorCode::kPreconditionFailed,
                   "the object changed while this conditional write ran");
  }
  if (IsKind(published, FsErrorKind::kNotFound) && wanted.if_match) {
    return S3Error(S3ErrorCode::kNoSuchKey, "If-Match: the object went while written");
  }
  if (IsKind(published, FsErrorKind::kIsDirectory)) {
    return S3Error(S3ErrorCode::kExistingObjectIsDirectory, "the key names a directory");
  }
  if (IsNotFound(published)) {
    // The key's directory (or the bucket) was removed during the upload.
    return S3Error(S3ErrorCode::kNoSuchBucket,
                   "the bucket, or a directory of the key, was removed during the upload");
  }
  if (!published.ok()) return published;
  if (options_.forget_name) options_.forget_name(dir.ino, name);
  absl::StatusOr<InodeAttr> final_attr = fs_.GetAttr(file->ino);
  if (!final_attr.ok()) return final_attr.status();
  return Written{*final_attr, *etag};
}

absl::StatusOr<S3Response> S3Handler::PutObject(const S3Request& request, InodeAttr bucket) {
  uint64_t expected = UINT64_MAX;
  std::string length = HeaderOr(request, "x-amz-decoded-content-length",
                                HeaderOr(request, "content-length"));
  if (!length.empty() && !absl::SimpleAtoi(length, &expected)) {
    return S3Error(S3ErrorCode::kInvalidArgument, "Content-Length is not a number");
  }
  if (expected != UINT64_MAX && expected > options_.max_object_bytes) {
    return S3Error(S3ErrorCode::kEntityTooLarge,
                   absl::StrCat("an object may hold at most ", options_.max_object_bytes,
                                " bytes in one PUT"));
  }
  std::optional<std::pair<std::string, std::string>> checksum;
  // As AWS does since 2025, an object uploaded without a checksum gets a
  // CRC64NVME of its bytes, computed as they stream (at memory speed,
  // beside the MD5 the ETag needs), so that clients can check what they
  // download.
  std::optional<ChecksummingBody> with_default;
  if (!SendsChecksum(request)) with_default.emplace(*request.body, kDefaultChecksumHeader);
  BodyReader& body = with_default ? *with_default : *request.body;
  absl::StatusOr<Written> written = WriteObject(
      request, bucket, request.key, request.body,
      [&](InodeId ino) -> absl::StatusOr<std::string> {
        absl::StatusOr<std::string> md5_hex = StreamBody(ino, request, body, expected);
        if (!md5_hex.ok()) return md5_hex;
        // The checksum the client sent (and the body matched) is kept, to
        // be returned on reads that ask for it.
        checksum = body.Checksum();
        if (!checksum && with_default) checksum = with_default->Computed();
        if (checksum) {
          absl::StatusOr<InodeAttr> attr = fs_.GetAttr(ino);
          if (!attr.ok()) return attr.status();
          absl::Status kept = fs_.SetXattr(ino, kChecksumXattr, ChecksumStamp(*checksum, *attr),
                                           XattrMode::kCreateOrReplace);
          if (!kept.ok()) return kept;
        }
        return md5_hex;
      });
  if (!written.ok()) return written.status();
  S3Response response;
  response.headers.emplace_back("ETag", Quoted(written->etag));
  if (checksum) {
    response.headers.emplace_back(checksum->first, checksum->second);
    response.headers.emplace_back("x-amz-checksum-type", "FULL_OBJECT");
  }
  return response;
}

absl::StatusOr<InodeAttr> S3Handler::CopySource(const S3Request& request,
                                                bool allow_directory) {
  std::string source = HeaderOr(request, "x-amz-copy-source");
  if (size_t q = source.find('?'); q != std::string::npos) {
    if (source.substr(q + 1).rfind("versionId=", 0) == 0 &&
        source.substr(q + 1) != "versionId=null") {
      return S3Error(S3ErrorCode::kInvalidArgument, "only the null version can be copied");
    }
    source.resize(q);
  }
  std::string decoded = PercentDecode(source);
  if (!decoded.empty() && decoded.front() == '/') decoded.erase(0, 1);
  size_t slash = decoded.find('/');
  if (slash == std::string::npos || slash + 1 == decoded.size()) {
    return S3Error(S3ErrorCode::kInvalidArgument,
                   "x-amz-copy-source must be BUCKET/KEY (URL-encoded)");
  }
  S3Request from = request;
  from.bucket = decoded.substr(0, slash);
  from.key = decoded.substr(slash + 1);
  absl::StatusOr<InodeAttr> from_bucket = OpenBucket(from);
  if (!from_bucket.ok()) return from_bucket.status();
  absl::StatusOr<KeyPath> from_path = ParseKey(from.key);
  if (!from_path.ok()) return from_path.status();
  absl::StatusOr<Resolved> found =
      Resolve(fs_, *from_bucket, *from_path, request.key_owner);
  if (!found.ok()) return found.status();
  const bool is_object = found->target && (from_path->dir_key
                                                ? allow_directory && S_ISDIR(found->target->mode)
                                                : S_ISREG(found->target->mode));
  if (!is_object) {
    return S3Error(S3ErrorCode::kNoSuchKey, absl::StrCat("no object ", from.key, " to copy"));
  }
  absl::StatusOr<InodeAttr> current = fs_.GetAttr(found->target->ino);
  if (!current.ok()) return current.status();
  if (!MayAccess(*current, request.key_owner, S_ISDIR(current->mode) ? kMaySearch : kMayRead)) {
    return Denied("the copy's source");
  }
  if (absl::Status s = CheckCondition(ConditionOf(request.headers, "x-amz-copy-source-"),
                                      EtagOf(fs_, *current), current->mtime, false);
      !s.ok()) {
    return s;
  }
  return current;
}

absl::StatusOr<S3Response> S3Handler::CopyObject(const S3Request& request, InodeAttr bucket) {
  absl::StatusOr<InodeAttr> copied = CopySource(request, /*allow_directory=*/true);
  if (!copied.ok()) return copied.status();
  const InodeAttr source_attr = *copied;
  const bool replace_metadata = HeaderOr(request, "x-amz-metadata-directive") == "REPLACE";
  absl::StatusOr<KeyPath> path = ParseKey(request.key);
  if (!path.ok()) return path.status();
  absl::StatusOr<Resolved> target_found = Resolve(fs_, bucket, *path, request.key_owner);
  const bool onto_itself = target_found.ok() && target_found->target &&
                           target_found->target->ino == source_attr.ino &&
                           path->dir_key == S_ISDIR(source_attr.mode);
  if (onto_itself) {
    if (!replace_metadata) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     "copying an object onto itself changes nothing: say "
                     "x-amz-metadata-directive: REPLACE to change its metadata");
    }
    return ReplaceMetadataInPlace(request, source_attr);
  }
  if (S_ISDIR(source_attr.mode)) {
    return S3Error(S3ErrorCode::kInvalidRequest,
                   "a directory object (a key ending in '/') can be copied only onto itself, "
                   "with x-amz-metadata-directive: REPLACE, to change its metadata");
  }
  S3Request target = request;
  if (!replace_metadata) {
    // The source's metadata goes with the bytes.
    for (auto it = target.headers.begin(); it != target.headers.end();) {
      if (IsStoredHeader(it->first)) {
        it = target.headers.erase(it);
      } else {
        ++it;
      }
    }
    absl::StatusOr<std::vector<std::string>> names = fs_.ListXattr(source_attr.ino);
    if (!names.ok()) return names.status();
    for (const std::string& xattr : *names) {
      std::optional<std::string> header = HeaderOfXattr(xattr);
      if (!header) continue;
      absl::StatusOr<std::string> value = fs_.GetXattr(source_attr.ino, xattr);
      if (value.ok()) target.headers[*header] = *value;
    }
  }
  target.headers.erase("content-md5");
  // The copy's checksum: the one the request names, computed over the
  // bytes as they are copied; else the source's, which still holds for
  // them if the source did not change meanwhile; else (the source has
  // none, or changed) a CRC64NVME, as for a PUT without one.
  std::string computed_header = kDefaultChecksumHeader;
  const bool named = request.headers.count("x-amz-checksum-algorithm") > 0;
  if (named) {
    std::optional<std::string> header =
        ChecksumHeaderOfAlgorithm(HeaderOr(request, "x-amz-checksum-algorithm"));
    if (!header) {
      return S3Error(S3ErrorCode::kInvalidRequest,
                     "x-amz-checksum-algorithm must be CRC32, CRC32C, CRC64NVME, SHA1 or SHA256");
    }
    computed_header = *header;
  }
  // A multipart object's composite checksum covers its parts, which the
  // copy (one part) does not have: the copy gets a full-object one.
  std::optional<std::pair<std::string, std::string>> source_checksum =
      named ? std::nullopt : ChecksumOf(fs_, source_attr);
  if (source_checksum && IsCompositeChecksum(source_checksum->second)) source_checksum.reset();
  if (absl::Status s = fs_.Open(source_attr.ino, O_RDONLY); !s.ok()) return s;
  OpenFile open(fs_, source_attr.ino);
  FileBodyReader source_body(fs_, source_attr.ino, 0, source_attr.size);
  ChecksummingBody body(source_body, computed_header);
  std::optional<std::pair<std::string, std::string>> checksum;
  absl::StatusOr<Written> written =
      WriteObject(target, bucket, request.key, nullptr,
                  [&](InodeId ino) -> absl::StatusOr<std::string> {
                    absl::StatusOr<std::string> md5_hex =
                        StreamBody(ino, target, body, source_attr.size);
                    if (!md5_hex.ok()) return md5_hex;
                    checksum = body.Computed();
                    if (source_checksum) {
                      absl::StatusOr<InodeAttr> now = fs_.GetAttr(source_attr.ino);
                      if (now.ok() && ChecksumOf(fs_, *now) == source_checksum) {
                        checksum = source_checksum;
                      }
                    }
                    // Stamped with the copy's own size and mtime.
                    absl::StatusOr<InodeAttr> attr = fs_.GetAttr(ino);
                    if (!attr.ok()) return attr.status();
                    absl::Status kept =
                        fs_.SetXattr(ino, kChecksumXattr, ChecksumStamp(*checksum, *attr),
                                     XattrMode::kCreateOrReplace);
                    if (!kept.ok()) return kept;
                    return md5_hex;
                  });
  if (!written.ok()) return written.status();
  S3Response response;
  response.body = absl::StrCat(kXmlHeader, "<CopyObjectResult xmlns=\"", kXmlns, "\"><ETag>",
                               XmlEscape(Quoted(written->etag)), "</ETag><LastModified>",
                               IsoDate(written->attr.mtime), "</LastModified>");
  if (checksum) {
    const std::string element = ChecksumElement(checksum->first);
    absl::StrAppend(&response.body, "<", element, ">", XmlEscape(checksum->second), "</",
                    element, "><ChecksumType>FULL_OBJECT</ChecksumType>");
  }
  absl::StrAppend(&response.body, "</CopyObjectResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::Status S3Handler::ReplaceStoredHeaders(InodeId ino, const S3Request& request) {
  absl::StatusOr<std::vector<std::string>> names = fs_.ListXattr(ino);
  if (!names.ok()) return names.status();
  for (const std::string& xattr : *names) {
    if (!HeaderOfXattr(xattr)) continue;
    if (request.headers.count(*HeaderOfXattr(xattr))) continue;  // replaced below
    absl::Status removed = fs_.RemoveXattr(ino, xattr);
    if (!removed.ok() && !IsNotFound(removed)) return removed;
  }
  for (const auto& [header, value] : request.headers) {
    if (!IsStoredHeader(header)) continue;
    absl::Status set = fs_.SetXattr(ino, XattrOfHeader(header), value,
                                    XattrMode::kCreateOrReplace);
    if (!set.ok()) return set;
  }
  return absl::OkStatus();
}

absl::StatusOr<S3Response> S3Handler::ReplaceMetadataInPlace(const S3Request& request,
                                                             const InodeAttr& object) {
  const S3Key& who = request.key_owner;
  if (who.read_only) return Denied("the key is read-only");
  // As setxattr(2) on the mount: the object's writers may retag it.
  if (!MayAccess(object, who, kMayWrite)) return Denied("changing the object's metadata");
  if (absl::Status s = ReplaceStoredHeaders(object.ino, request); !s.ok()) return s;
  if (S_ISDIR(object.mode)) {
    absl::Status marked =
        fs_.SetXattr(object.ino, kDirObjectXattr, "", XattrMode::kCreateOrReplace);
    if (!marked.ok()) return marked;
  }
  // The metadata is as durable as a PUT's before the answer.
  absl::Status synced = S_ISDIR(object.mode) ? fs_.FsyncDir(object.ino) : fs_.Fsync(object.ino);
  if (!synced.ok()) return synced;
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(object.ino);
  if (!attr.ok()) return attr.status();
  const std::string etag = S_ISDIR(attr->mode) ? kEmptyMd5 : EtagOf(fs_, *attr);
  S3Response response;
  response.body = absl::StrCat(kXmlHeader, "<CopyObjectResult xmlns=\"", kXmlns, "\"><ETag>",
                               XmlEscape(Quoted(etag)), "</ETag><LastModified>",
                               IsoDate(attr->mtime), "</LastModified></CopyObjectResult>");
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

absl::StatusOr<S3Response> S3Handler::GetObject(const S3Request& request, InodeAttr bucket,
                                                bool head) {
  absl::StatusOr<KeyPath> path = ParseKey(request.key);
  if (!path.ok()) return path.status();
  absl::StatusOr<Resolved> found = Resolve(fs_, bucket, *path, request.key_owner);
  if (!found.ok()) return found.status();
  auto no_such_key = [&] {
    return S3Error(S3ErrorCode::kNoSuchKey, absl::StrCat("no object ", request.key));
  };
  if (!found->target) return no_such_key();
  InodeAttr attr = *found->target;
  if (path->dir_key) {
    if (!S_ISDIR(attr.mode)) return no_such_key();
  } else if (!S_ISREG(attr.mode)) {
    return no_such_key();  // directories, symlinks, devices and fifos are no objects
  }
  if (!MayAccess(attr, request.key_owner, path->dir_key ? kMaySearch : kMayRead)) {
    return Denied(absl::StrCat("object ", request.key));
  }
  if (S_ISREG(attr.mode)) {
    absl::StatusOr<InodeAttr> current = fs_.GetAttr(attr.ino);
    if (!current.ok()) return current.status();
    attr = *current;
  }
  const std::string etag = S_ISDIR(attr.mode) ? kEmptyMd5 : EtagOf(fs_, attr);
  S3Response response;
  response.headers.emplace_back("ETag", Quoted(etag));
  response.headers.emplace_back("Last-Modified", HttpDate(attr.mtime));
  if (absl::Status s = CheckCondition(ConditionOf(request.headers), etag, attr.mtime, true);
      !s.ok()) {
    if (S3ErrorCodeOf(s) == S3ErrorCode::kNotModified) {
      response.status = 304;
      return response;
    }
    return s;
  }
  const uint64_t size = S_ISDIR(attr.mode) ? 0 : attr.size;
  uint64_t first = 0, length = size;
  std::string range = HeaderOr(request, "range");
  if (auto part = request.query.find("partNumber"); part != request.query.end()) {
    // One part of a multipart upload's object; an object of one PUT is
    // its own part 1.
    int number = 0;
    if (!absl::SimpleAtoi(part->second, &number) || number < 1) {
      return S3Error(S3ErrorCode::kInvalidArgument, "partNumber must be a whole number >= 1");
    }
    std::optional<std::vector<uint64_t>> parts = PartSizesOf(fs_, attr);
    const size_t count = parts ? parts->size() : 1;
    if (static_cast<size_t>(number) > count) {
      return S3Error(S3ErrorCode::kInvalidPart,
                     absl::StrCat("the object has ", count, " part", count == 1 ? "" : "s"));
    }
    if (parts) {
      for (int i = 0; i + 1 < number; ++i) first += (*parts)[i];
      length = (*parts)[number - 1];
      response.status = 206;
      response.headers.emplace_back(
          "Content-Range", absl::StrCat("bytes ", first, "-", first + length - 1, "/", size));
      response.headers.emplace_back("x-amz-mp-parts-count", std::to_string(count));
    }
    range.clear();
  }
  if (!range.empty() && absl::StartsWith(range, "bytes=") && range.find(',') == std::string::npos) {
    std::string_view spec = std::string_view(range).substr(6);
    size_t dash = spec.find('-');
    uint64_t a = 0, b = 0;
    bool valid = dash != std::string_view::npos;
    if (valid && dash == 0) {  // the last N bytes
      valid = absl::SimpleAtoi(Absl(spec.substr(1)), &b) && b > 0;
      if (valid) {
        first = size - std::min(b, size);
        length = size - first;
        if (size == 0) valid = false;
      }
    } else if (valid) {
      valid = absl::SimpleAtoi(Absl(spec.substr(0, dash)), &a);
      if (valid && a >= size) {
        return S3Error(S3ErrorCode::kInvalidRange,
                       absl::StrCat("the range starts at or past the object's end (", size,
                                    " bytes)"));
      }
      if (valid && dash + 1 < spec.size()) {
        valid = absl::SimpleAtoi(Absl(spec.substr(dash + 1)), &b) && b >= a;
        b = std::min(b, size - 1);
      } else {
        b = size - 1;
      }
      if (valid) {
        first = a;
        length = b - a + 1;
      }
    }
    if (!valid) {
      if (size == 0) {
        return S3Error(S3ErrorCode::kInvalidRange, "the object is empty: no range fits");
      }
      first = 0;
      length = size;  // an unreadable Range is ignored, as HTTP says
    } else {
      response.status = 206;
      response.headers.emplace_back(
          "Content-Range", absl::StrCat("bytes ", first, "-", first + length - 1, "/", size));
    }
  }
  response.headers.emplace_back("Accept-Ranges", "bytes");
  if (response.status == 200 &&
      absl::AsciiStrToUpper(HeaderOr(request, "x-amz-checksum-mode")) == "ENABLED") {
    if (std::optional<std::pair<std::string, std::string>> checksum = ChecksumOf(fs_, attr)) {
      response.headers.emplace_back(checksum->first, checksum->second);
      response.headers.emplace_back(
          "x-amz-checksum-type",
          IsCompositeChecksum(checksum->second) ? "COMPOSITE" : "FULL_OBJECT");
    }
  }
  absl::StatusOr<std::string> type = fs_.GetXattr(attr.ino, kContentTypeXattr);
  response.headers.emplace_back("Content-Type", type.ok() ? *type : "binary/octet-stream");
  absl::StatusOr<std::vector<std::string>> names = fs_.ListXattr(attr.ino);
  if (names.ok()) {
    for (const std::string& xattr : *names) {
      std::optional<std::string> header = HeaderOfXattr(xattr);
      if (!header || *header == "content-type") continue;
      absl::StatusOr<std::string> value = fs_.GetXattr(attr.ino, xattr);
      if (value.ok()) response.headers.emplace_back(*header, *value);
    }
  }
  response.stream_length = length;
  if (head || length == 0) {
    response.stream = [] { return std::string(); };
    return response;
  }
  // Open for as long as the body streams: a DELETE meanwhile does not free it.
  if (absl::Status s = fs_.Open(attr.ino, O_RDONLY); !s.ok()) return s;
  auto open = std::make_shared<OpenFile>(fs_, attr.ino);
  const InodeId ino = attr.ino;
  uint64_t offset = first;
  const uint64_t end = first + length;
  response.stream = [this, open, ino, offset, end]() mutable -> absl::StatusOr<std::string> {
    if (offset >= end) return std::string();
    absl::StatusOr<std::string> data =
        fs_.Read(ino, offset, std::min<uint64_t>(kIoBytes, end - offset));
    if (!data.ok()) return data.status();
    if (data->empty()) {
      return absl::DataLossError("the object shrank while it was sent");
    }
    offset += data->size();
    return data;
  };
  return response;
}

absl::StatusOr<S3Response> S3Handler::DeleteObject(const S3Request& request, InodeAttr bucket) {
  const S3Key& who = request.key_owner;
  if (who.read_only) return Denied("the key is read-only");
  S3Response response;
  response.status = 204;
  absl::StatusOr<KeyPath> path = ParseKey(request.key);
  if (!path.ok()) return path.status();
  absl::StatusOr<Resolved> found = Resolve(fs_, bucket, *path, who);
  if (!found.ok()) return found.status();
  // Deleting what is not there succeeds, as in S3.
  if (!found->parent || !found->target) return response;
  const InodeAttr& dir = *found->parent;
  const InodeAttr& target = *found->target;
  if (path->dir_key != S_ISDIR(target.mode) || !(S_ISREG(target.mode) || S_ISDIR(target.mode))) {
    return response;
  }
  if (!MayAccess(dir, who, kMayWrite | kMaySearch)) {
    return Denied("deleting an object needs write access to its directory");
  }
  if ((dir.mode & S_ISVTX) && who.uid != 0 && who.uid != dir.uid && who.uid != target.uid) {
    return Denied("the directory is sticky and the object is not this key's uid's");
  }
  if (S_ISREG(target.mode)) {
    if (absl::Status s = CheckDeleteConditions(request, target); !s.ok()) return s;
  }
  const std::string& name = path->components.back();
  absl::Status removed;
  if (S_ISDIR(target.mode)) {
    // A directory object goes with its directory only when nothing is
    // below it; else only its mark goes, as the other keys stay.
    removed = fs_.Rmdir(dir.ino, name);
    if (IsKind(removed, FsErrorKind::kNotEmpty)) {
      removed = fs_.RemoveXattr(target.ino, kDirObjectXattr);
      if (IsKind(removed, FsErrorKind::kNoAttribute)) removed = absl::OkStatus();
    }
  } else {
    removed = fs_.Unlink(dir.ino, name);
  }
  if (!removed.ok() && !IsNotFound(removed)) return removed;
  if (options_.forget_name) options_.forget_name(dir.ino, name);
  PruneEmptyParents(bucket, *path, who);
  if (absl::Status s = fs_.FsyncDir(dir.ino); !s.ok()) return s;
  return response;
}

absl::Status S3Handler::CheckDeleteConditions(const S3Request& request, const InodeAttr& found) {
  // A conditional delete (If-Match, x-amz-if-match-size,
  // x-amz-if-match-last-modified-time) compares what the object is now.
  const bool any = request.headers.count("if-match") ||
                   request.headers.count("x-amz-if-match-size") ||
                   request.headers.count("x-amz-if-match-last-modified-time");
  if (!any) return absl::OkStatus();
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(found.ino);
  if (!attr.ok()) return attr.status();
  Condition condition;
  if (auto it = request.headers.find("if-match"); it != request.headers.end()) {
    condition.if_match = it->second;
  }
  if (absl::Status s = CheckCondition(condition, EtagOf(fs_, *attr), attr->mtime, false);
      !s.ok()) {
    return s;
  }
  if (auto it = request.headers.find("x-amz-if-match-size"); it != request.headers.end()) {
    uint64_t size = 0;
    if (!absl::SimpleAtoi(it->second, &size) || size != attr->size) {
      return S3Error(S3ErrorCode::kPreconditionFailed, "x-amz-if-match-size: the size differs");
    }
  }
  if (auto it = request.headers.find("x-amz-if-match-last-modified-time");
      it != request.headers.end()) {
    std::optional<int64_t> when = ParseHttpDate(it->second);
    if (!when || *when != attr->mtime.sec) {
      return S3Error(S3ErrorCode::kPreconditionFailed,
                     "x-amz-if-match-last-modified-time: modified at another time");
    }
  }
  return absl::OkStatus();
}

void S3Handler::PruneEmptyParents(const InodeAttr& bucket, const KeyPath& path,
                                  const S3Key& who) {
  // The directories on the key's path, from the bucket down.
  std::vector<InodeAttr> dirs{bucket};
  const size_t depth = path.components.size() - 1;
  for (size_t i = 0; i < depth; ++i) {
    absl::StatusOr<InodeAttr> next = fs_.Find(dirs.back().ino, path.components[i]);
    if (!next.ok() || !S_ISDIR(next->mode)) break;
    dirs.push_back(*next);
  }
  // Deepest first; a directory that is an object, or holds anything, stays
  // with everything above it.
  for (size_t i = dirs.size() - 1; i >= 1; --i) {
    const InodeAttr& parent = dirs[i - 1];
    const std::string& name = path.components[i - 1];
    if (fs_.GetXattr(dirs[i].ino, kDirObjectXattr).ok()) return;
    if (!MayAccess(parent, who, kMayWrite | kMaySearch)) return;
    if (!fs_.Rmdir(parent.ino, name).ok()) return;
    if (options_.forget_name) options_.forget_name(parent.ino, name);
  }
}

absl::StatusOr<S3Response> S3Handler::DeleteObjects(const S3Request& request, InodeAttr bucket) {
  constexpr size_t kMaxBody = 2 << 20;
  std::string xml;
  char buffer[16384];
  for (;;) {
    absl::StatusOr<size_t> n = request.body->Read(buffer, sizeof buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    xml.append(buffer, *n);
    if (xml.size() > kMaxBody) {
      return S3Error(S3ErrorCode::kMalformedXML, "the Delete document is over 2 MiB");
    }
  }
  const bool quiet = absl::StrContains(xml, "<Quiet>true</Quiet>");
  // Each <Object>: its <Key>, and the conditions a delete of it may carry.
  struct Doomed {
    std::string key;
    std::map<std::string, std::string> conditions;  // as the headers of DeleteObject
  };
  std::vector<Doomed> doomed;
  for (size_t at = xml.find("<Object>"); at != std::string::npos; at = xml.find("<Object>", at)) {
    size_t end = xml.find("</Object>", at);
    if (end == std::string::npos) {
      return S3Error(S3ErrorCode::kMalformedXML, "an <Object> is not closed");
    }
    const std::string object = xml.substr(at, end - at);
    auto field = [&](const std::string& name) -> std::optional<std::string> {
      size_t open = object.find("<" + name + ">");
      size_t close = object.find("</" + name + ">");
      if (open == std::string::npos || close == std::string::npos || close < open) {
        return std::nullopt;
      }
      open += name.size() + 2;
      return XmlUnescape(object.substr(open, close - open));
    };
    std::optional<std::string> key = field("Key");
    if (!key) return S3Error(S3ErrorCode::kMalformedXML, "an <Object> has no <Key>");
    Doomed one{*key, {}};
    if (auto etag = field("ETag")) one.conditions["if-match"] = *etag;
    if (auto size = field("Size")) one.conditions["x-amz-if-match-size"] = *size;
    if (auto time = field("LastModifiedTime")) {
      one.conditions["x-amz-if-match-last-modified-time"] = *time;
    }
    doomed.push_back(std::move(one));
    at = end;
  }
  if (doomed.empty() || !absl::StrContains(xml, "<Delete")) {
    return S3Error(S3ErrorCode::kMalformedXML, "expected <Delete> with at least one <Object>");
  }
  if (doomed.size() > 1000) {
    return S3Error(S3ErrorCode::kMalformedXML, "at most 1000 keys per DeleteObjects");
  }
  std::string body = absl::StrCat(kXmlHeader, "<DeleteResult xmlns=\"", kXmlns, "\">");
  for (const Doomed& item : doomed) {
    const std::string& key = item.key;
    S3Request one = request;
    one.key = key;
    one.body = nullptr;
    for (const char* name : {"if-match", "x-amz-if-match-size", "x-amz-if-match-last-modified-time"}) {
      one.headers.erase(name);
    }
    for (const auto& [name, value] : item.conditions) one.headers[name] = value;
    absl::StatusOr<S3Response> result = DeleteObject(one, bucket);
    if (result.ok()) {
      if (!quiet) absl::StrAppend(&body, "<Deleted><Key>", XmlEscape(key), "</Key></Deleted>");
    } else {
      absl::Status status = AsS3(result.status());
      absl::StrAppend(&body, "<Error><Key>", XmlEscape(key), "</Key><Code>",
                      Absl(S3ErrorName(S3ErrorCodeOf(status))), "</Code><Message>",
                      XmlEscape(std::string(status.message())), "</Message></Error>");
    }
  }
  absl::StrAppend(&body, "</DeleteResult>");
  S3Response response;
  response.body = std::move(body);
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

namespace {

std::string QueryOr(const S3Request& request, const std::string& name,
                    const std::string& fallback = "") {
  auto it = request.query.find(name);
  return it == request.query.end() ? fallback : it->second;
}

}  // namespace

absl::StatusOr<S3Response> S3Handler::ListObjects(const S3Request& request, InodeAttr bucket) {
  const bool v2 = QueryOr(request, "list-type") == "2";
  const bool versions = request.query.count("versions") > 0;
  const std::string prefix = QueryOr(request, "prefix");
  const std::string delimiter = QueryOr(request, "delimiter");
  absl::StatusOr<bool> url_encoded = ListingUrlEncoded(request);
  if (!url_encoded.ok()) return url_encoded.status();
  auto encode = [&](const std::string& text) { return ListingText(text, *url_encoded); };
  absl::StatusOr<size_t> limit = ListingLimit(request, "max-keys");
  if (!limit.ok()) return limit.status();
  const size_t max_keys = *limit;
  std::string after;
  std::string token = QueryOr(request, "continuation-token");
  if (v2) {
    if (request.query.count("continuation-token")) {
      if (!absl::WebSafeBase64Unescape(token, &after)) {
        return S3Error(S3ErrorCode::kInvalidArgument, "the continuation token is not ours");
      }
    } else {
      after = QueryOr(request, "start-after");
    }
  } else {
    after = QueryOr(request, versions ? "key-marker" : "marker");
  }
  KeyWalk walk(fs_, request.key_owner, prefix, delimiter, after, max_keys);
  if (absl::Status s = walk.Run(bucket); !s.ok()) return s;

  const S3Key& who = request.key_owner;
  const std::string owner = absl::StrCat("<Owner><ID>", who.uid, "</ID><DisplayName>", who.uid,
                                         "</DisplayName></Owner>");
  std::string entries, prefixes;
  for (const KeyWalk::Item& item : walk.items()) {
    if (item.common_prefix) {
      absl::StrAppend(&prefixes, "<CommonPrefixes><Prefix>", encode(item.key),
                      "</Prefix></CommonPrefixes>");
      continue;
    }
    absl::StatusOr<InodeAttr> attr = fs_.GetAttr(item.ino);
    if (!attr.ok()) continue;  // removed while listed
    const std::string etag = item.dir_object ? kEmptyMd5 : EtagOf(fs_, *attr);
    const uint64_t size = item.dir_object ? 0 : attr->size;
    const char* element = versions ? "Version" : "Contents";
    absl::StrAppend(&entries, "<", element, "><Key>", encode(item.key), "</Key>");
    if (versions) absl::StrAppend(&entries, "<VersionId>null</VersionId><IsLatest>true</IsLatest>");
    absl::StrAppend(&entries, "<LastModified>", IsoDate(attr->mtime), "</LastModified><ETag>",
                    XmlEscape(Quoted(etag)), "</ETag><Size>", size,
                    "</Size><StorageClass>STANDARD</StorageClass>");
    if (!v2 || QueryOr(request, "fetch-owner") == "true") absl::StrAppend(&entries, owner);
    absl::StrAppend(&entries, "</", element, ">");
  }
  const std::string last = walk.items().empty() ? "" : walk.items().back().key;
  std::string body = absl::StrCat(
      kXmlHeader, versions ? "<ListVersionsResult" : "<ListBucketResult", " xmlns=\"", kXmlns,
      "\"><Name>", XmlEscape(request.bucket), "</Name><Prefix>", encode(prefix), "</Prefix>");
  if (v2) {
    absl::StrAppend(&body, "<KeyCount>", walk.items().size(), "</KeyCount>");
    if (request.query.count("continuation-token")) {
      absl::StrAppend(&body, "<ContinuationToken>", XmlEscape(token), "</ContinuationToken>");
    }
    if (request.query.count("start-after")) {
      absl::StrAppend(&body, "<StartAfter>", encode(QueryOr(request, "start-after")),
                      "</StartAfter>");
    }
    if (walk.truncated()) {
      absl::StrAppend(&body, "<NextContinuationToken>", absl::WebSafeBase64Escape(last),
                      "</NextContinuationToken>");
    }
  } else if (versions) {
    absl::StrAppend(&body, "<KeyMarker>", encode(after), "</KeyMarker><VersionIdMarker/>");
    if (walk.truncated()) {
      absl::StrAppend(&body, "<NextKeyMarker>", encode(last),
                      "</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>");
    }
  } else {
    absl::StrAppend(&body, "<Marker>", encode(after), "</Marker>");
    if (walk.truncated()) absl::StrAppend(&body, "<NextMarker>", encode(last), "</NextMarker>");
  }
  absl::StrAppend(&body, "<MaxKeys>", max_keys, "</MaxKeys>");
  if (!delimiter.empty()) absl::StrAppend(&body, "<Delimiter>", encode(delimiter), "</Delimiter>");
  if (*url_encoded) absl::StrAppend(&body, "<EncodingType>url</EncodingType>");
  absl::StrAppend(&body, "<IsTruncated>", walk.truncated() ? "true" : "false", "</IsTruncated>",
                  entries, prefixes, versions ? "</ListVersionsResult>" : "</ListBucketResult>");
  S3Response response;
  response.body = std::move(body);
  response.headers.emplace_back("Content-Type", "application/xml");
  return response;
}

}  // namespace cairn::frontend

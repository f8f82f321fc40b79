#include "tests/support/fake_object_store.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

// The smallest key after every key that starts with `common`, a prefix
// ListPrefixes returned: it ends in the delimiter '/', and '0' follows '/'.
std::string AfterAllUnder(std::string common) {
  common.back() = static_cast<char>('/' + 1);
  return common;
}

// The smallest key after `key`: where a listing continues (S3's
// continuation is "after the last key returned").
std::string After(const std::string& key) { return key + '\0'; }

}  // namespace

FakeObjectStore::FakeObjectStore() : FakeObjectStore(Options()) {}

FakeObjectStore::FakeObjectStore(Options options) : options_(std::move(options)) {}

absl::Status FakeObjectStore::Admit(Op op, const std::string& method, const std::string& key) {
  std::optional<Fault> fault;
  absl::Duration latency;
  RequestHook hook;
  {
    absl::MutexLock lock(&mu_);
    stats_.requests++;
    requests_by_op_[op]++;
    if (outage_after_) {
      if (outage_after_->first == 0) {
        outage_ = outage_after_->second;
        outage_after_.reset();
      } else {
        outage_after_->first--;
      }
    }
    if (outage_) {
      fault = outage_;
    } else {
      for (auto it = rules_.begin(); it != rules_.end(); ++it) {
        if (it->only && *it->only != op) continue;
        fault = it->fault;
        if (--it->count <= 0) rules_.erase(it);
        break;
      }
    }
    latency = latency_;
    hook = request_hook_;
  }
  // Outside the lock: a slow request must not hold up the others (nor the
  // test arming the next fault).
  if (latency > absl::ZeroDuration()) options_.clock->SleepFor(latency);
  if (!fault && hook) fault = hook(op, key);
  if (fault) return FaultError(*fault, method, key);
  return absl::OkStatus();
}

absl::Status FakeObjectStore::FaultError(Fault fault, const std::string& method,
                                         const std::string& key) {
  switch (fault) {
    case Fault::kNetworkError:
      return Failed(method, key, 0, "", "Couldn't connect to server");
    case Fault::kSlowDown:
      return Failed(method, key, 503, "SlowDown", "Please reduce your request rate.");
    case Fault::kInternalError:
      return Failed(method, key, 500, "InternalError",
                    "We encountered an internal error. Please try again.");
    case Fault::kAccessDenied:
      return Failed(method, key, 403, "AccessDenied", "Access Denied");
    case Fault::kNoSuchBucket:
      return Failed(method, key, 404, "NoSuchBucket", "The specified bucket does not exist");
  }
  return Failed(method, key, 500, "InternalError", "unknown fault");
}

absl::Status FakeObjectStore::Failed(const std::string& method, const std::string& key,
                                     int http_status, const std::string& code,
                                     const std::string& message) {
  {
    absl::MutexLock lock(&mu_);
    stats_.failures++;
  }
  // Word for word what S3Client says, so tests of messages hold for both.
  const std::string what = absl::StrCat("S3 ", method, " ", options_.endpoint, "/",
                                        options_.bucket, key.empty() ? "" : "/" + key);
  if (http_status == 0) {
    return FsError(FsErrorKind::kIo, absl::StrCat(what, ": cannot reach the server: ", message));
  }
  // A HEAD answer has no body: S3Client sees the status alone.
  const std::string shown_code = method == "HEAD" ? "" : code;
  const std::string detail =
      shown_code.empty() ? absl::StrCat("HTTP ", http_status)
                         : absl::StrCat(shown_code, " (HTTP ", http_status, ")",
                                        message.empty() ? "" : ": " + message);
  if (shown_code == "NoSuchBucket") {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat(what, ": ", detail, "; create the bucket or fix its name"));
  }
  if (http_status == 404) return FsError(FsErrorKind::kNotFound, absl::StrCat(what, ": ", detail));
  if (http_status == 403) {
    return FsError(FsErrorKind::kAccessDenied,
                   absl::StrCat(what, ": ", detail,
                                "; check that these credentials may use this bucket"));
  }
  return FsError(FsErrorKind::kIo, absl::StrCat(what, ": ", detail));
}

absl::Status FakeObjectStore::PutObject(const std::string& key, std::string_view data,
                                        std::optional<uint32_t> crc32c) {
  if (absl::Status s = Admit(Op::kPut, "PUT", key); !s.ok()) return s;
  BodyHook hook;
  {
    absl::MutexLock lock(&mu_);
    hook = body_hook_;
  }
  std::string body(data);
  if (hook) hook(Op::kPut, key, &body);
  const uint32_t actual = Crc32c(body);
  // Not an MD5 as S3's: nothing in cairn reads an ETag but to send it back.
  std::string etag = absl::StrFormat("\"%08x%016x\"", actual, body.size());
  const bool matches = !crc32c || *crc32c == actual;
  {
    absl::MutexLock lock(&mu_);
    stats_.bytes_sent += body.size();
    if (matches) {
      objects_[key] = StoredObject{std::move(body), std::move(etag), options_.clock->NowSeconds()};
    }
  }
  if (!matches) {
    return Failed("PUT", key, 400, "BadDigest",
                  "The CRC32C you specified did not match the calculated checksum.");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeObjectStore::GetObject(
    const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range,
    bool allow_short) {
  // S3Client sends nothing for an empty range.
  if (range && range->second == 0) return std::string();
  if (absl::Status s = Admit(Op::kGet, "GET", key); !s.ok()) return s;
  enum class Outcome { kOk, kMissing, kBadRange, kWrongLength } outcome = Outcome::kOk;
  std::string body;
  std::optional<BodyDamage> damage;
  BodyHook hook;
  {
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) {
      outcome = Outcome::kMissing;
    } else if (range && range->first >= it->second.data.size()) {
      outcome = Outcome::kBadRange;  // S3's 416, even for an empty object
    } else {
      // What S3 sends for a range running past the end: the bytes there are.
      body = range ? it->second.data.substr(range->first, range->second) : it->second.data;
      stats_.bytes_received += body.size();
      if (range && !allow_short && body.size() != range->second) {
        outcome = Outcome::kWrongLength;
      } else {
        if (damaged_gets_ > 0) {
          damaged_gets_--;
          damage = damage_;
        }
        hook = body_hook_;
      }
    }
  }
  switch (outcome) {
    case Outcome::kMissing:
      return Failed("GET", key, 404, "NoSuchKey", "The specified key does not exist.");
    case Outcome::kBadRange:
      return Failed("GET", key, 416, "InvalidRange", "The requested range is not satisfiable");
    case Outcome::kWrongLength:
      // S3Client's own check, not counted as a failed request there either.
      return FsError(FsErrorKind::kIo, absl::StrCat("S3 GET ", key, " returned ", body.size(),
                                                    " bytes for a range of ", range->second));
    case Outcome::kOk:
      break;
  }
  if (damage && !body.empty()) {
    if (*damage == BodyDamage::kFlipByte) {
      body[body.size() / 2] ^= 0x01;
    } else {
      body.resize(body.size() / 2);
    }
  }
  if (hook) hook(Op::kGet, key, &body);
  return body;
}

absl::StatusOr<s3::ObjectInfo> FakeObjectStore::HeadObject(const std::string& key) {
  if (absl::Status s = Admit(Op::kHead, "HEAD", key); !s.ok()) return s;
  std::optional<s3::ObjectInfo> info;
  {
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) info = s3::ObjectInfo{it->second.data.size(), it->second.etag};
  }
  if (!info) return Failed("HEAD", key, 404, "NoSuchKey", "");
  return *info;
}

absl::Status FakeObjectStore::DeleteObject(const std::string& key) {
  // S3 answers 204 for a key that is not there: no error to forgive.
  if (absl::Status s = Admit(Op::kDelete, "DELETE", key); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  objects_.erase(key);
  return absl::OkStatus();
}

absl::Status FakeObjectStore::DeleteObjects(const std::vector<std::string>& keys) {
  const size_t batch = static_cast<size_t>(std::max(1, options_.page_entries));
  for (size_t at = 0; at < keys.size(); at += batch) {
    if (absl::Status s = Admit(Op::kDelete, "POST", ""); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    for (size_t i = at; i < std::min(keys.size(), at + batch); ++i) objects_.erase(keys[i]);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<s3::ObjectEntry>> FakeObjectStore::ListObjects(
    const std::string& prefix) {
  std::vector<s3::ObjectEntry> all;
  std::string from = prefix;
  for (bool more = true; more;) {
    if (absl::Status s = Admit(Op::kList, "GET", ""); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    auto it = objects_.lower_bound(from);
    for (int n = 0; n < options_.page_entries && it != objects_.end() &&
                    absl::StartsWith(it->first, prefix);
         ++n, ++it) {
      all.push_back(s3::ObjectEntry{it->first, it->second.data.size(), it->second.etag,
                                    it->second.last_modified});
      from = After(it->first);
    }
    more = it != objects_.end() && absl::StartsWith(it->first, prefix);
  }
  return all;
}

absl::StatusOr<s3::ObjectPage> FakeObjectStore::ListObjectsPage(const std::string& prefix,
                                                                const std::string& start_after,
                                                                int max_keys) {
  if (absl::Status s = Admit(Op::kList, "GET", ""); !s.ok()) return s;
  s3::ObjectPage page;
  page.server_time = options_.clock->NowSeconds();
  absl::MutexLock lock(&mu_);
  auto it = objects_.lower_bound(std::max(prefix, start_after.empty() ? "" : After(start_after)));
  for (; it != objects_.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (static_cast<int>(page.objects.size()) >= max_keys) {
      page.truncated = true;
      break;
    }
    page.objects.push_back(s3::ObjectEntry{it->first, it->second.data.size(), it->second.etag,
                                           it->second.last_modified});
  }
  return page;
}

absl::StatusOr<std::vector<std::string>> FakeObjectStore::ListPrefixes(const std::string& prefix) {
  std::vector<std::string> all;
  std::string from = prefix;
  for (bool more = true; more;) {
    if (absl::Status s = Admit(Op::kList, "GET", ""); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    auto it = objects_.lower_bound(from);
    // A page holds keys and common prefixes together, as S3's max-keys
    // counts both; the keys themselves are not returned.
    for (int n = 0; n < options_.page_entries && it != objects_.end() &&
                    absl::StartsWith(it->first, prefix);
         ++n) {
      const size_t slash = it->first.find('/', prefix.size());
      if (slash == std::string::npos) {
        from = After(it->first);
      } else {
        all.push_back(it->first.substr(0, slash + 1));
        from = AfterAllUnder(all.back());
      }
      it = objects_.lower_bound(from);
    }
    more = it != objects_.end() && absl::StartsWith(it->first, prefix);
  }
  return all;
}

absl::StatusOr<std::vector<s3::MultipartUpload>> FakeObjectStore::ListMultipartUploads(
    const std::string& prefix) {
  std::vector<s3::MultipartUpload> all;
  std::pair<std::string, std::string> from{prefix, ""};
  for (bool more = true; more;) {
    if (absl::Status s = Admit(Op::kList, "GET", ""); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    auto it = uploads_.lower_bound(from);
    for (int n = 0; n < options_.page_entries && it != uploads_.end() &&
                    absl::StartsWith(it->first, prefix);
         ++n, ++it) {
      all.push_back(s3::MultipartUpload{it->first, it->second});
      from = {it->first, After(it->second)};
    }
    more = it != uploads_.end() && absl::StartsWith(it->first, prefix);
  }
  return all;
}

absl::Status FakeObjectStore::AbortMultipartUpload(const std::string& key,
                                                   const std::string& upload_id) {
  absl::Status s = Admit(Op::kDelete, "DELETE", key);
  if (s.ok()) {
    bool found;
    {
      absl::MutexLock lock(&mu_);
      found = uploads_.erase({key, upload_id}) > 0;
    }
    if (found) return absl::OkStatus();
    s = Failed("DELETE", key, 404, "NoSuchUpload", "The specified upload does not exist.");
  }
  // S3Client takes every kNotFound for "already gone" (even NoSuchBucket).
  if (GetFsErrorKind(s) == FsErrorKind::kNotFound) return absl::OkStatus();
  return s;
}

s3::ObjectStoreStats FakeObjectStore::GetStats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void FakeObjectStore::SetOutage(bool down, Fault fault) {
  absl::MutexLock lock(&mu_);
  outage_after_.reset();
  if (down) {
    outage_ = fault;
  } else {
    outage_.reset();
  }
}

void FakeObjectStore::FailNext(int count, Fault fault, std::optional<Op> only) {
  if (count <= 0) return;
  absl::MutexLock lock(&mu_);
  rules_.push_back(Rule{count, fault, only});
}

void FakeObjectStore::FailAfter(int requests, Fault fault) {
  absl::MutexLock lock(&mu_);
  outage_after_ = std::make_pair(std::max(0, requests), fault);
}

void FakeObjectStore::SetLatency(absl::Duration per_request) {
  absl::MutexLock lock(&mu_);
  latency_ = per_request;
}

void FakeObjectStore::DamageNextGets(int count, BodyDamage damage) {
  absl::MutexLock lock(&mu_);
  damaged_gets_ = std::max(0, count);
  damage_ = damage;
}

void FakeObjectStore::SetRequestHook(RequestHook hook) {
  absl::MutexLock lock(&mu_);
  request_hook_ = std::move(hook);
}

void FakeObjectStore::SetBodyHook(BodyHook hook) {
  absl::MutexLock lock(&mu_);
  body_hook_ = std::move(hook);
}

void FakeObjectStore::ClearFaults() {
  absl::MutexLock lock(&mu_);
  outage_.reset();
  outage_after_.reset();
  rules_.clear();
  latency_ = absl::ZeroDuration();
  damaged_gets_ = 0;
  request_hook_ = nullptr;
  body_hook_ = nullptr;
}

std::vector<std::string> FakeObjectStore::Keys(const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && absl::StartsWith(it->first, prefix); ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

std::optional<std::string> FakeObjectStore::Object(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second.data;
}

void FakeObjectStore::SetObject(const std::string& key, std::string data) {
  std::string etag = absl::StrFormat("\"%08x%016x\"", Crc32c(data), data.size());
  absl::MutexLock lock(&mu_);
  objects_[key] = StoredObject{std::move(data), std::move(etag), options_.clock->NowSeconds()};
}

std::string FakeObjectStore::StartMultipartUpload(const std::string& key) {
  absl::MutexLock lock(&mu_);
  std::string id = absl::StrFormat("fake-upload-%010d", next_upload_++);
  uploads_.insert({key, id});
  return id;
}

std::vector<s3::MultipartUpload> FakeObjectStore::OpenUploads() {
  absl::MutexLock lock(&mu_);
  std::vector<s3::MultipartUpload> open;
  for (const auto& [key, id] : uploads_) open.push_back(s3::MultipartUpload{key, id});
  return open;
}

uint64_t FakeObjectStore::Requests(Op op) {
  absl::MutexLock lock(&mu_);
  auto it = requests_by_op_.find(op);
  return it == requests_by_op_.end() ? 0 : it->second;
}

namespace {

// What a volume holds: a handle that shares the factory's bucket, so the
// bucket outlives a volume that is closed and opened again.
class BucketHandle final : public s3::ObjectStore {
 public:
  explicit BucketHandle(std::shared_ptr<FakeObjectStore> bucket) : bucket_(std::move(bucket)) {}

  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c) override {
    return bucket_->PutObject(key, data, crc32c);
  }
  absl::StatusOr<std::string> GetObject(const std::string& key,
                                        std::optional<std::pair<uint64_t, uint64_t>> range,
                                        bool allow_short) override {
    return bucket_->GetObject(key, range, allow_short);
  }
  absl::StatusOr<s3::ObjectInfo> HeadObject(const std::string& key) override {
    return bucket_->HeadObject(key);
  }
  absl::Status DeleteObject(const std::string& key) override { return bucket_->DeleteObject(key); }
  absl::Status DeleteObjects(const std::vector<std::string>& keys) override {
    return bucket_->DeleteObjects(keys);
  }
  absl::StatusOr<std::vector<s3::ObjectEntry>> ListObjects(const std::string& prefix) override {
    return bucket_->ListObjects(prefix);
  }
  absl::StatusOr<s3::ObjectPage> ListObjectsPage(const std::string& prefix,
                                                 const std::string& start_after,
                                                 int max_keys) override {
    return bucket_->ListObjectsPage(prefix, start_after, max_keys);
  }
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) override {
    return bucket_->ListPrefixes(prefix);
  }
  absl::StatusOr<std::vector<s3::MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) override {
    return bucket_->ListMultipartUploads(prefix);
  }
  absl::Status AbortMultipartUpload(const std::string& key,
                                    const std::string& upload_id) override {
    return bucket_->AbortMultipartUpload(key, upload_id);
  }
  s3::ObjectStoreStats GetStats() override { return bucket_->GetStats(); }

 private:
  const std::shared_ptr<FakeObjectStore> bucket_;
};

std::string WithoutTrailingSlashes(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

}  // namespace

FakeObjectStoreFactory::FakeObjectStoreFactory(Clock* clock) : clock_(clock) {}

absl::StatusOr<std::unique_ptr<s3::ObjectStore>> FakeObjectStoreFactory::Open(
    const s3::S3Options& options) {
  // The refusals of S3Client::Create, so a bad [tier] or [replica] fails
  // the same way with either factory.
  const std::string& url = options.endpoint;
  const size_t sep = url.find("://");
  const std::string scheme =
      sep == std::string::npos ? "" : absl::AsciiStrToLower(url.substr(0, sep));
  const std::string host = sep == std::string::npos ? "" : WithoutTrailingSlashes(url.substr(sep + 3));
  if (sep == std::string::npos) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("S3 endpoint '", url,
                                "' has no scheme; write https://HOST[:PORT] (http:// only "
                                "for a server without TLS)"));
  }
  if (scheme != "http" && scheme != "https") {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("S3 endpoint '", url, "' must start with https:// or http://"));
  }
  if (host.empty() || host.find('/') != std::string::npos) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("S3 endpoint '", url, "' must be scheme://host[:port] only"));
  }
  if (options.bucket.empty()) return FsError(FsErrorKind::kInvalid, "no S3 bucket given");
  if (options.credentials.access_key_id.empty() || options.credentials.secret_access_key.empty()) {
    return FsError(FsErrorKind::kInvalid, "no S3 credentials given (access key id and secret)");
  }
  absl::MutexLock lock(&mu_);
  opened_.push_back(options);
  return std::unique_ptr<s3::ObjectStore>(
      new BucketHandle(BucketLocked(options.endpoint, options.bucket)));
}

FakeObjectStore& FakeObjectStoreFactory::Bucket(const std::string& endpoint,
                                                const std::string& bucket) {
  absl::MutexLock lock(&mu_);
  return *BucketLocked(endpoint, bucket);
}

std::shared_ptr<FakeObjectStore> FakeObjectStoreFactory::BucketLocked(const std::string& endpoint,
                                                                      const std::string& bucket) {
  const std::string base = WithoutTrailingSlashes(endpoint);
  std::shared_ptr<FakeObjectStore>& slot = buckets_[{base, bucket}];
  if (slot == nullptr) {
    FakeObjectStore::Options options;
    options.endpoint = base;
    options.bucket = bucket;
    options.clock = clock_;
    slot = std::make_shared<FakeObjectStore>(std::move(options));
  }
  return slot;
}

std::vector<s3::S3Options> FakeObjectStoreFactory::Opened() {
  absl::MutexLock lock(&mu_);
  return opened_;
}

}  // namespace cairn

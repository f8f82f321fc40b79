// An in-memory bucket behind s3::ObjectStore, so tests of the remote tier
// and the replica need no S3 server: the contract of S3Client
// (object_store.h) with the error kinds and messages S3Client gives, and
// faults a test turns on and off at any time while other threads use the
// bucket.
//
// What a call means here: each call is what S3Client answers once its
// retries are over. A fault fails the call it lands on (a 503 or a refused
// connection is the error the real client returns when its attempts run
// out), so "fail the next 2" fails two calls, not two attempts of one.
// Listings and DeleteObjects are paged as S3 pages them, each page one
// request, so a fault can land between pages; PutObject is one request
// whatever its size (no multipart), and unfinished multipart uploads are
// made by the test (StartMultipartUpload).
//
// Not modelled: retries, signatures, storage classes, consistency delays,
// and a response lost after the bucket applied the request.
//
// Thread safety: every method may be called from any thread at any time.
// Hooks and latency run outside the bucket's lock, on the calling thread,
// so a hook may be called by several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/base/clock.h"
#include "backend/s3/object_store.h"

namespace cairn {

class FakeObjectStore final : public s3::ObjectStore {
 public:
  // The operation of a request, for faults aimed at one kind. DeleteObjects
  // and AbortMultipartUpload are kDelete; ListObjects, ListPrefixes and
  // ListMultipartUploads are kList.
  enum class Op { kGet, kPut, kHead, kDelete, kList };
  // What a failed request looks like to the caller, as S3Client reports it.
  enum class Fault {
    kNetworkError,   // connection refused: kIo, "cannot reach the server"
    kSlowDown,       // 503 SlowDown: kIo
    kInternalError,  // 500 InternalError: kIo
    kAccessDenied,   // 403 AccessDenied: kAccessDenied
    kNoSuchBucket,   // 404 NoSuchBucket: kNotFound
  };
  // How a damaged GET body is wrong; the GET still reports success.
  enum class BodyDamage {
    kFlipByte,   // one bit of the middle byte flipped
    kShortBody,  // the second half cut off
  };

  struct Options {
    // Only for messages, which name them as S3Client does.
    std::string endpoint = "http://fake";
    std::string bucket = "bucket";
    // What latency is waited on: a FakeClock makes it instant.
    Clock* clock = Clock::Default();
    // Entries per page of a listing (S3's max-keys), and keys per
    // DeleteObjects request.
    int page_entries = 1000;
  };

  FakeObjectStore();
  explicit FakeObjectStore(Options options);

  // s3::ObjectStore.
  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c = std::nullopt) override;
  absl::StatusOr<std::string> GetObject(
      const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt,
      bool allow_short = false) override;
  absl::StatusOr<s3::ObjectInfo> HeadObject(const std::string& key) override;
  absl::Status DeleteObject(const std::string& key) override;
  absl::Status DeleteObjects(const std::vector<std::string>& keys) override;
  absl::StatusOr<std::vector<s3::ObjectEntry>> ListObjects(const std::string& prefix) override;
  // One request; its server_time is the clock's.
  absl::StatusOr<s3::ObjectPage> ListObjectsPage(const std::string& prefix,
                                                 const std::string& start_after,
                                                 int max_keys) override;
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) override;
  absl::StatusOr<std::vector<s3::MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) override;
  absl::Status AbortMultipartUpload(const std::string& key, const std::string& upload_id) override;
  // requests: every request, failed ones included; failures: requests that
  // ended in an error (a missing key's 404 too, as S3Client counts them);
  // bytes_sent: PUT bodies the bucket received; bytes_received: GET bodies
  // returned. retries stays 0.
  s3::ObjectStoreStats GetStats() override;

  // Faults. Each takes effect from the next request on.

  // While down, every request fails with `fault` (a refused connection by
  // default). SetOutage(false) also cancels an outage FailAfter arranged.
  void SetOutage(bool down, Fault fault = Fault::kNetworkError);
  // The next `count` requests (of operation `only`, when given) fail with
  // `fault`. Several such rules may be pending; the oldest that matches a
  // request is used.
  void FailNext(int count, Fault fault = Fault::kInternalError,
                std::optional<Op> only = std::nullopt);
  // `requests` more requests go through, then an outage with `fault`
  // begins (as FaultProxy's outage_after): FailAfter(k) for k = 0, 1, ...
  // walks a remote that goes away across every step of a longer job.
  void FailAfter(int requests, Fault fault = Fault::kNetworkError);
  // Every request first waits this long on the clock.
  void SetLatency(absl::Duration per_request);
  // The next `count` GETs that succeed return a damaged body (replacing
  // any damage still pending). These, and
  // the body hook, act after S3Client's own check of a range's length:
  // they model a store that answers wrong and says OK, which callers must
  // catch with their lengths and checksums. An empty body stays empty.
  void DamageNextGets(int count, BodyDamage damage);
  // Called with each request that got past the faults above, before the
  // bucket is touched; a fault it returns fails the request (nothing is
  // stored or deleted). For faults aimed at one key; requests on the
  // bucket (listings, DeleteObjects) come with key "".
  using RequestHook = std::function<std::optional<Fault>(Op op, const std::string& key)>;
  void SetRequestHook(RequestHook hook);
  // Called with each body on the way, which it may change: a PUT's before
  // the bucket checks its CRC32C (so a changed body with a checksum is
  // refused, one without is stored changed), a successful GET's after any
  // damage above.
  using BodyHook = std::function<void(Op op, const std::string& key, std::string* body)>;
  void SetBodyHook(BodyHook hook);
  // No outage, no pending fault or damage, no latency, no hooks.
  void ClearFaults();

  // For the test: the bucket's contents, bypassing faults and counters.

  // Keys under `prefix`, in order.
  std::vector<std::string> Keys(const std::string& prefix = "");
  std::optional<std::string> Object(const std::string& key);
  void SetObject(const std::string& key, std::string data);
  // Registers a multipart upload of `key` that was started and never
  // completed or aborted; returns its upload id. Ids sort in the order the
  // uploads were started, as S3 lists uploads of one key.
  std::string StartMultipartUpload(const std::string& key);
  std::vector<s3::MultipartUpload> OpenUploads();
  // Requests of one operation so far, failed ones included.
  uint64_t Requests(Op op);

 private:
  struct Rule {
    int count;
    Fault fault;
    std::optional<Op> only;
  };

  // One request: counts it, waits the latency, applies the faults and the
  // request hook. OK to go on; else the error S3Client would return for
  // `method` on `key` ("" for the bucket), already counted as a failure.
  absl::Status Admit(Op op, const std::string& method, const std::string& key);
  // The status S3Client makes of an HTTP answer (s3_client.cc ErrorFor):
  // `http_status` 0 is a connection that failed. Counts a failure.
  absl::Status Failed(const std::string& method, const std::string& key, int http_status,
                      const std::string& code, const std::string& message);
  absl::Status FaultError(Fault fault, const std::string& method, const std::string& key);

  const Options options_;
  absl::Mutex mu_;
  struct StoredObject {
    std::string data;
    std::string etag;
    int64_t last_modified = 0;  // the clock's Unix seconds at the PUT
  };
  std::map<std::string, StoredObject> objects_ ABSL_GUARDED_BY(mu_);
  // (key, upload id) of unfinished multipart uploads, in S3's listing order.
  std::set<std::pair<std::string, std::string>> uploads_ ABSL_GUARDED_BY(mu_);
  uint64_t next_upload_ ABSL_GUARDED_BY(mu_) = 1;

  std::optional<Fault> outage_ ABSL_GUARDED_BY(mu_);
  // Requests left before FailAfter's outage begins, and its fault.
  std::optional<std::pair<int, Fault>> outage_after_ ABSL_GUARDED_BY(mu_);
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  int damaged_gets_ ABSL_GUARDED_BY(mu_) = 0;
  BodyDamage damage_ ABSL_GUARDED_BY(mu_) = BodyDamage::kFlipByte;
  RequestHook request_hook_ ABSL_GUARDED_BY(mu_);
  BodyHook body_hook_ ABSL_GUARDED_BY(mu_);

  s3::ObjectStoreStats stats_ ABSL_GUARDED_BY(mu_);
  std::map<Op, uint64_t> requests_by_op_ ABSL_GUARDED_BY(mu_);
};

// Opens in-memory buckets: every Open of the same (endpoint, bucket) gets a
// handle to the same FakeObjectStore, so a volume reopened in a test finds
// its objects, and two volumes may share a bucket. Buckets live as long as
// the factory (or the last handle to them).
class FakeObjectStoreFactory final : public s3::ObjectStoreFactory {
 public:
  // `clock`: what the buckets' latency is waited on.
  explicit FakeObjectStoreFactory(Clock* clock = Clock::Default());

  // Refuses what S3Client::Create refuses (an endpoint without http:// or
  // https://, no bucket, no credentials), with the same kinds.
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> Open(const s3::S3Options& options) override;

  // The bucket behind (endpoint, bucket), made empty if no Open named it
  // yet: for a test to fill, inspect and fail. A trailing '/' of the
  // endpoint does not matter.
  FakeObjectStore& Bucket(const std::string& endpoint, const std::string& bucket);
  // The options of every successful Open, in order.
  std::vector<s3::S3Options> Opened();

 private:
  std::shared_ptr<FakeObjectStore> BucketLocked(const std::string& endpoint,
                                                const std::string& bucket)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<FakeObjectStore>> buckets_
      ABSL_GUARDED_BY(mu_);
  std::vector<s3::S3Options> opened_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn

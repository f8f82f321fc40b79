// A client for S3-compatible object stores (AWS S3, MinIO, Ceph RGW): the
// remote tier's transport. libcurl with a pool of reused connections,
// Signature Version 4 (backend/s3/sigv4.h), retries with exponential
// backoff and jitter on throttling, server errors, dropped connections and
// stalled transfers; other errors are returned at once with the server's
// code and message and what to check.
//
// Thread safety: every method may be called from several threads at once;
// each call takes its own connection from the pool.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/s3/sigv4.h"
#include "backend/s3/s3_xml.h"

namespace cairn::s3 {

struct S3Options {
  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000". Plain
  // http only when the endpoint says so.
  std::string endpoint;
  std::string bucket;
  std::string region = "us-east-1";
  // Path style (endpoint/bucket/key) or virtual-hosted (bucket.endpoint/key).
  bool path_style = true;
  Credentials credentials;
  std::string ca_file;  // empty: the system's CA store
  std::string storage_class;  // x-amz-storage-class of new objects; "" for the default
  // Retries: at most this many attempts, and none started after
  // max_retry_seconds since the first.
  int max_attempts = 6;
  double max_retry_seconds = 60;
  double first_backoff_seconds = 0.1;
  double max_backoff_seconds = 8;
  int64_t connect_timeout_ms = 5000;
  // A transfer slower than 1 KiB/s for this long is a stall: aborted and
  // retried.
  int64_t stall_seconds = 15;
  int max_connections = 8;
  // Objects larger than this go up in parts of part_bytes, in parallel.
  uint64_t multipart_threshold = 16 << 20;
  uint64_t part_bytes = 8 << 20;
};

struct ObjectInfo {
  uint64_t size = 0;
  std::string etag;
};

// The retry policy, separate so it can be tested without a network.
// `http_status` 0 means the request never got a response (`transport_error`
// says why: refused, reset, timed out, stalled).
bool ShouldRetry(long http_status, bool transport_error, const std::string& s3_code);
// Full-jitter exponential backoff for attempt 1, 2, ... (`random01` in
// [0, 1)).
double BackoffSeconds(int attempt, double first, double cap, double random01);

class S3Client {
 public:
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(const S3Options& options);
  ~S3Client();

  // Stores `data` as `key`; with `crc32c`, sends it as x-amz-checksum-crc32c
  // so the server verifies the body. Large objects go up in parallel parts;
  // a failed multipart upload is aborted, leaving no parts behind.
  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c = std::nullopt);
  // The whole object, or `length` bytes at `offset` (fewer only where the
  // object ends first, and only with `allow_short`).
  absl::StatusOr<std::string> GetObject(const std::string& key,
                                        std::optional<std::pair<uint64_t, uint64_t>> range =
                                            std::nullopt,
                                        bool allow_short = false);
  // kNotFound when absent.
  absl::StatusOr<ObjectInfo> HeadObject(const std::string& key);
  // Absent objects are not an error.
  absl::Status DeleteObject(const std::string& key);
  absl::Status DeleteObjects(const std::vector<std::string>& keys);
  // Every object under `prefix`, all pages.
  absl::StatusOr<std::vector<ObjectEntry>> ListObjects(const std::string& prefix);
  // The "directories" right under `prefix`: the distinct key prefixes up
  // to the next '/' (ListObjectsV2 with delimiter "/"), all pages.
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix);
  // Multipart uploads under `prefix` that were started and never completed
  // or aborted.
  absl::StatusOr<std::vector<MultipartUpload>> ListMultipartUploads(const std::string& prefix);
  absl::Status AbortMultipartUpload(const std::string& key, const std::string& upload_id);

  struct Stats {
    uint64_t requests = 0;
    uint64_t retries = 0;
    uint64_t failures = 0;  // requests that failed after all attempts
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
  };
  Stats GetStats();

  class Impl;

 private:
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::s3

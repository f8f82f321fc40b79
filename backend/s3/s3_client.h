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
#include "backend/s3/object_store.h"
#include "backend/s3/s3_options.h"

namespace cairn::s3 {

// The retry policy, separate so it can be tested without a network.
// `http_status` 0 means the request never got a response (`transport_error`
// says why: refused, reset, timed out, stalled).
bool ShouldRetry(long http_status, bool transport_error, const std::string& s3_code);
// Full-jitter exponential backoff for attempt 1, 2, ... (`random01` in
// [0, 1)).
double BackoffSeconds(int attempt, double first, double cap, double random01);

class S3Client final : public ObjectStore {
 public:
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(const S3Options& options);
  ~S3Client();

  // Stores `data` as `key`; with `crc32c`, sends it as x-amz-checksum-crc32c
  // so the server verifies the body. Large objects go up in parallel parts;
  // a failed multipart upload is aborted, leaving no parts behind.
  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c = std::nullopt) override;
  // The whole object, or `length` bytes at `offset` (fewer only where the
  // object ends first, and only with `allow_short`).
  absl::StatusOr<std::string> GetObject(const std::string& key,
                                        std::optional<std::pair<uint64_t, uint64_t>> range =
                                            std::nullopt,
                                        bool allow_short = false) override;
  // kNotFound when absent.
  absl::StatusOr<ObjectInfo> HeadObject(const std::string& key) override;
  // Absent objects are not an error.
  absl::Status DeleteObject(const std::string& key) override;
  absl::Status DeleteObjects(const std::vector<std::string>& keys) override;
  // Every object under `prefix`, all pages.
  absl::StatusOr<std::vector<ObjectEntry>> ListObjects(const std::string& prefix) override;
  absl::StatusOr<ObjectPage> ListObjectsPage(const std::string& prefix,
                                             const std::string& start_after,
                                             int max_keys) override;
  // The "directories" right under `prefix`: the distinct key prefixes up
  // to the next '/' (ListObjectsV2 with delimiter "/"), all pages.
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) override;
  // Multipart uploads under `prefix` that were started and never completed
  // or aborted.
  absl::StatusOr<std::vector<MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) override;
  absl::Status AbortMultipartUpload(const std::string& key,
                                    const std::string& upload_id) override;

  ObjectStoreStats GetStats() override;

  class Impl;

 private:
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::s3

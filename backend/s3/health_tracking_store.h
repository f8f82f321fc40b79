// An ObjectStore that remembers how the remote answered: whether its
// latest request got through, and when and why one last failed. Every
// request counts, reads and moves alike, so `cairn status` and the metrics
// show an outage while it lasts, not only once a policy pass fails, and
// show the recovery as soon as a request succeeds again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/s3/object_store.h"

namespace cairn::s3 {

struct RemoteHealth {
  bool healthy = true;            // the latest request that reached a verdict got through
  int64_t last_failure_sec = 0;   // Unix seconds; 0: none yet
  std::string last_failure;       // why it failed
  int64_t last_success_sec = 0;
  uint64_t failures = 0;          // requests that failed since the start
};

class HealthTrackingStore final : public ObjectStore {
 public:
  HealthTrackingStore(std::unique_ptr<ObjectStore> remote, Clock* clock)
      : remote_(std::move(remote)), clock_(clock) {}

  RemoteHealth Health() const;

  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c) override;
  absl::StatusOr<std::string> GetObject(const std::string& key,
                                        std::optional<std::pair<uint64_t, uint64_t>> range,
                                        bool allow_short) override;
  absl::StatusOr<ObjectInfo> HeadObject(const std::string& key) override;
  absl::Status DeleteObject(const std::string& key) override;
  absl::Status DeleteObjects(const std::vector<std::string>& keys) override;
  absl::StatusOr<std::vector<ObjectEntry>> ListObjects(const std::string& prefix) override;
  absl::StatusOr<ObjectPage> ListObjectsPage(const std::string& prefix,
                                             const std::string& start_after,
                                             int max_keys) override;
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) override;
  absl::StatusOr<std::vector<MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) override;
  absl::Status AbortMultipartUpload(const std::string& key,
                                    const std::string& upload_id) override;
  ObjectStoreStats GetStats() override { return remote_->GetStats(); }

 private:
  // A missing object is an answer, not an outage (a missing bucket is one).
  void Record(const absl::Status& status);

  std::unique_ptr<ObjectStore> remote_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  RemoteHealth health_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::s3

#include "backend/s3/health_tracking_store.h"

#include "absl/time/time.h"

namespace cairn::s3 {

RemoteHealth HealthTrackingStore::Health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

void HealthTrackingStore::Record(const absl::Status& status) {
  const int64_t now = absl::ToUnixSeconds(clock_->Now());
  absl::MutexLock lock(&mu_);
  // A missing object is an answer; a missing bucket is not.
  const bool answered =
      status.ok() || (absl::IsNotFound(status) &&
                      status.message().find("NoSuchBucket") == std::string_view::npos);
  if (answered) {
    health_.healthy = true;
    health_.last_success_sec = now;
    return;
  }
  health_.healthy = false;
  health_.last_failure_sec = now;
  health_.last_failure = std::string(status.message());
  health_.failures++;
}

absl::Status HealthTrackingStore::PutObject(const std::string& key, std::string_view data,
                                            std::optional<uint32_t> crc32c) {
  absl::Status status = remote_->PutObject(key, data, crc32c);
  Record(status);
  return status;
}

absl::StatusOr<std::string> HealthTrackingStore::GetObject(
    const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range,
    bool allow_short) {
  absl::StatusOr<std::string> object = remote_->GetObject(key, range, allow_short);
  Record(object.status());
  return object;
}

absl::StatusOr<ObjectInfo> HealthTrackingStore::HeadObject(const std::string& key) {
  absl::StatusOr<ObjectInfo> info = remote_->HeadObject(key);
  Record(info.status());
  return info;
}

absl::Status HealthTrackingStore::DeleteObject(const std::string& key) {
  absl::Status status = remote_->DeleteObject(key);
  Record(status);
  return status;
}

absl::Status HealthTrackingStore::DeleteObjects(const std::vector<std::string>& keys) {
  absl::Status status = remote_->DeleteObjects(keys);
  Record(status);
  return status;
}

absl::StatusOr<std::vector<ObjectEntry>> HealthTrackingStore::ListObjects(
    const std::string& prefix) {
  absl::StatusOr<std::vector<ObjectEntry>> entries = remote_->ListObjects(prefix);
  Record(entries.status());
  return entries;
}

absl::StatusOr<ObjectPage> HealthTrackingStore::ListObjectsPage(const std::string& prefix,
                                                                const std::string& start_after,
                                                                int max_keys) {
  absl::StatusOr<ObjectPage> page = remote_->ListObjectsPage(prefix, start_after, max_keys);
  Record(page.status());
  return page;
}

absl::StatusOr<std::vector<std::string>> HealthTrackingStore::ListPrefixes(
    const std::string& prefix) {
  absl::StatusOr<std::vector<std::string>> prefixes = remote_->ListPrefixes(prefix);
  Record(prefixes.status());
  return prefixes;
}

absl::StatusOr<std::vector<MultipartUpload>> HealthTrackingStore::ListMultipartUploads(
    const std::string& prefix) {
  absl::StatusOr<std::vector<MultipartUpload>> uploads = remote_->ListMultipartUploads(prefix);
  Record(uploads.status());
  return uploads;
}

absl::Status HealthTrackingStore::AbortMultipartUpload(const std::string& key,
                                                       const std::string& upload_id) {
  absl::Status status = remote_->AbortMultipartUpload(key, upload_id);
  Record(status);
  return status;
}

}  // namespace cairn::s3

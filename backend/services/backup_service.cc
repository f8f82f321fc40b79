#include "backend/services/backup_service.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "backend/base/log.h"

namespace cairn {

BackupService::BackupService(NamespaceStore& ns, BackupStore& store, RemoteBlobStore& replica,
                             Options options)
    : ns_(ns), store_(store), replica_(replica), options_(std::move(options)) {
  options_.backup.should_stop = [this] { return stopped_.HasBeenNotified(); };
  absl::StatusOr<std::optional<std::string>> last = ns_.GetVolumeMeta(kLastBackupKey);
  if (last.ok() && last->has_value()) {
    std::vector<std::string> words = absl::StrSplit(**last, ' ');
    absl::MutexLock lock(&mu_);
    if (words.size() == 2 && absl::SimpleAtoi(words[1], &last_time_)) last_id_ = words[0];
  }
  if (options_.background && options_.interval_seconds > 0) {
    thread_ = std::thread([this] { Loop(); });
  }
}

BackupService::~BackupService() {
  stopped_.Notify();
  if (thread_.joinable()) thread_.join();
}

void BackupService::NoteError(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  errors_++;
  last_error_ = std::string(status.message());
  last_error_time_ = options_.backup.clock->NowSeconds();
}

absl::StatusOr<BackupService::Result> BackupService::RunNow() {
  absl::StatusOr<BackupManifest> manifest = TakeBackup(ns_, store_, replica_, options_.backup);
  if (!manifest.ok()) {
    NoteError(manifest.status());
    LogWarning("namespace backup failed: %s", manifest.status().message());
    return manifest.status();
  }
  Result result;
  result.manifest = *manifest;
  {
    absl::MutexLock lock(&mu_);
    last_id_ = manifest->backup_id;
    last_time_ = manifest->created_sec;
    last_stored_bytes_ = manifest->StoredBytes();
  }
  LogInfo("namespace backup %s: %d inodes, %d blobs", manifest->backup_id, manifest->inodes,
          manifest->blob_count);
  absl::StatusOr<ReplicaGcReport> gc = CollectNow();
  if (gc.ok()) {
    result.gc = *gc;
  } else {
    result.gc_error = std::string(gc.status().message());
  }
  return result;
}

absl::StatusOr<ReplicaGcReport> BackupService::CollectNow() {
  absl::StatusOr<ReplicaGcReport> gc =
      CollectReplicaGarbage(ns_, store_, replica_, options_.keep);
  if (!gc.ok()) {
    NoteError(gc.status());
    LogWarning("replica garbage collection failed: %s", gc.status().message());
    return gc;
  }
  absl::MutexLock lock(&mu_);
  gc_deleted_ += gc->objects_deleted;
  kept_ = gc->backups_kept;
  return gc;
}

void BackupService::Loop() {
  // A volume never backed up gets its first backup a few minutes after the
  // mount, once the replicator has had a start; after a failure the next
  // try comes sooner than the interval, backing off up to it.
  const int64_t started = options_.backup.clock->NowSeconds();
  int64_t retry = 60;
  for (;;) {
    int64_t due;
    {
      absl::MutexLock lock(&mu_);
      due = last_time_ > 0 ? last_time_ + options_.interval_seconds
                           : started + std::min<int64_t>(300, options_.interval_seconds);
      if (last_error_time_ > last_time_) due = std::min(due, last_error_time_ + retry);
    }
    int64_t now = options_.backup.clock->NowSeconds();
    if (now < due) {
      if (stopped_.WaitForNotificationWithTimeout(absl::Seconds(due - now))) return;
      continue;  // due may have moved (a backup on request)
    }
    absl::StatusOr<Result> result = RunNow();
    retry = result.ok() ? 60
                        : std::min<int64_t>(retry * 2,
                                            std::max<int64_t>(60, options_.interval_seconds));
    if (stopped_.HasBeenNotified()) return;
  }
}

BackupService::Status BackupService::GetStatus() {
  absl::MutexLock lock(&mu_);
  return Status{last_id_, last_time_, last_stored_bytes_, kept_, errors_,
                last_error_, last_error_time_, gc_deleted_};
}

}  // namespace cairn

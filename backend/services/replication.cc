#include "backend/services/replication.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"

namespace cairn {

Replicator::Replicator(NamespaceStore& ns, BlobStore& blobs, RemoteBlobStore& replica,
                       Options options)
    : ns_(ns), blobs_(blobs), replica_(replica), options_(options) {
  if (options_.background) thread_ = std::thread([this] { Loop(); });
}

Replicator::~Replicator() {
  stop_ = true;
  stopped_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::Status Replicator::Copy(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) {
    // Deleted since it was queued: nothing to copy.
    if (IsNotFoundError(record.status())) return ns_.ClearReplication(id);
    return record.status();
  }
  if (options_.tier_is_replica && record->location != BlobLocation::kLocal) {
    return ns_.ClearReplication(id);  // its verified object is there already
  }
  absl::StatusOr<std::string> data = blobs_.Read(id, 0, record->length);
  if (!data.ok()) return data.status();
  if (Crc32c(*data) != record->crc32c) {
    return FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, " does not match its checksum; "
                                                  "not replicated (cairn scrub repairs it)"));
  }
  if (absl::StatusOr<BlobInfo> put = replica_.Put(id, *data); !put.ok()) return put.status();
  if (absl::Status s = replica_.Verify(id, record->length, record->crc32c); !s.ok()) return s;
  copied_++;
  copied_bytes_ += record->length;
  return ns_.ClearReplication(id);
}

absl::Status Replicator::NoteFailure(const absl::Status& status) {
  errors_++;
  absl::MutexLock lock(&mu_);
  last_error_ = std::string(status.message());
  last_error_time_ = options_.clock->NowSeconds();
  LogWarning("replication stopped: %s; retrying later", last_error_);
  return status;
}

absl::StatusOr<uint64_t> Replicator::RunPass() {
  absl::MutexLock pass_lock(&pass_mu_);
  uint64_t copied = 0;
  for (BlobId from = 0; !stop_;) {
    absl::StatusOr<std::vector<QueuedReplication>> queued = ns_.PendingReplications(from, 256);
    if (!queued.ok()) return queued.status();
    if (queued->empty()) break;
    if (options_.owner != nullptr) {
      if (absl::Status owned = options_.owner->Check(); !owned.ok()) return NoteFailure(owned);
    }
    std::vector<BlobId> ids;
    for (const QueuedReplication& q : *queued) ids.push_back(q.id);
    from = ids.back() + 1;
    std::atomic<uint64_t> done{0};
    absl::Status failed =
        RunInParallel(ids.size(), options_.parallel, [&](size_t i) { return Copy(ids[i]); },
                      [&done](size_t) { done++; });
    copied += done;
    if (!failed.ok()) return NoteFailure(failed);
  }
  absl::MutexLock lock(&mu_);
  last_pass_time_ = options_.clock->NowSeconds();
  return copied;
}

void Replicator::Loop() {
  int64_t wait = options_.idle_seconds;
  while (!stopped_.WaitForNotificationWithTimeout(absl::Seconds(wait))) {
    absl::StatusOr<uint64_t> pass = RunPass();
    // While the replica fails, try less often (up to every 5 minutes).
    wait = pass.ok() ? options_.idle_seconds : std::min<int64_t>(std::max<int64_t>(wait, 1) * 2, 300);
  }
}

Replicator::Stats Replicator::GetStats() { return Stats{copied_, copied_bytes_, errors_}; }

Replicator::Status Replicator::GetStatus() {
  Status status;
  // Counting stops at 100,000 entries: the figure is for a person, and a
  // longer queue is "more than that".
  absl::StatusOr<ReplicationBacklog> backlog = ns_.GetReplicationBacklog(100000);
  if (backlog.ok()) status.backlog = *backlog;
  const int64_t now = options_.clock->NowSeconds();
  status.lag_seconds =
      status.backlog.oldest_sec > 0 ? std::max<int64_t>(0, now - status.backlog.oldest_sec) : 0;
  status.totals = GetStats();
  absl::MutexLock lock(&mu_);
  status.last_error = last_error_;
  status.last_error_time = last_error_time_;
  status.last_empty_time = last_pass_time_;
  status.healthy = last_error_time_ <= last_pass_time_;
  return status;
}

}  // namespace cairn

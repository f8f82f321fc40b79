#include "backend/services/shared_blob_sweep.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {

SharedBlobSweeper::SharedBlobSweeper(NamespaceStore& ns, RemoteBlobStore& remote,
                                     Options options)
    : ns_(ns), remote_(remote), options_(std::move(options)) {
  if (options_.background) thread_ = std::thread([this] { Loop(); });
}

SharedBlobSweeper::~SharedBlobSweeper() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<SharedBlobSweeper::Report> SharedBlobSweeper::SweepNow() {
  absl::MutexLock sweeping(&sweep_mu_);
  absl::StatusOr<Report> report = Sweep();
  absl::MutexLock lock(&stats_mu_);
  if (!report.ok()) {
    stats_.last_error = std::string(report.status().message());
  } else if (report->complete) {
    stats_.last_error.clear();
    stats_.sweeps++;
    stats_.last_sweep_seconds = options_.clock->NowSeconds();
  }
  return report;
}

absl::StatusOr<SharedBlobSweeper::Report> SharedBlobSweeper::Sweep() {
  if (!ns_.IsLeader()) {
    return absl::FailedPreconditionError(
        "only the leader sweeps the volume's bucket; this daemon is not the leader");
  }
  // Ids are handed out by one sequence for every host, before their PUT:
  // an object with an id at or above the next one was not put by any host
  // of this namespace (a copy of the volume's namespace sharing the
  // bucket, an operator's object) and is not ours to judge. Ids below it
  // say nothing about age, since hosts store the ids they took in any
  // order and at any time: unlike the single-host sweep, no "swept up to"
  // point is kept, and every sweep lists the whole bucket.
  absl::StatusOr<BlobId> next = ns_.AllocateBlobIds(0);
  if (!next.ok()) return next.status();
  Report report;
  std::string after;
  for (bool more = true; more;) {
    if (stop_.HasBeenNotified() || !ns_.IsLeader()) return report;
    absl::StatusOr<RemoteBlobStore::BlobPage> page = remote_.ListPage(after, options_.page_keys);
    if (!page.ok()) return page.status();
    for (const RemoteBlobStore::ListedBlob& blob : page->blobs) {
      report.listed++;
      if (blob.id >= *next) {
        report.unallocated++;
        continue;
      }
      // Both times are the server's: a host's clock, however wrong, plays
      // no part in the age.
      if (page->server_time <= 0 || blob.last_modified <= 0) {
        report.undated++;
        continue;
      }
      if (page->server_time - blob.last_modified < options_.min_age_seconds) {
        report.too_young++;
        continue;
      }
      if (stop_.HasBeenNotified() || !ns_.IsLeader()) return report;
      // Looked up now, not when the page was listed: a commit that landed
      // since claims the object.
      absl::StatusOr<BlobRecord> record = ns_.GetBlob(blob.id);
      if (record.ok()) {
        report.claimed++;
        continue;
      }
      if (!IsNotFoundError(record.status())) return record.status();
      if (absl::Status s = remote_.Delete(blob.id); !s.ok()) return s;
      report.deleted++;
      absl::MutexLock lock(&stats_mu_);
      stats_.objects_deleted++;
    }
    more = page->more;
    after = page->next_after;
  }
  report.complete = true;
  if (report.deleted > 0) {
    LogInfo("deleted %d objects in the volume's bucket that no blob record claims, older than "
            "%d s (left by crashes between a blob's PUT and its commit)",
            report.deleted, options_.min_age_seconds);
  }
  if (report.undated > 0) {
    LogWarning("the volume's bucket did not tell the age of %d objects (no Date header or "
               "LastModified in its listing): the sweep keeps them, and objects left by "
               "crashes are not deleted",
               report.undated);
  }
  return report;
}

SharedBlobSweeper::Stats SharedBlobSweeper::GetStats() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_;
}

void SharedBlobSweeper::Loop() {
  bool leading = false;
  double next_due = 0;  // monotonic seconds
  while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    // Asked each round: leadership can move. A new leader sweeps at once,
    // since the last one may have died before its sweep was due.
    if (!ns_.IsLeader()) {
      leading = false;
      continue;
    }
    const double now = options_.clock->MonotonicSeconds();
    if (leading && now < next_due) continue;
    leading = true;
    absl::StatusOr<Report> report = SweepNow();
    const bool ok = report.ok() && report->complete;
    const int64_t wait = ok ? options_.interval_seconds
                            : std::min(options_.interval_seconds, options_.retry_seconds);
    next_due = options_.clock->MonotonicSeconds() + static_cast<double>(wait);
    if (!report.ok()) {
      LogWarning("sweeping the volume's bucket for objects no record claims failed: %s (again "
                 "in %d s)",
                 report.status().ToString(), wait);
    }
  }
}

}  // namespace cairn

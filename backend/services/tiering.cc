#include "backend/services/tiering.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"
#include "backend/namespace/file_location.h"

namespace cairn {

absl::Status TieringService::UnlessDeleted(const absl::Status& status, BlobId id) {
  if (!IsNotFoundError(status)) return status;
  // A blob deleted meanwhile (its file overwritten or removed under the
  // move) needs no move. But "not found" also comes from the remote (no
  // such bucket, an object gone): the blob's record tells them apart.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok() && IsNotFoundError(record.status())) return absl::OkStatus();
  return status;
}

TieringService::TieringService(NamespaceStore& ns, BlobStore& local, TierMover& mover,
                               TierConfig config, Options options)
    : ns_(ns), local_(local), mover_(mover), config_(std::move(config)), options_(options) {
  if (options_.background) thread_ = std::thread([this] { Loop(); });
}

TieringService::~TieringService() {
  stop_ = true;
  stopped_.Notify();
  if (thread_.joinable()) thread_.join();
}

void TieringService::Loop() {
  // A move a crash or an unmount interrupted between commit and free.
  absl::StatusOr<uint64_t> finished = mover_.FinishFreeing();
  if (!finished.ok()) {
    LogWarning("tiering: could not finish interrupted moves: %s", finished.status().message());
  } else if (*finished > 0) {
    LogInfo("tiering: freed the local copies of %d blobs a stop left behind", *finished);
  }
  int64_t wait = options_.pass_interval_seconds;
  while (!stopped_.WaitForNotificationWithTimeout(absl::Seconds(wait))) {
    absl::StatusOr<PassReport> pass = RunPass();
    // While the remote fails, try less often (up to every 10 minutes).
    wait = pass.ok() ? options_.pass_interval_seconds : std::min<int64_t>(wait * 2, 600);
  }
}

absl::StatusOr<TieringService::PassReport> TieringService::RunPass() {
  absl::MutexLock pass_lock(&pass_mu_);
  const double start = options_.clock->MonotonicSeconds();
  const int64_t now = options_.clock->NowSeconds();
  PassReport report;
  struct Candidate {
    int64_t last_use;
    BlobId id;
    uint64_t length;
  };
  std::vector<Candidate> candidates;
  absl::flat_hash_map<InodeId, std::optional<int64_t>> owners;  // last use; nullopt: pinned
  absl::Status scanned = ForEachBlobRecord(ns_, [&](BlobId id, const BlobRecord& record) {
    if (record.refcount == 0) return absl::OkStatus();
    if (InRemoteTierOnly(record.location)) {
      report.remote_bytes += record.length;
      return absl::OkStatus();
    }
    report.local_bytes += record.length;
    if (record.owner == 0) return absl::OkStatus();  // recorded before owners were known
    auto [it, inserted] = owners.try_emplace(record.owner);
    if (inserted) {
      absl::StatusOr<InodeAttr> attr = ns_.GetAttr(record.owner);
      bool pinned = ns_.GetXattr(record.owner, kPinXattr).ok();
      if (attr.ok() && !pinned) {
        it->second = std::max({attr->atime.sec, attr->mtime.sec, attr->ctime.sec});
      }
    }
    if (it->second) candidates.push_back(Candidate{*it->second, id, record.length});
    return absl::OkStatus();
  });
  if (!scanned.ok()) return scanned;
  report.candidates = candidates.size();
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.last_use < b.last_use; });
  // How full the local disks are, and how many bytes of blobs (by their
  // recorded length) must still move to get below the low watermark. Disk
  // bytes per blob byte (redundancy, compression, other files on the
  // disks) come from the usage itself, so a batch rarely overshoots.
  auto used_percent = [&]() -> double {
    absl::StatusOr<StoreUsage> usage = local_.Usage();
    if (!usage.ok() || usage->capacity_bytes == 0) return 0;
    return 100.0 * (1.0 - static_cast<double>(usage->free_bytes) / usage->capacity_bytes);
  };
  auto blob_bytes_to_free = [&](uint64_t local_blob_bytes) -> double {
    absl::StatusOr<StoreUsage> usage = local_.Usage();
    if (!usage.ok() || usage->capacity_bytes == 0 || local_blob_bytes == 0) return 0;
    const double used = static_cast<double>(usage->capacity_bytes - usage->free_bytes);
    const double target = usage->capacity_bytes * (config_.low_watermark_percent / 100.0);
    return std::max(0.0, used - target) / (used / static_cast<double>(local_blob_bytes));
  };
  const bool over_high = used_percent() > config_.high_watermark_percent;
  auto is_cold = [&](const Candidate& c) { return now - c.last_use >= config_.cold_after_seconds; };
  absl::Status failed;
  absl::Mutex report_mu;
  // In batches, coldest first: cold ones all move; then, while over the
  // high watermark, warmer ones a few at a time until below the low one.
  for (size_t next = 0; next < candidates.size() && !stop_;) {
    const bool cold = is_cold(candidates[next]);
    if (!cold && (!over_high || used_percent() <= config_.low_watermark_percent)) break;
    const size_t limit = cold ? 8 * kParallelMoves : kParallelMoves;
    // Warm ones: no more than the watermark asks for (at least one).
    const double budget = cold ? 0 : blob_bytes_to_free(report.local_bytes - report.moved_bytes);
    std::vector<BlobId> batch;
    std::vector<uint64_t> lengths;
    uint64_t batch_bytes = 0;
    for (; next < candidates.size() && batch.size() < limit &&
           is_cold(candidates[next]) == cold;
         ++next) {
      if (!cold && !batch.empty() && batch_bytes + candidates[next].length > budget) break;
      batch.push_back(candidates[next].id);
      lengths.push_back(candidates[next].length);
      batch_bytes += candidates[next].length;
    }
    failed = RunInParallel(
        batch.size(), kParallelMoves,
        [&](size_t i) {
          const BlobId id = batch[i];
          if (stop_) return absl::CancelledError("the daemon is stopping");
          absl::Status s = mover_.MoveOut(id);
          return UnlessDeleted(s, id);
        },
        [&](size_t i) {
          absl::MutexLock lock(&report_mu);
          report.moved++;
          report.moved_bytes += lengths[i];
        });
    if (absl::IsCancelled(failed)) failed = absl::OkStatus();
    if (!failed.ok()) break;  // the remote is unwell: the next pass tries again
  }
  // What is cold and still local waits for the next pass.
  for (const Candidate& c : candidates) {
    if (!is_cold(c)) break;
    absl::StatusOr<BlobRecord> record = ns_.GetBlob(c.id);
    if (record.ok() && !InRemoteTierOnly(record->location)) {
      report.waiting++;
      report.waiting_bytes += c.length;
    }
  }
  report.seconds = options_.clock->MonotonicSeconds() - start;
  absl::MutexLock lock(&mu_);
  last_ = report;
  last_pass_time_ = now;
  if (!failed.ok()) {
    last_error_ = std::string(failed.message());
    last_error_time_ = now;
    LogWarning("tiering: moving data out stopped: %s; retrying later", last_error_);
    return failed;
  }
  return report;
}

std::vector<BlobId> TieringService::FileBlobs(InodeId ino, absl::Status* status) {
  std::vector<BlobId> ids;
  absl::StatusOr<std::vector<Extent>> extents = ns_.GetExtents(ino, 0, UINT64_MAX / 2);
  if (!extents.ok()) {
    *status = extents.status();
    return ids;
  }
  for (const Extent& e : *extents) {
    if (e.blob_id != kNoBlob) ids.push_back(e.blob_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

absl::Status TieringService::MoveFiles(const std::vector<InodeId>& inos, bool out,
                                      const std::function<void(InodeId)>& file_done) {
  absl::MutexLock pass_lock(&pass_mu_);
  // Every blob of every file, with the file it counts for; a blob shared
  // by two files (a clone) moves once, for the first.
  std::vector<BlobId> ids;
  std::vector<size_t> file_of;
  std::vector<size_t> blobs_left(inos.size(), 0);
  absl::flat_hash_map<BlobId, bool> seen;
  for (size_t f = 0; f < inos.size(); ++f) {
    absl::Status status;
    std::vector<BlobId> blobs = FileBlobs(inos[f], &status);
    if (!status.ok()) {
      return FsError(GetFsErrorKind(status).value_or(FsErrorKind::kIo),
                     absl::StrCat("inode ", inos[f], ": ", status.message()));
    }
    for (BlobId id : blobs) {
      if (!seen.try_emplace(id, true).second) continue;
      ids.push_back(id);
      file_of.push_back(f);
      blobs_left[f]++;
    }
  }
  absl::Mutex done_mu;
  auto finish_file = [&](size_t f) -> absl::Status {
    if (!out) {
      // Brought back to stay: the policy leaves pinned files alone.
      absl::Status pinned = ns_.SetXattr(inos[f], kPinXattr, "1", XattrMode::kCreateOrReplace);
      if (!pinned.ok() && !IsNotFoundError(pinned)) return pinned;
    }
    if (file_done) file_done(inos[f]);
    return absl::OkStatus();
  };
  for (size_t f = 0; f < inos.size(); ++f) {
    if (blobs_left[f] == 0) {
      if (absl::Status s = finish_file(f); !s.ok()) return s;
    }
  }
  absl::Status finishing;
  size_t failed_index = 0;
  absl::Status moved = RunInParallel(
      ids.size(), kParallelMoves,
      [&](size_t i) {
        const BlobId id = ids[i];
        absl::Status s = out ? mover_.MoveOut(id) : mover_.MoveIn(id);
        return UnlessDeleted(s, id);
      },
      [&](size_t i) {
        absl::MutexLock lock(&done_mu);
        if (--blobs_left[file_of[i]] == 0 && finishing.ok()) finishing = finish_file(file_of[i]);
      },
      &failed_index);
  if (!moved.ok()) {
    size_t f = file_of[failed_index];
    return FsError(GetFsErrorKind(moved).value_or(FsErrorKind::kIo),
                   absl::StrCat("inode ", inos[f], ": ", moved.message()));
  }
  return finishing;
}

absl::Status TieringService::MoveFilesOut(const std::vector<InodeId>& inos,
                                          const std::function<void(InodeId)>& file_done) {
  return MoveFiles(inos, /*out=*/true, file_done);
}

absl::Status TieringService::MoveFilesIn(const std::vector<InodeId>& inos,
                                         const std::function<void(InodeId)>& file_done) {
  return MoveFiles(inos, /*out=*/false, file_done);
}

TieringService::Status TieringService::GetStatus() {
  Status status;
  status.endpoint = config_.endpoint;
  status.bucket = config_.bucket;
  status.moves = mover_.GetStats();
  absl::MutexLock lock(&mu_);
  status.last_pass = last_;
  status.last_pass_time = last_pass_time_;
  status.last_error = last_error_;
  status.last_error_time = last_error_time_;
  status.remote_healthy = last_error_time_ < last_pass_time_ || last_error_.empty();
  if (options_.remote_health) {
    const s3::RemoteHealth remote = options_.remote_health();
    if (!remote.healthy) {
      status.remote_healthy = false;
      if (remote.last_failure_sec >= status.last_error_time) {
        status.last_error = remote.last_failure;
        status.last_error_time = remote.last_failure_sec;
      }
    } else if (remote.last_success_sec > last_error_time_) {
      status.remote_healthy = true;  // requests got through since the failed pass
    }
  }
  return status;
}

}  // namespace cairn

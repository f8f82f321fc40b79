#include "backend/services/storage_maintenance.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/services/pacing.h"

namespace cairn {
namespace {

constexpr size_t kBatch = 256;
constexpr size_t kMaxProblems = 20;

// True when `id` no longer needs its data: deleted or awaiting collection.
bool Unreferenced(NamespaceStore& ns, BlobId id) {
  absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
  return (!record.ok() && IsNotFoundError(record.status())) ||
         (record.ok() && record->refcount == 0);
}

}  // namespace

absl::StatusOr<ScrubReport> ScrubBlobs(NamespaceStore& ns, StripedBlobStore& store,
                                       const ScrubOptions& options) {
  ScrubReport report;
  if (absl::StatusOr<StoreUsage> usage = store.Usage(); usage.ok()) {
    report.blobs_total = usage->blob_count;
  }
  Clock* const clock = options.clock;
  const double start = clock->MonotonicSeconds();
  double last_progress = start;
  auto elapsed = [&] { return clock->MonotonicSeconds() - start; };
  BlobId from = options.start;
  for (;;) {
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> batch =
        ns.ListBlobs(from, kBatch);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const auto& [id, record] : *batch) {
      if ((options.should_stop && options.should_stop()) ||
          (options.max_seconds > 0 && elapsed() >= options.max_seconds)) {
        report.seconds = elapsed();
        if (options.checkpoint) options.checkpoint(id);
        return report;
      }
      from = id + 1;
      if (record.refcount == 0) continue;  // awaiting garbage collection
      // In the remote tier only: no local shards to check.
      if (InRemoteTierOnly(record.location)) continue;
      BlobCheck check = store.CheckBlob(id, options.repair, record.crc32c);
      if ((check.lost || check.absent) && Unreferenced(ns, id)) continue;  // deleted meanwhile
      report.blobs_checked++;
      report.bytes_read += check.bytes_read;
      report.shards_bad += check.shards_bad;
      report.shards_repaired += check.shards_repaired;
      report.shards_unavailable += check.shards_unavailable;
      if (check.lost) {
        report.blobs_lost++;
        LogError("scrub: %s", absl::StrJoin(check.problems, "; "));
      }
      for (const std::string& problem : check.problems) {
        if (report.problems.size() < kMaxProblems) report.problems.push_back(problem);
      }
      if (!check.lost && check.shards_unavailable == 0 &&
          check.shards_bad == check.shards_repaired && check.shards_bad > 0) {
        ns.ClearRepair(id).IgnoreError();  // repaired here; the queue may hold it
      }
      PaceReads(clock, start, report.bytes_read, options.bytes_per_second, options.should_stop);
      if (options.progress && clock->MonotonicSeconds() - last_progress >= 0.5) {
        last_progress = clock->MonotonicSeconds();
        report.seconds = elapsed();
        options.progress(report);
      }
    }
    if (options.checkpoint) options.checkpoint(from);
  }
  report.seconds = elapsed();
  report.finished = true;
  report.blobs_total = std::max(report.blobs_total, report.blobs_checked);
  if (options.progress) options.progress(report);
  return report;
}

absl::StatusOr<uint64_t> DrainRepairs(NamespaceStore& ns, StripedBlobStore& store,
                                      size_t max) {
  // Entries waiting for a down disk are passed over without reading them,
  // so they neither cost reads every round nor block the ones behind.
  absl::StatusOr<std::vector<BlobId>> ids = ns.PendingRepairs(0, std::max<size_t>(max, 4096));
  if (!ids.ok()) return ids.status();
  uint64_t done = 0;
  size_t tried = 0;
  for (BlobId id : *ids) {
    if (tried >= max) break;
    if (!store.CanRepair(id) && !Unreferenced(ns, id)) continue;
    tried++;
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    bool gone = (!record.ok() && IsNotFoundError(record.status())) ||
                (record.ok() && (record->refcount == 0 || InRemoteTierOnly(record->location)));
    if (!gone) {
      if (!record.ok()) return record.status();
      BlobCheck check = store.CheckBlob(id, /*repair=*/true, record->crc32c);
      if (check.lost || check.absent) {
        gone = Unreferenced(ns, id);
        if (!gone) continue;  // the scrub reports it; keep it queued
      } else if (check.shards_unavailable > 0 || check.shards_bad != check.shards_repaired) {
        continue;  // a disk is down: retry once it is back or replaced
      }
    }
    if (absl::Status s = ns.ClearRepair(id); !s.ok()) return s;
    done++;
  }
  return done;
}

absl::StatusOr<uint64_t> FindOrphanShards(NamespaceStore& ns, StripedBlobStore& store,
                                          bool remove, std::vector<std::string>* problems) {
  absl::StatusOr<std::vector<BlobId>> ids = store.ListIds(0);
  if (!ids.ok()) return ids.status();
  uint64_t orphans = 0;
  for (BlobId id : *ids) {
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    // Shards of a blob that moved to the remote tier are leftovers of a
    // free the move did not finish.
    bool moved_out = record.ok() && InRemoteTierOnly(record->location);
    if (record.ok() && !moved_out) continue;
    if (!record.ok() && !IsNotFoundError(record.status())) return record.status();
    orphans++;
    if (problems != nullptr && problems->size() < kMaxProblems) {
      problems->push_back(absl::StrCat("shards of blob ", id,
                                       moved_out ? " are left after its move to the remote tier"
                                                 : " have no blob record",
                                       remove ? " (deleted)" : ""));
    }
    if (remove) {
      if (absl::Status s = store.Delete(id); !s.ok()) return s;
    }
  }
  return orphans;
}

RedundancyCounts CountRedundancy(NamespaceStore& ns, StripedBlobStore& store) {
  RedundancyCounts counts;
  absl::StatusOr<std::vector<BlobId>> queued = ns.PendingRepairs(0, 1000000);
  counts.repair_queue = queued.ok() ? queued->size() : 0;
  if (absl::StatusOr<StoreUsage> usage = store.Usage(); usage.ok()) {
    counts.blobs = usage->blob_count;
  }
  counts.degraded = std::max<uint64_t>(
      counts.repair_queue, static_cast<uint64_t>(counts.blobs * store.DegradedShare() + 0.5));
  return counts;
}

StorageMaintenance::StorageMaintenance(NamespaceStore& ns, StripedBlobStore& store,
                                       Options options)
    : ns_(ns), store_(store), options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

StorageMaintenance::~StorageMaintenance() {
  stop_ = true;
  stopped_.Notify();
  thread_.join();
}

void StorageMaintenance::NoteManualProgress(const char* what, const ScrubReport& report) {
  absl::MutexLock lock(&progress_mu_);
  manual_what_ = report.finished ? "" : what;
  manual_ = report;
}

void StorageMaintenance::Loop() {
  // A rebuild that a crash or unmount interrupted goes on first.
  absl::StatusOr<std::optional<std::string>> pending = ns_.GetVolumeMeta(kRebuildPendingKey);
  if (pending.ok() && pending->has_value() && !(*pending)->empty()) {
    LogInfo("resuming the rebuild of disk %s", **pending);
    absl::StatusOr<ScrubReport> rebuilt = RunExclusive([&] {
      ScrubOptions scrub;
      scrub.should_stop = [this] { return stop_.load(); };
      return ScrubBlobs(ns_, store_, scrub);
    });
    if (rebuilt.ok() && rebuilt->finished) {
      ns_.SetVolumeMeta(kRebuildPendingKey, "").IgnoreError();
      LogInfo("rebuild finished: %d shards rewritten", rebuilt->shards_repaired);
    }
  }
  int tick = 0;
  while (!stopped_.WaitForNotificationWithTimeout(absl::Milliseconds(options_.tick_millis))) {
    store_.CheckDisks();
    if (++tick % 5 == 0) {
      absl::StatusOr<uint64_t> drained = DrainRepairs(ns_, store_, 64);
      if (!drained.ok()) LogWarning("repair queue: %s", drained.status().ToString());
    }
    if (options_.scrub_interval_seconds > 0 && pause_ == 0) BackgroundScrubStep();
  }
}

int64_t VolumeMetaNumber(NamespaceStore& ns, const char* key) {
  absl::StatusOr<std::optional<std::string>> value = ns.GetVolumeMeta(key);
  int64_t n = 0;
  if (!value.ok() || !value->has_value() || !absl::SimpleAtoi(**value, &n)) return 0;
  return n;
}

void StorageMaintenance::BackgroundScrubStep() {
  int64_t cursor = VolumeMetaNumber(ns_, kScrubCursorKey);
  int64_t last_finished = VolumeMetaNumber(ns_, kScrubFinishedKey);
  int64_t now = options_.clock->NowSeconds();
  if (cursor == 0 && now - last_finished < options_.scrub_interval_seconds) return;
  absl::MutexLock lock(&exclusive_);
  {
    absl::MutexLock progress(&progress_mu_);
    if (!running_ && cursor == 0) last_ = ScrubReport();
    running_ = true;
  }
  ScrubOptions scrub;
  scrub.clock = options_.clock;
  scrub.start = static_cast<BlobId>(cursor);
  scrub.bytes_per_second = options_.scrub_bytes_per_second;
  scrub.max_seconds = std::max<double>(1.0, options_.tick_millis / 1000.0);
  scrub.should_stop = [this] { return stop_.load() || pause_.load() > 0; };
  scrub.checkpoint = [this](BlobId next) {
    ns_.SetVolumeMeta(kScrubCursorKey, absl::StrCat(next)).IgnoreError();
  };
  absl::StatusOr<ScrubReport> step = ScrubBlobs(ns_, store_, scrub);
  if (!step.ok()) {
    LogWarning("background scrub: %s", step.status().ToString());
    return;
  }
  absl::MutexLock progress(&progress_mu_);
  last_.blobs_total = step->blobs_total;
  last_.blobs_checked += step->blobs_checked;
  last_.bytes_read += step->bytes_read;
  last_.shards_bad += step->shards_bad;
  last_.shards_repaired += step->shards_repaired;
  last_.shards_unavailable += step->shards_unavailable;
  last_.blobs_lost += step->blobs_lost;
  last_.seconds += step->seconds;
  for (const std::string& p : step->problems) {
    if (last_.problems.size() < kMaxProblems) last_.problems.push_back(p);
  }
  if (step->finished) {
    last_.finished = true;
    running_ = false;
    ns_.SetVolumeMeta(kScrubCursorKey, "0").IgnoreError();
    ns_.SetVolumeMeta(kScrubFinishedKey, absl::StrCat(now)).IgnoreError();
    LogInfo("background scrub finished: %d blobs, %d bad shards, %d repaired, %d lost",
            last_.blobs_checked, last_.shards_bad, last_.shards_repaired, last_.blobs_lost);
  }
}

StorageStatus GetStorageStatus(NamespaceStore& ns, StripedBlobStore& store) {
  StorageStatus status;
  status.redundancy = store.redundancy();
  status.disks = store.Disks();
  status.redundancy_counts = CountRedundancy(ns, store);
  status.counters = store.Counters();
  return status;
}

ScrubStatus StorageMaintenance::GetScrubStatus() {
  ScrubStatus status;
  status.interval_seconds = options_.scrub_interval_seconds;
  status.bytes_per_second = options_.scrub_bytes_per_second;
  status.last_finished = VolumeMetaNumber(ns_, kScrubFinishedKey);
  absl::MutexLock lock(&progress_mu_);
  status.running = running_;
  status.pass = last_;
  status.manual_what = manual_what_;
  status.manual = manual_;
  return status;
}

}  // namespace cairn

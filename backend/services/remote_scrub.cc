#include "backend/services/remote_scrub.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/services/pacing.h"

namespace cairn {
namespace {

constexpr size_t kBatch = 256;
constexpr size_t kMaxProblems = 20;
constexpr uint64_t kMinBytesPerObject = 64 << 10;
constexpr char kLastResultKey[] = "remote_scrub_last_result";

using ObjectState = RemoteBlobStore::ObjectState;

// The remote objects one blob should have.
struct Expected {
  bool replica = false;  // its replica object (the tier's too, when shared)
  bool tier = false;     // its remote tier object
};

absl::StatusOr<bool> QueuedForReplication(NamespaceStore& ns, BlobId id) {
  absl::StatusOr<std::vector<QueuedReplication>> queued = ns.PendingReplications(id, 1);
  if (!queued.ok()) return queued.status();
  return !queued->empty() && queued->front().id == id;
}

absl::StatusOr<Expected> ExpectedObjects(NamespaceStore& ns, const RemoteCopies& copies, BlobId id,
                                         const BlobRecord& record) {
  Expected expected;
  expected.tier = copies.tier != nullptr && record.location != BlobLocation::kLocal;
  if (copies.replica != nullptr) {
    absl::StatusOr<bool> queued = QueuedForReplication(ns, id);
    if (!queued.ok()) return queued.status();
    expected.replica = !*queued;
  }
  if (copies.tier_is_replica && expected.tier) expected.replica = false;  // one object
  return expected;
}

// The blob's bytes from a copy other than `bad`, checked against the
// namespace's checksum; NotFound when no good copy is left.
absl::StatusOr<std::string> GoodCopy(const RemoteCopies& copies, const BlobRecord& record,
                                     BlobId id, RemoteBlobStore* bad, bool replica_holds_it,
                                     std::vector<std::string>* tried) {
  auto checked = [&](absl::StatusOr<std::string> data, const char* where)
      -> absl::StatusOr<std::string> {
    if (data.ok() && Crc32c(*data) == record.crc32c && data->size() == record.length) return data;
    tried->push_back(absl::StrCat(where, ": ",
                                  data.ok() ? "does not match its checksum"
                                            : std::string(data.status().message())));
    return FsError(FsErrorKind::kIo, "bad copy");
  };
  if (copies.local != nullptr && !InRemoteTierOnly(record.location)) {
    auto data = checked(copies.local->Read(id, 0, record.length), "local disks");
    if (data.ok()) return data;
  }
  if (copies.tier != nullptr && copies.tier != bad && record.location != BlobLocation::kLocal &&
      !copies.tier_is_replica) {
    auto data = checked(copies.tier->ReadExpecting(id, 0, record.length, record.length,
                                                   record.crc32c),
                        "remote tier");
    if (data.ok()) return data;
  }
  if (copies.replica != nullptr && copies.replica != bad && replica_holds_it &&
      !copies.tier_is_replica) {
    auto data = checked(copies.replica->ReadExpecting(id, 0, record.length, record.length,
                                                      record.crc32c),
                        "replica");
    if (data.ok()) return data;
  }
  return absl::NotFoundError("no good copy");
}

}  // namespace

void RemoteScrubReport::Add(const RemoteScrubReport& step) {
  objects_checked += step.objects_checked;
  bytes_read += step.bytes_read;
  replica_bad += step.replica_bad;
  replica_repaired += step.replica_repaired;
  tier_bad += step.tier_bad;
  tier_repaired += step.tier_repaired;
  lost += step.lost;
  unreachable = step.unreachable;  // only the latest step says whether it answers now
  seconds += step.seconds;
  finished = step.finished;
  for (const std::string& p : step.problems) {
    if (problems.size() < kMaxProblems) problems.push_back(p);
  }
}

absl::StatusOr<RemoteScrubReport> ScrubRemoteCopies(NamespaceStore& ns, const RemoteCopies& copies,
                                                    const ScrubOptions& options,
                                                    const RemoteScrubProgress& progress) {
  RemoteScrubReport report;
  Clock* const clock = options.clock;
  const double start = clock->MonotonicSeconds();
  double last_progress = start;
  uint64_t paced_bytes = 0;
  auto elapsed = [&] { return clock->MonotonicSeconds() - start; };
  auto note = [&report](std::string problem) {
    if (report.problems.size() < kMaxProblems) report.problems.push_back(std::move(problem));
  };
  auto should_stop = [&] { return options.should_stop && options.should_stop(); };
  if (copies.replica == nullptr && copies.tier == nullptr) {
    report.finished = true;
    return report;
  }
  BlobId from = options.start;
  for (;;) {
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> batch = ns.ListBlobs(from, kBatch);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const auto& [id, listed] : *batch) {
      if (should_stop() || (options.max_seconds > 0 && elapsed() >= options.max_seconds)) {
        report.seconds = elapsed();
        if (options.checkpoint) options.checkpoint(id);
        return report;
      }
      if (listed.refcount == 0) {
        from = id + 1;
        continue;  // awaiting garbage collection
      }
      absl::StatusOr<Expected> expected = ExpectedObjects(ns, copies, id, listed);
      if (!expected.ok()) return expected.status();
      bool stop_here = false;
      auto check_one = [&](RemoteBlobStore* store, bool is_replica) {
        const char* what = is_replica                ? "replica"
                           : copies.tier_is_replica ? "remote tier (and replica)"
                                                    : "remote tier";
        RemoteBlobStore::ObjectCheck check = store->CheckObject(id, listed.length, listed.crc32c);
        report.bytes_read += check.bytes_read;
        paced_bytes += std::max(check.bytes_read, kMinBytesPerObject);
        if (check.state == ObjectState::kGood) {
          report.objects_checked++;
          return;
        }
        if (check.state == ObjectState::kUnreachable) {
          report.unreachable++;
          note(absl::StrCat("the ", what, " did not answer: ", check.status.message(),
                            "; the pass goes on from blob ", id, " later"));
          stop_here = true;
          return;
        }
        // A move, a delete or a replication since the listing explains a
        // missing object; only damage that is still there counts.
        absl::StatusOr<BlobRecord> now = ns.GetBlob(id);
        if (!now.ok() && IsNotFoundError(now.status())) return;
        if (!now.ok()) {
          note(absl::StrCat("blob ", id, ": ", now.status().message()));
          return;
        }
        absl::StatusOr<Expected> still = ExpectedObjects(ns, copies, id, *now);
        if (now->refcount == 0 || now->location != listed.location || !still.ok() ||
            (is_replica ? !still->replica : !still->tier)) {
          return;
        }
        report.objects_checked++;
        (is_replica ? report.replica_bad : report.tier_bad)++;
        std::string problem = std::string(check.status.message());
        if (!options.repair) {
          note(problem);
          return;
        }
        if (is_replica && copies.owner != nullptr) {
          if (absl::Status owned = copies.owner->Check(); !owned.ok()) {
            note(absl::StrCat(problem, "; not repaired: ", owned.message()));
            return;
          }
        }
        std::vector<std::string> tried;
        absl::StatusOr<std::string> good =
            GoodCopy(copies, *now, id, store, expected->replica, &tried);
        if (!good.ok()) {
          report.lost++;
          std::string why = absl::StrCat(problem, "; no good copy to repair it from",
                                         tried.empty() ? "" : " (", absl::StrJoin(tried, "; "),
                                         tried.empty() ? "" : ")");
          LogError("remote scrub: %s", why);
          note(why);
          return;
        }
        absl::Status rewritten = store->Put(id, *good).status();
        if (rewritten.ok()) rewritten = store->Verify(id, now->length, now->crc32c);
        if (!rewritten.ok()) {
          note(absl::StrCat(problem, "; rewriting it failed: ", rewritten.message()));
          return;
        }
        (is_replica ? report.replica_repaired : report.tier_repaired)++;
        LogWarning("remote scrub: %s; rewritten from a good copy", problem);
        note(absl::StrCat(problem, "; repaired"));
      };
      if (expected->replica) check_one(copies.replica, /*is_replica=*/true);
      if (!stop_here && expected->tier) check_one(copies.tier, /*is_replica=*/false);
      if (stop_here) {
        report.seconds = elapsed();
        if (options.checkpoint) options.checkpoint(id);
        return report;
      }
      from = id + 1;
      PaceReads(clock, start, paced_bytes, options.bytes_per_second, options.should_stop);
      if (progress && clock->MonotonicSeconds() - last_progress >= 0.5) {
        last_progress = clock->MonotonicSeconds();
        report.seconds = elapsed();
        progress(report);
      }
    }
    if (options.checkpoint) options.checkpoint(from);
  }
  report.seconds = elapsed();
  report.finished = true;
  if (progress) progress(report);
  return report;
}

RemoteScrubber::RemoteScrubber(NamespaceStore& ns, RemoteCopies copies, Options options)
    : ns_(ns), copies_(copies), options_(options) {
  if (options_.interval_seconds > 0) thread_ = std::thread([this] { Loop(); });
}

RemoteScrubber::~RemoteScrubber() {
  stop_ = true;
  stopped_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<RemoteScrubReport> RemoteScrubber::RunPass(ScrubOptions options,
                                                          const RemoteScrubProgress& progress) {
  pause_++;
  absl::MutexLock lock(&exclusive_);
  pause_--;
  options.clock = options_.clock;
  std::function<bool()> caller_stop = options.should_stop;
  options.should_stop = [this, caller_stop] {
    return stop_.load() || (caller_stop && caller_stop());
  };
  absl::StatusOr<RemoteScrubReport> report = ScrubRemoteCopies(ns_, copies_, options, progress);
  if (report.ok() && report->finished && options.start == 0) {
    // Status shows what the latest whole pass found, whoever ran it.
    RecordCompletePass(*report);
  }
  return report;
}

void RemoteScrubber::Loop() {
  while (!stopped_.WaitForNotificationWithTimeout(absl::Milliseconds(options_.tick_millis))) {
    if (pause_ == 0) Step();
  }
}

void RemoteScrubber::Step() {
  int64_t cursor = VolumeMetaNumber(ns_, kRemoteScrubCursorKey);
  int64_t started = VolumeMetaNumber(ns_, kRemoteScrubStartedKey);
  int64_t finished = VolumeMetaNumber(ns_, kRemoteScrubFinishedKey);
  const int64_t now = options_.clock->NowSeconds();
  const bool in_pass = cursor != 0 || started > finished;
  if (!in_pass && now - started < options_.interval_seconds) return;
  absl::MutexLock lock(&exclusive_);
  if (!in_pass) {
    ns_.SetVolumeMeta(kRemoteScrubStartedKey, absl::StrCat(now)).IgnoreError();
    absl::MutexLock progress(&mu_);
    pass_ = RemoteScrubReport();
  }
  {
    absl::MutexLock progress(&mu_);
    running_ = true;
  }
  ScrubOptions scrub;
  scrub.clock = options_.clock;
  scrub.start = static_cast<BlobId>(cursor);
  scrub.bytes_per_second = options_.bytes_per_second;
  scrub.max_seconds = std::max<double>(1.0, options_.tick_millis / 1000.0);
  scrub.should_stop = [this] { return stop_.load() || pause_.load() > 0; };
  scrub.checkpoint = [this](BlobId next) {
    ns_.SetVolumeMeta(kRemoteScrubCursorKey, absl::StrCat(next)).IgnoreError();
  };
  absl::StatusOr<RemoteScrubReport> step = ScrubRemoteCopies(ns_, copies_, scrub);
  if (!step.ok()) {
    LogWarning("remote scrub: %s", step.status().ToString());
    return;
  }
  RemoteScrubReport whole;
  {
    absl::MutexLock progress(&mu_);
    pass_.Add(*step);
    if (!step->finished) return;
    running_ = false;
    whole = pass_;
  }
  ns_.SetVolumeMeta(kRemoteScrubCursorKey, "0").IgnoreError();
  RecordCompletePass(whole);
}

void RemoteScrubber::RecordCompletePass(const RemoteScrubReport& report) {
  ns_.SetVolumeMeta(kRemoteScrubFinishedKey, absl::StrCat(options_.clock->NowSeconds()))
      .IgnoreError();
  ns_.SetVolumeMeta(kLastResultKey,
                    absl::StrCat(report.objects_checked, " ", report.replica_bad, " ",
                                 report.replica_repaired, " ", report.tier_bad, " ",
                                 report.tier_repaired, " ", report.lost))
      .IgnoreError();
  LogInfo("remote scrub finished: %d objects, %d bad replica objects (%d repaired), "
          "%d bad tier objects (%d repaired), %d lost",
          report.objects_checked, report.replica_bad, report.replica_repaired, report.tier_bad,
          report.tier_repaired, report.lost);
  absl::MutexLock progress(&mu_);
  last_complete_ = report;
}

RemoteScrubStatus RecordedRemoteScrub(NamespaceStore& ns) {
  RemoteScrubStatus status;
  status.last_started = VolumeMetaNumber(ns, kRemoteScrubStartedKey);
  status.last_finished = VolumeMetaNumber(ns, kRemoteScrubFinishedKey);
  absl::StatusOr<std::optional<std::string>> saved = ns.GetVolumeMeta(kLastResultKey);
  if (!saved.ok() || !saved->has_value()) return status;
  std::vector<uint64_t> n;
  for (absl::string_view word : absl::StrSplit(**saved, ' ')) {
    uint64_t v = 0;
    if (absl::SimpleAtoi(word, &v)) n.push_back(v);
  }
  if (n.size() == 6) {
    RemoteScrubReport& r = status.last_complete;
    r.objects_checked = n[0];
    r.replica_bad = n[1];
    r.replica_repaired = n[2];
    r.tier_bad = n[3];
    r.tier_repaired = n[4];
    r.lost = n[5];
    r.finished = true;
  }
  return status;
}

RemoteScrubStatus RemoteScrubber::GetStatus() {
  RemoteScrubStatus status = RecordedRemoteScrub(ns_);
  status.interval_seconds = options_.interval_seconds;
  status.bytes_per_second = options_.bytes_per_second;
  status.overdue = status.last_started > status.last_finished && options_.interval_seconds > 0 &&
                   options_.clock->NowSeconds() - status.last_started > options_.interval_seconds;
  absl::MutexLock lock(&mu_);
  status.running = running_;
  status.pass = pass_;
  // This run's own record, else the one a previous run of the daemon kept.
  if (last_complete_.finished) status.last_complete = last_complete_;
  return status;
}

}  // namespace cairn

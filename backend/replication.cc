#include "backend/replication.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "absl/time/clock.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/base/json.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"

namespace cairn {

std::string NewReplicaOwnerToken() {
  std::random_device random;
  return absl::StrFormat("%08x%08x", random(), random());
}

absl::StatusOr<std::string> ReplicaOwnerToken(NamespaceStore& ns) {
  absl::StatusOr<std::optional<std::string>> stored = ns.GetVolumeMeta(kReplicaOwnerKey);
  if (!stored.ok()) return stored.status();
  if (stored->has_value() && !(*stored)->empty()) return **stored;
  std::string token = NewReplicaOwnerToken();
  if (absl::Status s = ns.SetVolumeMeta(kReplicaOwnerKey, token); !s.ok()) return s;
  return token;
}

ReplicaOwner::ReplicaOwner(s3::S3Client& client, std::string volume_root, std::string token)
    : client_(client), key_(volume_root + "owner"), token_(std::move(token)) {}

absl::Status ReplicaOwner::Claim() {
  char host[256] = "";
  gethostname(host, sizeof(host) - 1);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  std::string record = absl::StrCat(token_, " ", host, " ", now, "\n");
  if (absl::Status s = client_.PutObject(key_, record, Crc32c(record)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  checked_until_ = now + 60;
  return absl::OkStatus();
}

absl::Status ReplicaOwner::Check(bool fresh) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (!fresh) {
    absl::MutexLock lock(&mu_);
    if (now < checked_until_) return absl::OkStatus();
  }
  absl::StatusOr<std::string> record = client_.GetObject(key_);
  if (!record.ok() && IsNotFoundError(record.status())) return Claim();
  if (!record.ok()) return record.status();
  std::vector<std::string> words = absl::StrSplit(absl::StripSuffix(*record, "\n"), ' ');
  if (words[0] != token_) {
    std::string who = words.size() >= 3 ? absl::StrCat(" on host ", words[1], " since ",
                                                       absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                                                                        absl::FromUnixSeconds(
                                                                            std::atoll(words[2].c_str())),
                                                                        absl::UTCTimeZone()))
                                            : "";
    return FsError(FsErrorKind::kBusy,
                   absl::StrCat("another copy of this volume", who, " writes the replica ",
                                "(a volume restored with --take-over?); this one no longer "
                                "replicates nor backs up. If this copy is the one to keep and the "
                                "other is gone for good: cairn backup claim VOLUME_DIR"));
  }
  absl::MutexLock lock(&mu_);
  checked_until_ = now + 60;
  return absl::OkStatus();
}

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
  last_error_time_ = absl::ToUnixSeconds(absl::Now());
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
  last_pass_time_ = absl::ToUnixSeconds(absl::Now());
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

std::string Replicator::StatsJson() {
  // Counting stops at 100,000 entries: the figure is for a person, and a
  // longer queue is "more than that".
  absl::StatusOr<ReplicationBacklog> backlog = ns_.GetReplicationBacklog(100000);
  ReplicationBacklog b = backlog.ok() ? *backlog : ReplicationBacklog{};
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  absl::MutexLock lock(&mu_);
  return absl::StrFormat(
      "{\"queued_blobs\": %d, \"queued_bytes\": %d, \"queue_counted_all\": %s, "
      "\"lag_seconds\": %d, \"copied\": %d, \"copied_bytes\": %d, \"errors\": %d, "
      "\"last_error\": %s, \"last_error_time\": %d, \"last_empty_time\": %d, "
      "\"healthy\": %s}",
      b.blobs, b.bytes, b.counted_all ? "true" : "false",
      b.oldest_sec > 0 ? std::max<int64_t>(0, now - b.oldest_sec) : 0, copied_.load(),
      copied_bytes_.load(), errors_.load(), JsonString(last_error_), last_error_time_,
      last_pass_time_, last_error_time_ <= last_pass_time_ ? "true" : "false");
}

}  // namespace cairn

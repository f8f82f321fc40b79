#include "backend/tiering.h"

#include <cstdlib>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/base/json.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"
#include "backend/s3/credentials.h"

namespace cairn {

absl::StatusOr<s3::S3Options> TierS3Options(const TierConfig& tier,
                                            const std::string& config_path) {
  absl::StatusOr<s3::S3Options> options = S3TargetOptions(tier, config_path);
  if (!options.ok()) return options;
  // A read waits for the remote at most this long in all, retries included.
  options->max_retry_seconds = static_cast<double>(tier.read_timeout_seconds);
  return options;
}

absl::StatusOr<s3::S3Options> S3TargetOptions(const S3Target& tier,
                                              const std::string& config_path) {
  s3::S3Options options;
  options.endpoint = tier.endpoint;
  options.bucket = tier.bucket;
  options.region = tier.region;
  options.ca_file = tier.ca_file;
  options.storage_class = tier.storage_class;
  options.path_style = tier.addressing == "path" ||
                       (tier.addressing == "auto" &&
                        tier.endpoint.find("amazonaws.com") == std::string::npos);
  s3::CredentialSources sources;
  if (!tier.secret_access_key.empty() || !tier.access_key_id.empty()) {
    sources.config = s3::Credentials{tier.access_key_id, tier.secret_access_key, ""};
  }
  sources.config_path = config_path;
  sources.credentials_file = tier.credentials_file;
  sources.profile = tier.profile;
  absl::StatusOr<s3::Credentials> credentials = s3::ResolveCredentials(sources, ::getenv);
  if (!credentials.ok()) return credentials.status();
  options.credentials = *credentials;
  return options;
}

absl::Status ProbeRemote(const TierConfig& tier, const std::string& config_path,
                         const std::string& volume_id, int seconds) {
  absl::StatusOr<s3::S3Options> options = TierS3Options(tier, config_path);
  if (!options.ok()) return options.status();
  options->max_attempts = 1;
  options->max_retry_seconds = seconds;
  options->connect_timeout_ms = seconds * 1000;
  options->stall_seconds = seconds;
  absl::StatusOr<std::unique_ptr<s3::S3Client>> client = s3::S3Client::Create(*options);
  if (!client.ok()) return client.status();
  // A prefix no object has: the answer is short, and proves the bucket
  // exists and these credentials may list it.
  return (*client)->ListObjects(absl::StrCat(tier.prefix, volume_id, "/probe-")).status();
}

TieredBlobStore::TieredBlobStore(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote,
                                 DiskBlockCache* block_cache)
    : ns_(ns), local_(local), remote_(remote), block_cache_(block_cache) {}

absl::StatusOr<BlobInfo> TieredBlobStore::Put(BlobId id, std::string_view data) {
  return local_.Put(id, data);
}

absl::StatusOr<std::string> TieredBlobStore::ReadRemote(BlobId id,
                                                        const std::optional<BlobRecord>& record,
                                                        uint64_t offset, uint64_t length) {
  auto fetch = [&](uint64_t at, uint64_t n) -> absl::StatusOr<std::string> {
    remote_reads_++;
    absl::StatusOr<std::string> data =
        record ? remote_.ReadExpecting(id, at, n, record->length, record->crc32c)
               : remote_.Read(id, at, n);
    if (!data.ok()) {
      remote_read_errors_++;
      LogError("reading blob %d from the remote tier failed: %s", id, data.status().message());
      return FsError(GetFsErrorKind(data.status()) == FsErrorKind::kInvalid ? FsErrorKind::kInvalid
                                                                            : FsErrorKind::kIo,
                     std::string(data.status().message()));
    }
    remote_read_bytes_ += data->size();
    return data;
  };
  if (block_cache_ == nullptr || !record) return fetch(offset, length);
  if (offset > record->length || length > record->length - offset) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("read past the end of blob ", id));
  }
  if (length == 0) return std::string();
  // The blocks under the range: cached ones from the disk, each run of
  // missing ones with one GET, then cached for the next reader.
  const uint64_t first = offset / kRemoteBlockBytes;
  const uint64_t last = (offset + length - 1) / kRemoteBlockBytes;
  std::vector<std::optional<std::string>> blocks(last - first + 1);
  for (uint64_t b = first; b <= last; ++b) {
    blocks[b - first] = block_cache_->Get(id, b, record->crc32c);
  }
  for (uint64_t b = first; b <= last;) {
    if (blocks[b - first]) {
      ++b;
      continue;
    }
    uint64_t run_end = b;
    while (run_end + 1 <= last && !blocks[run_end + 1 - first]) ++run_end;
    const uint64_t start = b * kRemoteBlockBytes;
    const uint64_t stop = std::min((run_end + 1) * kRemoteBlockBytes, record->length);
    absl::StatusOr<std::string> bytes = fetch(start, stop - start);
    if (!bytes.ok()) return bytes.status();
    for (uint64_t k = b; k <= run_end; ++k) {
      std::string block = bytes->substr((k - b) * kRemoteBlockBytes, kRemoteBlockBytes);
      if (absl::Status s = block_cache_->Put(id, k, block, record->crc32c); !s.ok()) {
        // A full cache disk slows reads down; it never fails them.
        LogDebug("caching block %d of remote blob %d: %s", k, id, s.message());
      }
      blocks[k - first] = std::move(block);
    }
    b = run_end + 1;
  }
  std::string out;
  out.reserve(length);
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t block_start = b * kRemoteBlockBytes;
    const uint64_t from = std::max(offset, block_start) - block_start;
    const uint64_t to = std::min(offset + length, block_start + blocks[b - first]->size()) -
                        block_start;
    if (from > to) {
      return FsError(FsErrorKind::kIo, absl::StrCat("cached block ", b, " of blob ", id,
                                                    " is shorter than the blob"));
    }
    out.append(*blocks[b - first], from, to - from);
  }
  return out;
}

absl::StatusOr<std::string> TieredBlobStore::Read(BlobId id, uint64_t offset, uint64_t length) {
  std::optional<BlobRecord> record;
  if (absl::StatusOr<BlobRecord> found = ns_.GetBlob(id); found.ok()) record = *found;
  BlobLocation location = record ? record->location : BlobLocation::kLocal;
  if (InRemoteTierOnly(location)) return ReadRemote(id, record, offset, length);
  absl::StatusOr<std::string> local = local_.Read(id, offset, length);
  if (local.ok() || GetFsErrorKind(local.status()) == FsErrorKind::kInvalid) return local;
  // The blob may have moved out since we looked, or its local copy is
  // damaged beyond repair while a remote copy exists.
  absl::StatusOr<BlobRecord> again = ns_.GetBlob(id);
  if (again.ok() && again->location != BlobLocation::kLocal) {
    local_fallbacks_++;
    return ReadRemote(id, *again, offset, length);
  }
  return local;
}

absl::Status TieredBlobStore::Delete(BlobId id) {
  // Garbage collection calls this while the record still exists (it forgets
  // the record afterwards), so the record says whether a remote copy exists.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  bool remote_copy = record.ok() && record->location != BlobLocation::kLocal;
  if (absl::Status s = local_.Delete(id); !s.ok()) return s;
  if (block_cache_ != nullptr && record.ok()) {
    block_cache_->ForgetBlob(id, (record->length + kRemoteBlockBytes - 1) / kRemoteBlockBytes);
  }
  if (remote_copy) return remote_.Delete(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobId>> TieredBlobStore::ListIds(BlobId from) {
  return local_.ListIds(from);
}

absl::StatusOr<StoreUsage> TieredBlobStore::Usage() { return local_.Usage(); }

TieredBlobStore::Stats TieredBlobStore::GetStats() {
  Stats stats{remote_reads_, remote_read_bytes_, remote_read_errors_, local_fallbacks_};
  if (block_cache_ != nullptr) {
    DiskBlockCache::Counters cache = block_cache_->GetCounters();
    stats.cache_hits = cache.hits;
    stats.cache_bytes = cache.bytes;
  }
  return stats;
}

std::string TieredBlobStore::StatsJsonFields() {
  Stats stats = GetStats();
  return absl::StrFormat(
      "\"remote_reads\": %d, \"remote_read_bytes\": %d, \"remote_read_errors\": %d, "
      "\"local_fallbacks\": %d, \"block_cache_hits\": %d, \"block_cache_bytes\": %d",
      stats.remote_reads, stats.remote_read_bytes, stats.remote_read_errors,
      stats.local_fallbacks, stats.cache_hits, stats.cache_bytes);
}

TierMover::TierMover(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote)
    : ns_(ns), local_(local), remote_(remote) {}

absl::Status TierMover::MoveOut(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) return record.status();
  if (record->location == BlobLocation::kRemote) return absl::OkStatus();
  auto fail = [&](absl::Status s) {
    errors_++;
    return s;
  };
  if (record->location == BlobLocation::kLocal) {
    absl::StatusOr<std::string> data = local_.Read(id, 0, record->length);
    if (!data.ok()) return fail(data.status());
    if (Crc32c(*data) != record->crc32c) {
      return fail(FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, " does not match its "
                                                         "checksum; not moved")));
    }
    if (absl::StatusOr<BlobInfo> put = remote_.Put(id, *data); !put.ok()) return fail(put.status());
    if (absl::Status s = remote_.Verify(id, record->length, record->crc32c); !s.ok()) {
      return fail(s);
    }
    moved_out_bytes_ += record->length;
  }
  // From here the remote copy is the one that counts; the commit is made
  // durable before any local byte is freed.
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kFreeing); !s.ok()) {
    // Deleted meanwhile (garbage collection): the object just uploaded is
    // referenced by nothing.
    if (IsNotFoundError(s)) remote_.Delete(id).IgnoreError();
    return fail(s);
  }
  if (absl::Status s = ns_.Sync(); !s.ok()) return fail(s);
  if (absl::Status s = local_.Delete(id); !s.ok()) return fail(s);
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote); !s.ok() && !IsNotFoundError(s)) {
    return fail(s);
  }
  moved_out_++;
  return absl::OkStatus();
}

absl::Status TierMover::MoveIn(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) return record.status();
  if (record->location == BlobLocation::kLocal || record->location == BlobLocation::kBoth) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> data = remote_.Read(id, 0, record->length);
  if (!data.ok() || Crc32c(*data) != record->crc32c) {
    errors_++;
    return data.ok() ? FsError(FsErrorKind::kIo,
                               absl::StrCat("remote copy of blob ", id, " does not match its "
                                            "checksum"))
                     : data.status();
  }
  // kFreeing: some local shards may be left; Put replaces them all.
  if (absl::StatusOr<BlobInfo> put = local_.Put(id, *data); !put.ok()) {
    errors_++;
    return put.status();
  }
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kBoth); !s.ok()) {
    errors_++;
    return s;
  }
  moved_in_++;
  moved_in_bytes_ += record->length;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TierMover::FinishFreeing() {
  uint64_t finished = 0;
  absl::Status scanned = ForEachBlobRecord(ns_, [&](BlobId id, const BlobRecord& record) {
    if (record.location != BlobLocation::kFreeing) return absl::OkStatus();
    if (absl::Status s = local_.Delete(id); !s.ok()) return s;
    absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote);
    if (!s.ok() && !IsNotFoundError(s)) return s;
    finished++;
    return absl::OkStatus();
  });
  if (!scanned.ok()) return scanned;
  return finished;
}

TierMover::Stats TierMover::GetStats() {
  return Stats{moved_out_, moved_out_bytes_, moved_in_, moved_in_bytes_, errors_};
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
  const absl::Time start = absl::Now();
  const int64_t now = absl::ToUnixSeconds(start);
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
          return IsNotFoundError(s) ? absl::OkStatus() : s;  // deleted meanwhile
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
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
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
        // Gone meanwhile: the file was overwritten or deleted under the move.
        return IsNotFoundError(s) ? absl::OkStatus() : s;
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

std::string TieringService::StatsJson() {
  TierMover::Stats moves = mover_.GetStats();
  absl::MutexLock lock(&mu_);
  return absl::StrFormat(
      "{\"endpoint\": %s, \"bucket\": %s, \"local_bytes\": %d, \"remote_bytes\": %d, "
      "\"candidates\": %d, \"waiting\": %d, \"waiting_bytes\": %d, "
      "\"last_pass_moved_bytes\": %d, \"moved_out\": %d, \"moved_out_bytes\": %d, \"moved_in\": %d, "
      "\"moved_in_bytes\": %d, \"errors\": %d, \"last_pass\": %d, \"last_pass_seconds\": %.3f, "
      "\"last_error\": %s, \"last_error_time\": %d, \"remote_healthy\": %s}",
      JsonString(config_.endpoint), JsonString(config_.bucket), last_.local_bytes,
      last_.remote_bytes, last_.candidates, last_.waiting, last_.waiting_bytes,
      last_.moved_bytes,
      moves.moved_out, moves.moved_out_bytes, moves.moved_in, moves.moved_in_bytes, moves.errors,
      last_pass_time_, last_.seconds, JsonString(last_error_), last_error_time_,
      last_error_time_ < last_pass_time_ || last_error_.empty() ? "true" : "false");
}

absl::StatusOr<UnclaimedRemote> SweepUnclaimedRemote(NamespaceStore& ns, RemoteBlobStore& remote,
                                                     s3::S3Client& client, bool remove,
                                                     std::vector<std::string>* lines,
                                                     size_t max_lines) {
  UnclaimedRemote found;
  absl::StatusOr<std::vector<BlobId>> ids = remote.ListIds(0);
  if (!ids.ok()) return ids.status();
  std::vector<std::string> keys;
  for (BlobId id : *ids) {
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    if (record.ok() && record->location != BlobLocation::kLocal) continue;
    if (!record.ok() && !IsNotFoundError(record.status())) return record.status();
    keys.push_back(remote.KeyOf(id));
    if (lines->size() < max_lines) {
      lines->push_back(absl::StrCat("remote object ", keys.back(), ": ",
                                    record.ok() ? "an upload whose move was never committed"
                                                : "its blob no longer exists"));
    }
  }
  found.objects = keys.size();
  if (remove && !keys.empty()) {
    if (absl::Status s = client.DeleteObjects(keys); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<s3::MultipartUpload>> uploads =
      client.ListMultipartUploads(remote.prefix());
  if (!uploads.ok()) {
    // s3rver and some other servers do not implement the listing; nothing
    // of ours uses multipart for blobs (they go up in one PUT) anyway.
    if (absl::StrContains(uploads.status().message(), "NotImplemented")) {
      found.uploads_listed = false;
      return found;
    }
    return uploads.status();
  }
  for (const s3::MultipartUpload& upload : *uploads) {
    found.uploads++;
    if (lines->size() < max_lines) {
      lines->push_back(absl::StrCat("multipart upload ", upload.upload_id, " of ", upload.key,
                                    " was never completed"));
    }
    if (remove) {
      if (absl::Status s = client.AbortMultipartUpload(upload.key, upload.upload_id); !s.ok()) {
        return s;
      }
    }
  }
  return found;
}

}  // namespace cairn

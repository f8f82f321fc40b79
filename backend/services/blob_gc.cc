#include "backend/services/blob_gc.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {

BlobCollector::BlobCollector(NamespaceStore& ns, BlobStore& blobs, Options options)
    : ns_(ns), blobs_(blobs), options_(std::move(options)) {
  if (options_.background) thread_ = std::thread([this] { Loop(); });
}

BlobCollector::~BlobCollector() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::Status BlobCollector::CollectNow() {
  for (;;) {
    absl::StatusOr<std::vector<BlobId>> ids = ns_.CollectableBlobs(options_.batch);
    if (!ids.ok()) return ids.status();
    if (ids->empty()) return absl::OkStatus();
    std::vector<BlobId> deleted;
    for (BlobId id : *ids) {
      absl::Status s = blobs_.Delete(id);
      if (!s.ok()) {
        LogWarning("could not delete blob %d: %s", id, s.ToString());
        continue;
      }
      if (options_.on_deleted) options_.on_deleted(id);
      deleted.push_back(id);
    }
    if (absl::Status s = ns_.ForgetBlobs(deleted); !s.ok()) return s;
    collected_ += deleted.size();
    if (deleted.size() < ids->size()) return absl::OkStatus();  // retry later
  }
}

absl::StatusOr<uint64_t> BlobCollector::CompactNow() {
  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> candidates =
      ns_.CompactionCandidates(options_.batch, options_.compact_max_live_ratio);
  if (!candidates.ok()) return candidates.status();
  // Per file, the live parts of all its mostly-dead blobs are packed
  // together into as few new blobs as they fill.
  std::map<InodeId, std::vector<BlobId>> by_owner;
  for (const auto& [id, record] : *candidates) by_owner[record.owner].push_back(id);
  uint64_t rewritten = 0;
  for (const auto& [owner, ids] : by_owner) {
    absl::StatusOr<std::vector<Extent>> extents = ns_.GetExtents(owner, 0, kMaxFileBytes);
    if (absl::IsNotFound(extents.status())) continue;  // deleted: GC frees them
    if (!extents.ok()) return extents.status();
    const absl::flat_hash_set<BlobId> wanted(ids.begin(), ids.end());
    std::string packed;
    std::vector<Relocation> moves;
    absl::flat_hash_set<BlobId> emptied;
    auto store = [&]() -> absl::Status {
      if (moves.empty()) return absl::OkStatus();
      absl::StatusOr<BlobId> new_id = ns_.AllocateBlobIds(1);
      if (!new_id.ok()) return new_id.status();
      for (Relocation& move : moves) move.new_blob = *new_id;
      absl::StatusOr<BlobInfo> info = blobs_.Put(*new_id, packed);
      if (!info.ok()) return info.status();
      NewBlob blob{*new_id, info->length, info->crc32c};
      if (absl::Status s = ns_.RelocateExtents(owner, {&blob, 1}, moves); !s.ok()) return s;
      packed.clear();
      moves.clear();
      return absl::OkStatus();
    };
    for (const Extent& extent : *extents) {
      if (extent.blob_id == kNoBlob || !wanted.contains(extent.blob_id)) continue;
      if (packed.size() + extent.length > kMaxBlobBytes) {
        if (absl::Status s = store(); !s.ok()) return s;
      }
      absl::StatusOr<std::string> piece =
          blobs_.Read(extent.blob_id, extent.blob_offset, extent.length);
      if (!piece.ok()) return piece.status();
      moves.push_back(Relocation{extent.file_offset, extent.length, extent.blob_id,
                                 extent.blob_offset, kNoBlob, packed.size()});
      packed += *piece;
      emptied.insert(extent.blob_id);
    }
    if (absl::Status s = store(); !s.ok()) return s;
    rewritten += emptied.size();
  }
  compacted_ += rewritten;
  return rewritten;
}

BlobCollector::Stats BlobCollector::GetStats() const {
  return Stats{collected_.load(), compacted_.load()};
}

void BlobCollector::Loop() {
  int64_t last_collect = 0;
  int64_t last_compaction = options_.clock->NowSeconds();
  while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    // On a shared volume one daemon, the leader, collects for every host;
    // asked each round, since leadership can move.
    if (!ns_.IsLeader()) continue;
    const int64_t now = options_.clock->NowSeconds();
    if (now - last_compaction >= options_.compact_interval_seconds) {
      last_compaction = now;
      absl::StatusOr<uint64_t> compacted = CompactNow();
      if (!compacted.ok()) LogWarning("compaction failed: %s", compacted.status().ToString());
    }
    if (now - last_collect >= options_.collect_interval_seconds) {
      last_collect = now;
      absl::Status s = CollectNow();
      if (!s.ok()) LogWarning("garbage collection failed: %s", s.ToString());
    }
  }
}

absl::StatusOr<uint64_t> SweepOrphanBlobs(NamespaceStore& ns, BlobStore& blobs) {
  constexpr char kSweepFloorKey[] = "blob_sweep_floor";
  absl::StatusOr<std::optional<std::string>> stored = ns.GetVolumeMeta(kSweepFloorKey);
  if (!stored.ok()) return stored.status();
  uint64_t floor = 0;
  if (stored->has_value() && !absl::SimpleAtoi(**stored, &floor)) floor = 0;
  // Everything allocated so far; no blob is being stored while we sweep.
  absl::StatusOr<BlobId> next = ns.AllocateBlobIds(0);
  if (!next.ok()) return next.status();
  absl::StatusOr<std::vector<BlobId>> ids = blobs.ListIds(floor);
  if (!ids.ok()) return ids.status();
  uint64_t deleted = 0;
  for (BlobId id : *ids) {
    if (id >= *next) continue;  // not ours to judge: never allocated
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    if (record.ok()) continue;
    if (!IsNotFoundError(record.status())) return record.status();
    if (absl::Status s = blobs.Delete(id); !s.ok()) return s;
    deleted++;
  }
  if (deleted > 0) {
    LogInfo("deleted %d blob files that a crash left uncommitted", deleted);
  }
  if (absl::Status s = ns.SetVolumeMeta(kSweepFloorKey, absl::StrCat(*next)); !s.ok()) {
    return s;
  }
  return deleted;
}

}  // namespace cairn

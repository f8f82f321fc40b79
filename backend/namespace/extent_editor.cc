#include "backend/namespace/extent_editor.h"

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

uint64_t End(const Extent& e) { return e.file_offset + e.length; }

// The part of `e` in [lo, hi) (which must overlap it).
Extent Slice(const Extent& e, uint64_t lo, uint64_t hi) {
  uint64_t start = std::max(lo, e.file_offset);
  uint64_t end = std::min(hi, End(e));
  Extent out = e;
  out.file_offset = start;
  out.length = end - start;
  uint64_t skip = start - e.file_offset;
  if (e.blob_id == kNoBlob) {
    out.inline_data = e.inline_data.substr(skip, out.length);
  } else {
    out.blob_offset = e.blob_offset + skip;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Extent>> ReadExtents(KvReader& reader, InodeId ino, uint64_t lo,
                                                uint64_t hi, bool clip) {
  std::vector<Extent> out;
  if (lo >= hi) return out;
  const std::string prefix = InodeKey(ino);
  // Bounded at `hi` (or the file's last key): the scan never walks deleted
  // keys past the range.
  const std::string end = hi == UINT64_MAX ? InodeKey(ino + 1) : ExtentKey(ino, hi);
  absl::Status decoded = absl::OkStatus();
  // A damaged record ends the read with an error: read as "no extent
  // here", data that exists would read as zeros.
  KvScanFn add = [&](std::string_view key, std::string_view value) {
    absl::StatusOr<Extent> e = DecodeExtent(KeyNumberAt(key, 8), value);
    if (!e.ok()) {
      decoded = e.status();
      return false;
    }
    if (End(*e) <= lo) return true;
    out.push_back(clip ? Slice(*e, lo, hi) : std::move(*e));
    return true;
  };
  // The extent covering `lo` starts at or before it: the last one that
  // starts there or earlier comes first (from offset 0 the scan finds it).
  absl::Status scanned;
  if (lo == 0) {
    scanned = reader.Scan(KvSpace::kExtents, ExtentKey(ino, 0), end, add);
  } else {
    std::string after_lo = ExtentKey(ino, lo);
    after_lo.push_back('\0');
    scanned = reader.ScanFromLastBefore(KvSpace::kExtents, prefix, after_lo, end, add);
  }
  if (!scanned.ok()) return scanned;
  if (!decoded.ok()) return decoded;
  return out;
}

ExtentEditor::ExtentEditor(std::vector<Extent> original)
    : original_(std::move(original)) {
  for (const Extent& e : original_) current_[e.file_offset] = e;
}

void ExtentEditor::Cut(uint64_t lo, uint64_t hi) {
  if (lo >= hi) return;
  auto it = current_.upper_bound(lo);
  if (it != current_.begin()) --it;
  while (it != current_.end() && it->first < hi) {
    Extent e = it->second;
    if (End(e) <= lo) {
      ++it;
      continue;
    }
    it = current_.erase(it);
    if (e.file_offset < lo) {
      Extent left = Slice(e, e.file_offset, lo);
      current_[left.file_offset] = left;
    }
    if (End(e) > hi) {
      Extent right = Slice(e, hi, End(e));
      current_[right.file_offset] = right;
      break;
    }
  }
}

void ExtentEditor::Insert(const Extent& extent) {
  Cut(extent.file_offset, End(extent));
  current_[extent.file_offset] = extent;
}

int64_t ExtentEditor::Stage(InodeId ino, KvTxn& txn, ExtentChanges* changes) {
  // Only what changed is written: a commit touching a few ranges of a file
  // with many extents costs a few keys, not a rewrite of them all.
  int64_t delta = 0;
  absl::flat_hash_map<uint64_t, const Extent*> before;
  for (const Extent& e : original_) before[e.file_offset] = &e;
  for (const Extent& e : original_) {
    auto now = current_.find(e.file_offset);
    if (now != current_.end() && now->second == e) continue;  // unchanged
    if (now == current_.end()) txn.Delete(KvSpace::kExtents, ExtentKey(ino, e.file_offset));
    if (e.blob_id != kNoBlob) {
      changes->ref_deltas[e.blob_id]--;
      changes->byte_deltas[e.blob_id] -= static_cast<int64_t>(e.length);
    }
    delta -= static_cast<int64_t>(e.length);
  }
  for (const auto& [offset, e] : current_) {
    auto was = before.find(offset);
    if (was != before.end() && *was->second == e) continue;
    txn.Put(KvSpace::kExtents, ExtentKey(ino, offset), EncodeExtent(e));
    if (e.blob_id != kNoBlob) {
      changes->ref_deltas[e.blob_id]++;
      changes->byte_deltas[e.blob_id] += static_cast<int64_t>(e.length);
    }
    delta += static_cast<int64_t>(e.length);
  }
  return delta;
}

absl::Status ApplyBlobChanges(KvTxn& txn, const ExtentChanges& changes,
                              uint64_t gc_ready_sec) {
  std::map<BlobId, std::pair<int64_t, int64_t>> touched;  // refs, bytes
  for (const auto& [id, blob] : changes.new_blobs) touched[id].first += 0;
  for (const auto& [id, delta] : changes.ref_deltas) touched[id].first += delta;
  for (const auto& [id, delta] : changes.byte_deltas) touched[id].second += delta;
  for (const auto& [id, deltas] : touched) {
    const auto [delta, byte_delta] = deltas;
    if (delta == 0 && byte_delta == 0 && !changes.new_blobs.contains(id)) continue;
    StoredBlob blob;
    if (auto it = changes.new_blobs.find(id); it != changes.new_blobs.end()) {
      // Registering an id twice would reset its reference count and let GC
      // delete a blob that files still use (a retried commit, say).
      absl::StatusOr<std::optional<std::string>> existing = txn.Get(KvSpace::kBlobs, BlobKey(id));
      if (!existing.ok()) return existing.status();
      if (existing->has_value()) {
        return FsError(FsErrorKind::kInvalid,
                       absl::StrCat("blob ", id, " is already registered"));
      }
      blob = it->second;
    } else {
      absl::StatusOr<std::optional<std::string>> value = txn.Get(KvSpace::kBlobs, BlobKey(id));
      if (!value.ok()) return value.status();
      if (!value->has_value()) {
        return FsError(FsErrorKind::kIo, absl::StrCat("extent names blob ", id,
                                                      " which has no record; run cairn fsck"));
      }
      absl::StatusOr<StoredBlob> decoded = DecodeBlob(**value);
      if (!decoded.ok()) return decoded.status();
      blob = *decoded;
    }
    int64_t count = static_cast<int64_t>(blob.record.refcount) + delta;
    if (count < 0) {
      LogError("blob %d reference count went below zero; clamped", id);
      count = 0;
    }
    blob.record.refcount = static_cast<uint64_t>(count);
    int64_t live = static_cast<int64_t>(blob.record.live_bytes) + byte_delta;
    blob.record.live_bytes = static_cast<uint64_t>(std::max<int64_t>(0, live));
    if (count > 0 && blob.gc_ready_sec != 0) {
      txn.Delete(KvSpace::kGc, GcKey(blob.gc_ready_sec, id));
      blob.gc_ready_sec = 0;
    } else if (count == 0 && blob.gc_ready_sec == 0) {
      blob.gc_ready_sec = std::max<uint64_t>(gc_ready_sec, 1);
      txn.Put(KvSpace::kGc, GcKey(blob.gc_ready_sec, id), "");
    }
    txn.Put(KvSpace::kBlobs, BlobKey(id), EncodeBlob(blob));
  }
  return absl::OkStatus();
}

}  // namespace cairn

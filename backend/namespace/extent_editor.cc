#include "backend/namespace/extent_editor.h"

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

rocksdb::Slice S(const std::string& s) { return rocksdb::Slice(s); }
std::string_view V(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

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

absl::Status DbError(const rocksdb::Status& s, const char* what) {
  FsErrorKind kind = s.IsNoSpace() ? FsErrorKind::kNoSpace : FsErrorKind::kIo;
  return FsError(kind, absl::StrCat("namespace database: ", what, ": ",
                                    s.ToString()));
}

}  // namespace

absl::StatusOr<std::vector<Extent>> ReadExtents(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, InodeId ino, uint64_t lo,
    uint64_t hi, bool clip) {
  std::vector<Extent> out;
  if (lo >= hi) return out;
  std::string prefix = InodeKey(ino);
  InodeScope scope(ino);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scope.options(), cf));
  // The extent covering `lo` starts at or before it.
  it->SeekForPrev(S(ExtentKey(ino, lo)));
  // A damaged block must end the read here: the Seek below would start over
  // past it and answer "no extent here" for data that exists (read as zeros).
  if (!it->Valid() && !it->status().ok()) return DbError(it->status(), "reading extents");
  bool start_found = false;
  if (it->Valid() && V(it->key()).substr(0, 8) == prefix) {
    absl::StatusOr<Extent> e = DecodeExtent(KeyNumberAt(V(it->key()), 8), V(it->value()));
    if (!e.ok()) return e.status();
    if (End(*e) > lo) start_found = true;
  }
  if (!start_found) it->Seek(S(ExtentKey(ino, lo)));
  for (; it->Valid(); it->Next()) {
    std::string_view key = V(it->key());
    if (key.substr(0, 8) != prefix) break;
    uint64_t offset = KeyNumberAt(key, 8);
    if (offset >= hi) break;
    absl::StatusOr<Extent> e = DecodeExtent(offset, V(it->value()));
    if (!e.ok()) return e.status();
    if (End(*e) <= lo) continue;
    out.push_back(clip ? Slice(*e, lo, hi) : std::move(*e));
  }
  if (!it->status().ok()) return DbError(it->status(), "reading extents");
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

int64_t ExtentEditor::Stage(InodeId ino, rocksdb::WriteBatch* batch,
                            rocksdb::ColumnFamilyHandle* cf,
                            ExtentChanges* changes) {
  // Only what changed is written: a commit touching a few ranges of a file
  // with many extents costs a few keys, not a rewrite of them all.
  int64_t delta = 0;
  absl::flat_hash_map<uint64_t, const Extent*> before;
  for (const Extent& e : original_) before[e.file_offset] = &e;
  for (const Extent& e : original_) {
    auto now = current_.find(e.file_offset);
    if (now != current_.end() && now->second == e) continue;  // unchanged
    if (now == current_.end()) batch->Delete(cf, S(ExtentKey(ino, e.file_offset)));
    if (e.blob_id != kNoBlob) {
      changes->ref_deltas[e.blob_id]--;
      changes->byte_deltas[e.blob_id] -= static_cast<int64_t>(e.length);
    }
    delta -= static_cast<int64_t>(e.length);
  }
  for (const auto& [offset, e] : current_) {
    auto was = before.find(offset);
    if (was != before.end() && *was->second == e) continue;
    batch->Put(cf, S(ExtentKey(ino, offset)), S(EncodeExtent(e)));
    if (e.blob_id != kNoBlob) {
      changes->ref_deltas[e.blob_id]++;
      changes->byte_deltas[e.blob_id] += static_cast<int64_t>(e.length);
    }
    delta += static_cast<int64_t>(e.length);
  }
  return delta;
}

absl::Status ApplyBlobChanges(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* blobs,
                              rocksdb::ColumnFamilyHandle* gc,
                              const ExtentChanges& changes,
                              uint64_t gc_ready_sec, rocksdb::WriteBatch* batch) {
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
      std::string existing;
      rocksdb::Status got =
          db->Get(rocksdb::ReadOptions(), blobs, S(BlobKey(id)), &existing);
      if (got.ok()) {
        return FsError(FsErrorKind::kInvalid,
                       absl::StrCat("blob ", id, " is already registered"));
      }
      if (!got.IsNotFound()) return DbError(got, "reading a blob record");
      blob = it->second;
    } else {
      std::string value;
      rocksdb::Status got = db->Get(rocksdb::ReadOptions(), blobs, S(BlobKey(id)), &value);
      if (!got.ok()) {
        return got.IsNotFound()
                   ? FsError(FsErrorKind::kIo,
                             absl::StrCat("extent names blob ", id,
                                          " which has no record; run cairn fsck"))
                   : DbError(got, "reading a blob record");
      }
      absl::StatusOr<StoredBlob> decoded = DecodeBlob(value);
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
      batch->Delete(gc, S(GcKey(blob.gc_ready_sec, id)));
      blob.gc_ready_sec = 0;
    } else if (count == 0 && blob.gc_ready_sec == 0) {
      blob.gc_ready_sec = std::max<uint64_t>(gc_ready_sec, 1);
      batch->Put(gc, S(GcKey(blob.gc_ready_sec, id)), "");
    }
    batch->Put(blobs, S(BlobKey(id)), S(EncodeBlob(blob)));
  }
  return absl::OkStatus();
}

}  // namespace cairn

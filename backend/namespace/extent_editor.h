// Editing the extent map of one file inside a namespace transaction, and the
// blob reference counts that follow from it. Internal to backend/namespace/.
#pragma once

#include <map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "backend/namespace/records.h"
#include "rocksdb/db.h"

namespace cairn {

// Read options confined to the keys of one inode (an 8-byte key prefix).
// Without bounds a seek walks over every deleted key (tombstone) next to the
// range until it finds a live one: after a big file or directory is deleted,
// each seek near it would cost time proportional to what was deleted.
class InodeScope {
 public:
  explicit InodeScope(InodeId ino)
      : lower_(InodeKey(ino)), upper_(InodeKey(ino + 1)), lower_slice_(lower_),
        upper_slice_(upper_) {
    options_.iterate_lower_bound = &lower_slice_;
    options_.iterate_upper_bound = &upper_slice_;
  }
  InodeScope(const InodeScope&) = delete;
  InodeScope& operator=(const InodeScope&) = delete;
  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  std::string lower_, upper_;
  rocksdb::Slice lower_slice_, upper_slice_;
  rocksdb::ReadOptions options_;
};

// Blob bookkeeping accumulated by one transaction.
struct ExtentChanges {
  std::map<BlobId, StoredBlob> new_blobs;          // registered by this commit
  absl::flat_hash_map<BlobId, int64_t> ref_deltas; // extents gained - lost
  absl::flat_hash_map<BlobId, int64_t> byte_deltas; // bytes gained - lost
};

// Extents of `ino` overlapping [lo, hi) in file order; with `clip` they are
// cut to that range.
absl::StatusOr<std::vector<Extent>> ReadExtents(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* extents, InodeId ino,
    uint64_t lo, uint64_t hi, bool clip);

// Holds the extents overlapping a range, unclipped, and changes them in
// memory; Stage writes the result into a batch.
class ExtentEditor {
 public:
  explicit ExtentEditor(std::vector<Extent> original);

  // Removes data in [lo, hi): extents inside go, extents across the edges
  // are trimmed or split.
  void Cut(uint64_t lo, uint64_t hi);
  // Cut(range of extent) then adds it.
  void Insert(const Extent& extent);

  // Replaces the original extents with the edited ones in `batch` and adds
  // the reference changes to `changes`. Returns the change in stored bytes.
  int64_t Stage(InodeId ino, rocksdb::WriteBatch* batch,
                rocksdb::ColumnFamilyHandle* extents, ExtentChanges* changes);

 private:
  std::vector<Extent> original_;
  std::map<uint64_t, Extent> current_;
};

// Folds reference changes into the blob records: a blob whose count drops
// to zero is queued for collection at `gc_ready_sec`.
absl::Status ApplyBlobChanges(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* blobs,
                              rocksdb::ColumnFamilyHandle* gc,
                              const ExtentChanges& changes,
                              uint64_t gc_ready_sec, rocksdb::WriteBatch* batch);

}  // namespace cairn

// Editing the extent map of one file inside a namespace transaction, and the
// blob reference counts that follow from it. Internal to backend/namespace/.
#pragma once

#include <map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"
#include "backend/namespace/records.h"

namespace cairn {

// Blob bookkeeping accumulated by one transaction.
struct ExtentChanges {
  std::map<BlobId, StoredBlob> new_blobs;          // registered by this commit
  absl::flat_hash_map<BlobId, int64_t> ref_deltas; // extents gained - lost
  absl::flat_hash_map<BlobId, int64_t> byte_deltas; // bytes gained - lost
};

// Extents of `ino` overlapping [lo, hi) in file order; with `clip` they are
// cut to that range.
absl::StatusOr<std::vector<Extent>> ReadExtents(KvReader& reader, InodeId ino, uint64_t lo,
                                                uint64_t hi, bool clip);

// Holds the extents overlapping a range, unclipped, and changes them in
// memory; Stage writes the result into a transaction.
class ExtentEditor {
 public:
  explicit ExtentEditor(std::vector<Extent> original);

  // Removes data in [lo, hi): extents inside go, extents across the edges
  // are trimmed or split.
  void Cut(uint64_t lo, uint64_t hi);
  // Cut(range of extent) then adds it.
  void Insert(const Extent& extent);

  // Replaces the original extents with the edited ones in `txn` and adds
  // the reference changes to `changes`. Returns the change in stored bytes.
  int64_t Stage(InodeId ino, KvTxn& txn, ExtentChanges* changes);

 private:
  std::vector<Extent> original_;
  std::map<uint64_t, Extent> current_;
};

// Folds reference changes into the blob records: a blob whose count drops
// to zero is queued for collection at `gc_ready_sec`.
absl::Status ApplyBlobChanges(KvTxn& txn, const ExtentChanges& changes,
                              uint64_t gc_ready_sec);

}  // namespace cairn

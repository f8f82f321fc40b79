#include "backend/namespace/file_location.h"

#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace cairn {

absl::StatusOr<std::string> FileLocation(NamespaceStore& ns, InodeId ino) {
  absl::StatusOr<std::vector<Extent>> extents = ns.GetExtents(ino, 0, UINT64_MAX / 2);
  if (!extents.ok()) return extents.status();
  bool local = false, remote = false, both = false;
  absl::flat_hash_map<BlobId, BlobLocation> seen;
  for (const Extent& e : *extents) {
    if (e.blob_id == kNoBlob) {
      local = true;
      continue;
    }
    auto [it, inserted] = seen.try_emplace(e.blob_id, BlobLocation::kLocal);
    if (inserted) {
      absl::StatusOr<BlobRecord> record = ns.GetBlob(e.blob_id);
      if (record.ok()) it->second = record->location;
    }
    switch (it->second) {
      case BlobLocation::kLocal:
        local = true;
        break;
      case BlobLocation::kBoth:
        both = true;
        break;
      case BlobLocation::kRemote:
      case BlobLocation::kFreeing:
        remote = true;
        break;
    }
  }
  if (remote && !local && !both) return std::string("remote");
  if (remote) return std::string("mixed");
  if (both && !local) return std::string("local+remote");
  if (both) return std::string("mixed");
  return std::string("local");
}

}  // namespace cairn

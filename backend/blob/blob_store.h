// Where file data lives: immutable blobs, each up to kMaxBlobBytes, named by a
// BlobId the namespace allocated.
//
// Promises of every implementation:
// - Put returns only when the blob is durable (written and fsynced, with the
//   directory entry that names it), so the namespace may then commit a
//   reference to it. A blob is never modified after Put.
// - Read verifies checksums and never returns bytes that differ from what was
//   Put: corruption is an error (kIo), never silent.
// - Delete of a blob that is absent is OK (deletes are retried after crashes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/types.h"

namespace cairn {

inline constexpr uint64_t kMaxBlobBytes = 4 << 20;

struct BlobInfo {
  uint64_t length = 0;   // bytes of data
  uint32_t crc32c = 0;   // CRC32C of the data (standard, as S3 uses)
};

struct StoreUsage {
  uint64_t used_bytes = 0;      // bytes this store's files take on disk
  uint64_t capacity_bytes = 0;  // size of the underlying filesystem(s)
  uint64_t free_bytes = 0;      // bytes still available to us there
  uint64_t blob_count = 0;
  // A bucket: no size to report, capacity and free bytes are 0.
  bool unbounded = false;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Stores `data` (at most kMaxBlobBytes) durably as blob `id`.
  // kNoSpace when the disk is full; nothing partial is left behind then.
  virtual absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) = 0;

  // Returns `length` bytes at `offset` of blob `id`, verified. Reading past
  // the end of the blob is kInvalid.
  virtual absl::StatusOr<std::string> Read(BlobId id, uint64_t offset,
                                           uint64_t length) = 0;

  virtual absl::Status Delete(BlobId id) = 0;

  // Ids of the blobs stored at or above `from` (a scan of the whole store).
  virtual absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) = 0;

  virtual absl::StatusOr<StoreUsage> Usage() = 0;
};

}  // namespace cairn

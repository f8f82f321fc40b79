// TieredBlobStore is the BlobStore the cache sees on a volume with a [tier]:
// new blobs go to the local disks; reads go where the namespace says the
// blob is (BlobLocation), falling back to the remote copy when a local one
// fails; garbage collection deletes the remote object too. Remote reads go
// through a local disk cache of blocks (DiskBlockCache).
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/disk_block_cache.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

// Remote data is read and cached in blocks of this size: a random read of
// a few bytes costs one GET of at most this much, a sequential one GETs a
// whole blob's missing blocks at once.
inline constexpr uint64_t kRemoteBlockBytes = 1 << 20;

// Reads `length` bytes at `offset` of blob `id` (`blob_length` bytes with
// CRC32C `blob_crc32c`, as the namespace recorded) in kRemoteBlockBytes
// blocks: those in `cache` from there, each run of missing ones with one
// call of `fetch(offset, length)`, which are then cached.
absl::StatusOr<std::string> ReadThroughBlockCache(
    DiskBlockCache& cache, BlobId id, uint64_t blob_length, uint32_t blob_crc32c,
    uint64_t offset, uint64_t length,
    const std::function<absl::StatusOr<std::string>(uint64_t, uint64_t)>& fetch);

class TieredBlobStore : public BlobStore {
 public:
  // `block_cache` (may be null) keeps the remote blocks read on local disk,
  // so reading a tiered file again does not go to the remote.
  TieredBlobStore(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote,
                  DiskBlockCache* block_cache = nullptr);

  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override;
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override;
  absl::Status Delete(BlobId id) override;
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override;
  absl::StatusOr<StoreUsage> Usage() override;

  struct Stats {
    uint64_t remote_reads = 0;
    uint64_t remote_read_bytes = 0;
    uint64_t remote_read_errors = 0;
    uint64_t local_fallbacks = 0;  // local copy failed, remote served
    uint64_t cache_hits = 0;       // remote blocks served from the disk cache
    uint64_t cache_bytes = 0;      // held by the disk cache
    uint64_t cache_skipped = 0;    // blocks not cached: the cache's queue was full
  };
  Stats GetStats();

 private:
  absl::StatusOr<std::string> ReadRemote(BlobId id, const std::optional<BlobRecord>& record,
                                         uint64_t offset, uint64_t length);

  NamespaceStore& ns_;
  BlobStore& local_;
  RemoteBlobStore& remote_;
  DiskBlockCache* const block_cache_;
  std::atomic<uint64_t> remote_reads_{0}, remote_read_bytes_{0}, remote_read_errors_{0},
      local_fallbacks_{0};
};

}  // namespace cairn

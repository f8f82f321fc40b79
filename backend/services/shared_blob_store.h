// SharedBlobStore is the BlobStore the cache sees on a volume several hosts
// mount: every blob is an object in the [blobs] bucket (RemoteBlobStore:
// immutable, CRC32C per chunk, verified on read), since every host must
// read every blob, with this host's disk cache of blocks (DiskBlockCache)
// in front. Blobs are immutable and their ids never reused, so a cached
// block is never stale; each is tagged with its blob's CRC32C as the
// namespace recorded it, so a block of other bytes is a miss.
//
// Put returns once the bucket has the object (which the namespace may then
// commit a reference to) and keeps the blob's blocks in the cache, so the
// host that wrote a file reads it back without a GET.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/disk_block_cache.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class SharedBlobStore : public BlobStore {
 public:
  // `block_cache` may be null (every read then GETs).
  SharedBlobStore(NamespaceStore& ns, RemoteBlobStore& remote, DiskBlockCache* block_cache);

  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override;
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override;
  absl::Status Delete(BlobId id) override;
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override;
  absl::StatusOr<StoreUsage> Usage() override;

  struct Stats {
    uint64_t remote_reads = 0;
    uint64_t remote_read_bytes = 0;
    uint64_t remote_read_errors = 0;
    uint64_t cache_hits = 0;
    uint64_t cache_bytes = 0;
    uint64_t cache_skipped = 0;  // blocks not cached: the cache's queue was full
  };
  Stats GetStats();

 private:
  NamespaceStore& ns_;
  RemoteBlobStore& remote_;
  DiskBlockCache* const block_cache_;
  std::atomic<uint64_t> remote_reads_{0}, remote_read_bytes_{0}, remote_read_errors_{0};
};

}  // namespace cairn

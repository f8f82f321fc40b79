#include "backend/services/shared_blob_store.h"

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/services/tiered_blob_store.h"

namespace cairn {

SharedBlobStore::SharedBlobStore(NamespaceStore& ns, RemoteBlobStore& remote,
                                 DiskBlockCache* block_cache)
    : ns_(ns), remote_(remote), block_cache_(block_cache) {}

absl::StatusOr<BlobInfo> SharedBlobStore::Put(BlobId id, std::string_view data) {
  absl::StatusOr<BlobInfo> info = remote_.Put(id, data);
  if (!info.ok() || block_cache_ == nullptr) return info;
  // Written by the cache's thread: the store does not wait for the disk.
  // A block not cached only costs a later read its GET.
  for (uint64_t block = 0; block * kRemoteBlockBytes < data.size(); ++block) {
    block_cache_->PutInBackground(
        id, block, std::string(data.substr(block * kRemoteBlockBytes, kRemoteBlockBytes)),
        info->crc32c);
  }
  return info;
}

absl::StatusOr<std::string> SharedBlobStore::Read(BlobId id, uint64_t offset, uint64_t length) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  auto fetch = [&](uint64_t at, uint64_t n) -> absl::StatusOr<std::string> {
    remote_reads_++;
    absl::StatusOr<std::string> data =
        record.ok() ? remote_.ReadExpecting(id, at, n, record->length, record->crc32c)
                    : remote_.Read(id, at, n);
    if (!data.ok()) {
      remote_read_errors_++;
      LogError("reading blob %d from the volume's bucket failed: %s", id,
               data.status().message());
      return FsError(GetFsErrorKind(data.status()) == FsErrorKind::kInvalid ? FsErrorKind::kInvalid
                                                                            : FsErrorKind::kIo,
                     std::string(data.status().message()));
    }
    remote_read_bytes_ += data->size();
    return data;
  };
  // Without the record (a blob being stored whose commit has not landed)
  // nothing ties a block to the blob's bytes, so nothing is cached.
  if (block_cache_ == nullptr || !record.ok()) return fetch(offset, length);
  return ReadThroughBlockCache(*block_cache_, id, record->length, record->crc32c, offset, length,
                               fetch);
}

absl::Status SharedBlobStore::Delete(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (block_cache_ != nullptr && record.ok()) {
    block_cache_->ForgetBlob(id, (record->length + kRemoteBlockBytes - 1) / kRemoteBlockBytes);
  }
  return remote_.Delete(id);
}

absl::StatusOr<std::vector<BlobId>> SharedBlobStore::ListIds(BlobId from) {
  return remote_.ListIds(from);
}

absl::StatusOr<StoreUsage> SharedBlobStore::Usage() {
  absl::StatusOr<StoreUsage> usage = remote_.Usage();
  if (usage.ok()) usage->unbounded = true;
  return usage;
}

SharedBlobStore::Stats SharedBlobStore::GetStats() {
  Stats stats{remote_reads_, remote_read_bytes_, remote_read_errors_};
  if (block_cache_ != nullptr) {
    DiskBlockCache::Counters cache = block_cache_->GetCounters();
    stats.cache_hits = cache.hits;
    stats.cache_bytes = cache.bytes;
    stats.cache_skipped = cache.skipped;
  }
  return stats;
}

}  // namespace cairn

#include "backend/services/tiered_blob_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {

absl::StatusOr<std::string> ReadThroughBlockCache(
    DiskBlockCache& cache, BlobId id, uint64_t blob_length, uint32_t blob_crc32c,
    uint64_t offset, uint64_t length,
    const std::function<absl::StatusOr<std::string>(uint64_t, uint64_t)>& fetch) {
  if (offset > blob_length || length > blob_length - offset) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("read past the end of blob ", id));
  }
  if (length == 0) return std::string();
  // The blocks under the range: cached ones from the disk, each run of
  // missing ones with one GET, then cached for the next reader.
  const uint64_t first = offset / kRemoteBlockBytes;
  const uint64_t last = (offset + length - 1) / kRemoteBlockBytes;
  std::vector<std::optional<std::string>> blocks(last - first + 1);
  for (uint64_t b = first; b <= last; ++b) {
    blocks[b - first] = cache.Get(id, b, blob_crc32c);
  }
  for (uint64_t b = first; b <= last;) {
    if (blocks[b - first]) {
      ++b;
      continue;
    }
    uint64_t run_end = b;
    while (run_end + 1 <= last && !blocks[run_end + 1 - first]) ++run_end;
    const uint64_t start = b * kRemoteBlockBytes;
    const uint64_t stop = std::min((run_end + 1) * kRemoteBlockBytes, blob_length);
    absl::StatusOr<std::string> bytes = fetch(start, stop - start);
    if (!bytes.ok()) return bytes.status();
    // Cached for the next reader by the cache's thread: this one does not
    // wait for the disk.
    for (uint64_t k = b; k <= run_end; ++k) {
      cache.PutInBackground(id, k, bytes->substr((k - b) * kRemoteBlockBytes, kRemoteBlockBytes),
                            blob_crc32c);
    }
    if (b == first && run_end == last && start == offset && bytes->size() == length) {
      return bytes;  // one GET brought exactly the range (a whole blob, say)
    }
    for (uint64_t k = b; k <= run_end; ++k) {
      blocks[k - first] = bytes->substr((k - b) * kRemoteBlockBytes, kRemoteBlockBytes);
    }
    b = run_end + 1;
  }
  std::string out;
  out.reserve(length);
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t block_start = b * kRemoteBlockBytes;
    const uint64_t from = std::max(offset, block_start) - block_start;
    const uint64_t to = std::min(offset + length, block_start + blocks[b - first]->size()) -
                        block_start;
    if (from > to) {
      return FsError(FsErrorKind::kIo, absl::StrCat("cached block ", b, " of blob ", id,
                                                    " is shorter than the blob"));
    }
    out.append(*blocks[b - first], from, to - from);
  }
  return out;
}

TieredBlobStore::TieredBlobStore(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote,
                                 DiskBlockCache* block_cache)
    : ns_(ns), local_(local), remote_(remote), block_cache_(block_cache) {}

absl::StatusOr<BlobInfo> TieredBlobStore::Put(BlobId id, std::string_view data) {
  return local_.Put(id, data);
}

absl::StatusOr<std::string> TieredBlobStore::ReadRemote(BlobId id,
                                                        const std::optional<BlobRecord>& record,
                                                        uint64_t offset, uint64_t length) {
  auto fetch = [&](uint64_t at, uint64_t n) -> absl::StatusOr<std::string> {
    remote_reads_++;
    absl::StatusOr<std::string> data =
        record ? remote_.ReadExpecting(id, at, n, record->length, record->crc32c)
               : remote_.Read(id, at, n);
    if (!data.ok()) {
      remote_read_errors_++;
      LogError("reading blob %d from the remote tier failed: %s", id, data.status().message());
      return FsError(GetFsErrorKind(data.status()) == FsErrorKind::kInvalid ? FsErrorKind::kInvalid
                                                                            : FsErrorKind::kIo,
                     std::string(data.status().message()));
    }
    remote_read_bytes_ += data->size();
    return data;
  };
  if (block_cache_ == nullptr || !record) return fetch(offset, length);
  return ReadThroughBlockCache(*block_cache_, id, record->length, record->crc32c, offset, length,
                               fetch);
}

absl::StatusOr<std::string> TieredBlobStore::Read(BlobId id, uint64_t offset, uint64_t length) {
  std::optional<BlobRecord> record;
  if (absl::StatusOr<BlobRecord> found = ns_.GetBlob(id); found.ok()) record = *found;
  BlobLocation location = record ? record->location : BlobLocation::kLocal;
  if (InRemoteTierOnly(location)) return ReadRemote(id, record, offset, length);
  absl::StatusOr<std::string> local = local_.Read(id, offset, length);
  if (local.ok() || GetFsErrorKind(local.status()) == FsErrorKind::kInvalid) return local;
  // The blob may have moved out since we looked, or its local copy is
  // damaged beyond repair while a remote copy exists.
  absl::StatusOr<BlobRecord> again = ns_.GetBlob(id);
  if (again.ok() && again->location != BlobLocation::kLocal) {
    local_fallbacks_++;
    return ReadRemote(id, *again, offset, length);
  }
  return local;
}

absl::Status TieredBlobStore::Delete(BlobId id) {
  // Garbage collection calls this while the record still exists (it forgets
  // the record afterwards), so the record says whether a remote copy exists.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  bool remote_copy = record.ok() && record->location != BlobLocation::kLocal;
  if (absl::Status s = local_.Delete(id); !s.ok()) return s;
  if (block_cache_ != nullptr && record.ok()) {
    block_cache_->ForgetBlob(id, (record->length + kRemoteBlockBytes - 1) / kRemoteBlockBytes);
  }
  if (remote_copy) return remote_.Delete(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobId>> TieredBlobStore::ListIds(BlobId from) {
  return local_.ListIds(from);
}

absl::StatusOr<StoreUsage> TieredBlobStore::Usage() { return local_.Usage(); }

TieredBlobStore::Stats TieredBlobStore::GetStats() {
  Stats stats{remote_reads_, remote_read_bytes_, remote_read_errors_, local_fallbacks_};
  if (block_cache_ != nullptr) {
    DiskBlockCache::Counters cache = block_cache_->GetCounters();
    stats.cache_hits = cache.hits;
    stats.cache_bytes = cache.bytes;
    stats.cache_skipped = cache.skipped;
  }
  return stats;
}

}  // namespace cairn

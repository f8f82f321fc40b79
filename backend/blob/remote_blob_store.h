// Blobs as objects in an S3 bucket: the remote tier's store (and later the
// replica's). Each object is one blob in the shard format of the striped
// store with one shard (backend/shard_format.h): magic, volume id, blob id,
// lengths, the blob's CRC32C and a CRC32C per 64 KiB chunk, then the data.
// So the bucket alone identifies every object, and a ranged read fetches
// and verifies only the chunks it needs.
//
//   s3://BUCKET/PREFIX<volume id>/blobs/<low byte of id, 2 hex>/<id, 16 hex>
//
// Put sends the object's CRC32C for the server to check; Read verifies
// every chunk it returns; Verify reads an object whole and checks it
// against the checksum the namespace recorded. Never returns wrong bytes:
// a damaged or foreign object is kIo.
#pragma once

#include <memory>
#include <optional>
#include <utility>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "backend/blob/blob_store.h"
#include "backend/s3/object_store.h"
#include "backend/blob/shard_format.h"

namespace cairn {

// Reads starting this close to an object's start fetch its header with them.
inline constexpr uint64_t kFoldHeaderBelowBytes = 256 << 10;

class RemoteBlobStore : public BlobStore {
 public:
  // `client` must outlive the store. `prefix` may be empty or end in '/'.
  RemoteBlobStore(s3::ObjectStore& client, std::string prefix, std::string volume_id);

  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override;
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override;
  absl::Status Delete(BlobId id) override;
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override;
  // The bucket's capacity is not knowable; counts what was put through this
  // store object only.
  absl::StatusOr<StoreUsage> Usage() override;

  // Read, and the object must hold the blob the namespace recorded: `length`
  // bytes with CRC32C `crc32c` (a stale or foreign object is kIo).
  absl::StatusOr<std::string> ReadExpecting(BlobId id, uint64_t offset, uint64_t length,
                                            uint64_t blob_length, uint32_t blob_crc32c);

  // Reads the whole object of `id` and checks it is blob `id` of this
  // volume with `length` bytes whose CRC32C is `crc32c`.
  absl::Status Verify(BlobId id, uint64_t length, uint32_t crc32c);

  // Verify, telling a missing or damaged object (which a good copy
  // repairs) from a remote that did not answer (which proves nothing).
  enum class ObjectState { kGood, kMissing, kDamaged, kUnreachable };
  struct ObjectCheck {
    ObjectState state = ObjectState::kGood;
    absl::Status status;      // why, unless kGood
    uint64_t bytes_read = 0;  // the object's size as fetched
  };
  ObjectCheck CheckObject(BlobId id, uint64_t length, uint32_t crc32c);

  std::string KeyOf(BlobId id) const;
  // The blob whose object `key` is; nullopt for a key of no blob of this
  // store (another object under the prefix, or not under it at all).
  std::optional<BlobId> IdOfKey(std::string_view key) const;

  // One page of the bucket's blobs, for a walk that holds one page at a
  // time: at most `max_keys` objects after `after_key` ("" first). Each
  // blob with its object's LastModified, and the page with the server's
  // time (both 0 when unknown), so an object's age is told by the server's
  // clock alone.
  struct ListedBlob {
    BlobId id = 0;
    int64_t last_modified = 0;
  };
  struct BlobPage {
    std::vector<ListedBlob> blobs;
    bool more = false;          // pages follow: start the next at next_after
    std::string next_after;
    int64_t server_time = 0;
  };
  absl::StatusOr<BlobPage> ListPage(const std::string& after_key, int max_keys);

  // The tier's store when the tier and the replica share their objects:
  // Delete then deletes nothing, since a kept backup may still need the
  // object; the replica's garbage collection deletes it when none does.
  void LeaveDeletesToReplicaGc() { deletes_left_to_replica_gc_ = true; }
  bool deletes_left_to_replica_gc() const { return deletes_left_to_replica_gc_; }
  // "PREFIX<volume id>/blobs/": where every object of this store is.
  const std::string& prefix() const { return prefix_; }

 private:
  absl::StatusOr<ShardHeader> Header(BlobId id);
  std::optional<ShardHeader> CachedHeader(BlobId id);
  // Decodes and checks the header at the start of `prefix` (an object's
  // first bytes) and remembers it.
  absl::StatusOr<ShardHeader> CheckAndCacheHeader(BlobId id, std::string_view prefix);
  // `expected`: the blob's length and CRC32C as the namespace recorded.
  absl::StatusOr<std::string> ReadChecked(BlobId id, uint64_t offset, uint64_t length,
                                          std::optional<std::pair<uint64_t, uint32_t>> expected);

  s3::ObjectStore& client_;
  const std::string prefix_;     // ends in "<volume id>/blobs/"
  const std::string volume_id_;
  absl::Mutex mu_;
  // Headers of recently read objects: a random read then costs one GET.
  absl::flat_hash_map<BlobId, ShardHeader> headers_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> put_bytes_{0}, put_count_{0};
  std::atomic<bool> deletes_left_to_replica_gc_{false};
};

}  // namespace cairn

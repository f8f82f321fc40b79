#include "backend/blob/remote_blob_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

constexpr size_t kMaxCachedHeaders = 4096;

absl::Status Damaged(const std::string& key, const std::string& why) {
  return FsError(FsErrorKind::kIo, absl::StrCat("remote object ", key, " is damaged: ", why));
}

}  // namespace

RemoteBlobStore::RemoteBlobStore(s3::ObjectStore& client, std::string prefix, std::string volume_id)
    : client_(client),
      prefix_(absl::StrCat(prefix, volume_id, "/blobs/")),
      volume_id_(std::move(volume_id)) {}

std::string RemoteBlobStore::KeyOf(BlobId id) const {
  return absl::StrFormat("%s%02x/%016x", prefix_, id & 0xff, id);
}

absl::StatusOr<BlobInfo> RemoteBlobStore::Put(BlobId id, std::string_view data) {
  if (data.size() > kMaxBlobBytes) return FsError(FsErrorKind::kInvalid, "blob larger than 4 MiB");
  ShardHeader header;
  header.volume_id = volume_id_;
  header.blob_id = id;
  header.blob_length = data.size();
  header.payload_length = data.size();
  header.shard_length = data.size();
  header.blob_crc32c = Crc32c(data);
  std::string object = EncodeShardHeader(&header, data);
  object.append(data);
  {
    absl::MutexLock lock(&mu_);
    headers_.erase(id);  // a replaced object (a retried move) has its own header
  }
  if (absl::Status s = client_.PutObject(KeyOf(id), object, Crc32c(object)); !s.ok()) return s;
  put_bytes_ += object.size();
  put_count_++;
  return BlobInfo{data.size(), header.blob_crc32c};
}

std::optional<ShardHeader> RemoteBlobStore::CachedHeader(BlobId id) {
  absl::MutexLock lock(&mu_);
  auto it = headers_.find(id);
  if (it == headers_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ShardHeader> RemoteBlobStore::CheckAndCacheHeader(BlobId id,
                                                                 std::string_view prefix) {
  const std::string key = KeyOf(id);
  absl::StatusOr<ShardHeader> header = DecodeShardHeader(prefix, key);
  if (!header.ok()) return header.status();
  if (header->volume_id != volume_id_ || header->blob_id != id || header->data_shards != 1 ||
      header->parity_shards != 0 || header->compressed ||
      header->shard_length != header->blob_length) {
    return Damaged(key, "its header names another volume, blob or layout");
  }
  absl::MutexLock lock(&mu_);
  if (headers_.size() >= kMaxCachedHeaders) headers_.clear();
  headers_[id] = *header;
  return header;
}

absl::StatusOr<ShardHeader> RemoteBlobStore::Header(BlobId id) {
  if (std::optional<ShardHeader> cached = CachedHeader(id)) return *cached;
  absl::StatusOr<std::string> prefix =
      client_.GetObject(KeyOf(id), std::make_pair(0, kShardPrefixReadBytes), /*allow_short=*/true);
  if (!prefix.ok()) return prefix.status();
  return CheckAndCacheHeader(id, *prefix);
}

absl::StatusOr<std::string> RemoteBlobStore::Read(BlobId id, uint64_t offset, uint64_t length) {
  return ReadChecked(id, offset, length, std::nullopt);
}

absl::StatusOr<std::string> RemoteBlobStore::ReadExpecting(BlobId id, uint64_t offset,
                                                           uint64_t length, uint64_t blob_length,
                                                           uint32_t blob_crc32c) {
  return ReadChecked(id, offset, length, std::make_pair(blob_length, blob_crc32c));
}

absl::StatusOr<std::string> RemoteBlobStore::ReadChecked(
    BlobId id, uint64_t offset, uint64_t length,
    std::optional<std::pair<uint64_t, uint32_t>> expected) {
  // The first read of an object near its start fetches header and data in
  // one GET (the header is at most kShardPrefixReadBytes): a cold read
  // then costs one round trip, not two.
  std::string head_and_data;
  absl::StatusOr<ShardHeader> header = absl::UnknownError("");
  if (std::optional<ShardHeader> cached = CachedHeader(id)) {
    header = *cached;
  } else if (offset < kFoldHeaderBelowBytes && length <= kMaxBlobBytes) {
    const uint64_t end = (offset + length + kShardChunkBytes - 1) / kShardChunkBytes *
                         kShardChunkBytes;
    absl::StatusOr<std::string> bytes = client_.GetObject(
        KeyOf(id), std::make_pair(0, kShardPrefixReadBytes + end), /*allow_short=*/true);
    if (!bytes.ok()) return bytes.status();
    head_and_data = std::move(*bytes);
    header = CheckAndCacheHeader(id, head_and_data);
  } else {
    header = Header(id);
  }
  if (!header.ok()) return header.status();
  if (expected && (header->blob_length != expected->first ||
                   header->blob_crc32c != expected->second)) {
    {
      absl::MutexLock lock(&mu_);
      headers_.erase(id);
    }
    return Damaged(KeyOf(id), "it holds other data than the namespace recorded");
  }
  if (offset > header->blob_length || length > header->blob_length - offset) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("read past the end of blob ", id));
  }
  if (length == 0) return std::string();
  // Whole chunks under the range, each verified.
  const uint64_t chunk = header->chunk_bytes;
  const uint64_t first = offset / chunk;
  const uint64_t start = first * chunk;
  const uint64_t stop = std::min(((offset + length - 1) / chunk + 1) * chunk, header->blob_length);
  const std::string key = KeyOf(id);
  absl::StatusOr<std::string> bytes = std::string();
  if (head_and_data.size() >= header->data_offset + stop) {
    bytes = head_and_data.substr(header->data_offset + start, stop - start);
  } else {
    bytes = client_.GetObject(key, std::make_pair(header->data_offset + start, stop - start));
  }
  if (!bytes.ok()) return bytes.status();
  // Chunks verify one by one, so a body cut at a chunk boundary would pass
  // them all: the length is checked first.
  if (bytes->size() != stop - start) {
    return Damaged(key, absl::StrCat("a read of ", stop - start, " bytes at ", start,
                                     " returned ", bytes->size()));
  }
  if (absl::Status s = VerifyShardChunks(*header, first, *bytes, key); !s.ok()) {
    absl::MutexLock lock(&mu_);
    headers_.erase(id);
    return s;
  }
  if (start == offset && bytes->size() == length) return std::move(*bytes);
  return bytes->substr(offset - start, length);
}

absl::Status RemoteBlobStore::Verify(BlobId id, uint64_t length, uint32_t crc32c) {
  return CheckObject(id, length, crc32c).status;
}

RemoteBlobStore::ObjectCheck RemoteBlobStore::CheckObject(BlobId id, uint64_t length,
                                                          uint32_t crc32c) {
  const std::string key = KeyOf(id);
  ObjectCheck check;
  auto fail = [&check](ObjectState state, absl::Status status) {
    check.state = state;
    check.status = std::move(status);
    return check;
  };
  absl::StatusOr<std::string> object = client_.GetObject(key);
  if (!object.ok()) {
    return fail(IsNotFoundError(object.status()) ? ObjectState::kMissing
                                                 : ObjectState::kUnreachable,
                object.status());
  }
  check.bytes_read = object->size();
  absl::StatusOr<ShardHeader> header = DecodeShardHeader(*object, key);
  if (!header.ok()) return fail(ObjectState::kDamaged, header.status());
  if (header->volume_id != volume_id_ || header->blob_id != id) {
    return fail(ObjectState::kDamaged, Damaged(key, "its header names another volume or blob"));
  }
  if (object->size() != header->data_offset + header->shard_length) {
    return fail(ObjectState::kDamaged,
                Damaged(key, absl::StrCat(object->size(), " bytes, its header says ",
                                          header->data_offset + header->shard_length)));
  }
  std::string_view data = std::string_view(*object).substr(header->data_offset);
  if (absl::Status s = VerifyShardChunks(*header, 0, data, key); !s.ok()) {
    return fail(ObjectState::kDamaged, s);
  }
  if (data.size() != length || Crc32c(data) != crc32c || header->blob_crc32c != crc32c) {
    return fail(ObjectState::kDamaged,
                Damaged(key, "it holds other data than the namespace recorded"));
  }
  return check;
}

absl::Status RemoteBlobStore::Delete(BlobId id) {
  {
    absl::MutexLock lock(&mu_);
    headers_.erase(id);
  }
  if (deletes_left_to_replica_gc_) return absl::OkStatus();
  return client_.DeleteObject(KeyOf(id));
}

absl::StatusOr<std::vector<BlobId>> RemoteBlobStore::ListIds(BlobId from) {
  absl::StatusOr<std::vector<s3::ObjectEntry>> objects = client_.ListObjects(prefix_);
  if (!objects.ok()) return objects.status();
  std::vector<BlobId> ids;
  for (const s3::ObjectEntry& object : *objects) {
    std::optional<BlobId> id = IdOfKey(object.key);
    if (id.has_value() && *id >= from) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::optional<BlobId> RemoteBlobStore::IdOfKey(std::string_view key) const {
  if (key.substr(0, prefix_.size()) != prefix_) return std::nullopt;
  // <xx>/<16 hex>, and the key the id gives back (so "34" before the id
  // must be its low byte, as KeyOf writes it).
  std::string_view name = key.substr(prefix_.size());
  BlobId id = 0;
  if (name.size() != 19 || name[2] != '/' || !ParseHex(name.substr(3), &id)) {
    return std::nullopt;
  }
  if (KeyOf(id) != key) return std::nullopt;
  return id;
}

absl::StatusOr<RemoteBlobStore::BlobPage> RemoteBlobStore::ListPage(const std::string& after_key,
                                                                    int max_keys) {
  absl::StatusOr<s3::ObjectPage> listed = client_.ListObjectsPage(prefix_, after_key, max_keys);
  if (!listed.ok()) return listed.status();
  BlobPage page;
  page.server_time = listed->server_time;
  for (const s3::ObjectEntry& object : listed->objects) {
    if (std::optional<BlobId> id = IdOfKey(object.key)) {
      page.blobs.push_back(ListedBlob{*id, object.last_modified});
    }
  }
  // A truncated page with no keys could not be continued: S3 never sends one.
  page.more = listed->truncated && !listed->objects.empty();
  if (page.more) page.next_after = listed->objects.back().key;
  return page;
}

absl::StatusOr<StoreUsage> RemoteBlobStore::Usage() {
  StoreUsage usage;
  usage.used_bytes = put_bytes_;
  usage.blob_count = put_count_;
  return usage;
}

}  // namespace cairn

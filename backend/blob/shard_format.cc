#include "backend/blob/shard_format.h"

#include "absl/strings/str_cat.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'S', 'H', 'D'};
constexpr uint16_t kShardFormatVersion = 1;
constexpr size_t kFixedBytes = 92;
constexpr uint16_t kFlagLz4 = 1;

absl::Status Corrupt(const std::string& what, const std::string& why) {
  return FsError(FsErrorKind::kIo, absl::StrCat("shard ", what, " is corrupt: ", why));
}

}  // namespace

bool ShardHeader::SameBlobAs(const ShardHeader& o) const {
  return compressed == o.compressed && data_shards == o.data_shards &&
         parity_shards == o.parity_shards && copies == o.copies &&
         volume_id == o.volume_id && blob_id == o.blob_id &&
         blob_length == o.blob_length && payload_length == o.payload_length &&
         shard_length == o.shard_length && blob_crc32c == o.blob_crc32c;
}

std::string EncodeShardHeader(ShardHeader* h, std::string_view shard_data) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kShardFormatVersion & 0xff));
  out.push_back(static_cast<char>(kShardFormatVersion >> 8));
  uint16_t flags = h->compressed ? kFlagLz4 : 0;
  out.push_back(static_cast<char>(flags & 0xff));
  out.push_back(static_cast<char>(flags >> 8));
  out.push_back(static_cast<char>(h->data_shards));
  out.push_back(static_cast<char>(h->parity_shards));
  out.push_back(static_cast<char>(h->index));
  out.push_back(static_cast<char>(h->copies ? 1 : 0));
  std::string id = h->volume_id;
  id.resize(32, '0');
  out += id;
  PutFixed64(&out, h->blob_id);
  PutFixed64(&out, h->blob_length);
  PutFixed64(&out, h->payload_length);
  PutFixed64(&out, h->shard_length);
  PutFixed32(&out, h->blob_crc32c);
  PutFixed32(&out, static_cast<uint32_t>(h->chunk_bytes));
  PutFixed32(&out, Crc32c(out));
  std::string table;
  h->chunk_crcs.clear();
  for (uint64_t at = 0; at < shard_data.size(); at += h->chunk_bytes) {
    uint32_t crc = Crc32c(shard_data.substr(at, h->chunk_bytes));
    h->chunk_crcs.push_back(crc);
    PutFixed32(&table, crc);
  }
  PutFixed32(&table, Crc32c(table));
  out += table;
  h->data_offset = out.size();
  return out;
}

absl::StatusOr<ShardHeader> DecodeShardHeader(std::string_view bytes,
                                              const std::string& what) {
  if (bytes.size() < kFixedBytes) return Corrupt(what, "shorter than its header");
  if (bytes.substr(0, 8) != std::string_view(kMagic, 8)) return Corrupt(what, "bad magic");
  if (Crc32c(bytes.substr(0, 88)) != DecodeFixed32(bytes.data() + 88)) {
    return Corrupt(what, "header checksum mismatch");
  }
  const auto* u = reinterpret_cast<const uint8_t*>(bytes.data());
  uint16_t version = u[8] | (u[9] << 8);
  uint16_t flags = u[10] | (u[11] << 8);
  if (version != kShardFormatVersion) {
    return Corrupt(what, absl::StrCat("unknown format version ", version,
                                      " (written by a newer cairn?)"));
  }
  if ((flags & ~kFlagLz4) != 0) return Corrupt(what, "unknown flags");
  ShardHeader h;
  h.compressed = (flags & kFlagLz4) != 0;
  h.data_shards = u[12];
  h.parity_shards = u[13];
  h.index = u[14];
  h.copies = u[15] != 0;
  h.volume_id.assign(bytes.substr(16, 32));
  h.blob_id = DecodeFixed64(bytes.data() + 48);
  h.blob_length = DecodeFixed64(bytes.data() + 56);
  h.payload_length = DecodeFixed64(bytes.data() + 64);
  h.shard_length = DecodeFixed64(bytes.data() + 72);
  h.blob_crc32c = DecodeFixed32(bytes.data() + 80);
  h.chunk_bytes = DecodeFixed32(bytes.data() + 84);
  if (h.data_shards < 1 || h.index >= h.data_shards + h.parity_shards) {
    return Corrupt(what, "impossible shard geometry");
  }
  if (h.chunk_bytes < 4096 || h.chunk_bytes > (4 << 20) ||
      (h.chunk_bytes & (h.chunk_bytes - 1)) != 0) {
    return Corrupt(what, "bad chunk size");
  }
  // A shard never holds more than a whole blob (4 MiB) plus padding.
  if (h.blob_length > (4 << 20) || h.payload_length > (5 << 20) ||
      h.shard_length > h.payload_length + h.data_shards) {
    return Corrupt(what, "lengths out of range");
  }
  uint64_t chunks = (h.shard_length + h.chunk_bytes - 1) / h.chunk_bytes;
  size_t table_bytes = 4 * chunks;
  if (bytes.size() < kFixedBytes + table_bytes + 4) return Corrupt(what, "chunk table cut short");
  std::string_view table = bytes.substr(kFixedBytes, table_bytes);
  if (Crc32c(table) != DecodeFixed32(bytes.data() + kFixedBytes + table_bytes)) {
    return Corrupt(what, "chunk table checksum mismatch");
  }
  for (uint64_t i = 0; i < chunks; ++i) h.chunk_crcs.push_back(DecodeFixed32(table.data() + 4 * i));
  h.data_offset = kFixedBytes + table_bytes + 4;
  return h;
}

absl::Status VerifyShardChunks(const ShardHeader& h, uint64_t first_chunk,
                               std::string_view data, const std::string& what) {
  for (uint64_t at = 0, i = first_chunk; at < data.size(); at += h.chunk_bytes, ++i) {
    if (i >= h.chunk_crcs.size()) return Corrupt(what, "data longer than its chunk table");
    if (Crc32c(data.substr(at, h.chunk_bytes)) != h.chunk_crcs[i]) {
      return Corrupt(what, absl::StrCat("chunk ", i, " does not match its checksum"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn

// The file format of one shard of a striped blob. Each shard describes
// itself (volume, blob, position, lengths, checksums), so a disk can be
// scanned, verified and rebuilt without the namespace database.
//
// Shard file (format version 1), little-endian:
//   0  magic "CAIRNSHD"                       8 bytes
//   8  format version                         u16 (1)
//  10  flags                                  u16 (bit 0: payload is LZ4)
//  12  data shards K, redundant shards M,     u8 each
//      this shard's index, copies (0 or 1)
//  16  volume id, 32 ASCII hex digits         32 bytes
//  48  blob id                                u64
//  56  blob length (the file data)            u64
//  64  payload length (after compression)     u64
//  72  shard length (bytes of shard data)     u64
//  80  CRC32C of the blob's file data         u32
//  84  chunk size                             u32 (65536)
//  88  CRC32C of bytes 0..87                  u32
//  92  CRC32C of each chunk of the shard data, u32 each, then a CRC32C of
//      that table
//  ..  shard data
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/base/types.h"

namespace cairn {

inline constexpr uint64_t kShardChunkBytes = 64 << 10;
// Enough for the header and the chunk table of the largest shard (a full
// copy of a 4 MiB blob), rounded to a page.
inline constexpr size_t kShardPrefixReadBytes = 4096;

struct ShardHeader {
  bool compressed = false;
  int data_shards = 1;
  int parity_shards = 0;
  bool copies = false;
  int index = 0;
  std::string volume_id;  // 32 hex digits
  BlobId blob_id = 0;
  uint64_t blob_length = 0;
  uint64_t payload_length = 0;
  uint64_t shard_length = 0;
  uint32_t blob_crc32c = 0;
  uint64_t chunk_bytes = kShardChunkBytes;
  std::vector<uint32_t> chunk_crcs;  // of the shard data
  size_t data_offset = 0;            // where shard data starts in the file

  // Same blob, same geometry: shards that can be decoded together.
  bool SameBlobAs(const ShardHeader& other) const;
};

// Header and chunk table for `shard_data`; fills header->chunk_crcs and
// header->data_offset.
std::string EncodeShardHeader(ShardHeader* header, std::string_view shard_data);

// Decodes the header from the first bytes of a shard file (at least
// kShardPrefixReadBytes, or the whole file if shorter). kIo naming `what`
// (the path) and the reason when anything does not check out.
absl::StatusOr<ShardHeader> DecodeShardHeader(std::string_view prefix,
                                              const std::string& what);

// Verifies `data`, the shard data starting at chunk `first_chunk`, against
// the chunk table (the last chunk may be short). kIo naming the chunk.
absl::Status VerifyShardChunks(const ShardHeader& header, uint64_t first_chunk,
                               std::string_view data, const std::string& what);

}  // namespace cairn

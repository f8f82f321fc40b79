// Redundancy schemes of the striped blob store and the codec behind them:
// Reed-Solomon erasure coding (Intel ISA-L, Cauchy matrix: any K of the K+M
// shards rebuild the rest) or plain copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cairn {

// How a blob is split. K data shards plus M redundant ones; any K of the
// K+M rebuild the blob, so M disks may be lost.
//   plain:     K=1, M=0 (one disk)
//   copies:N   K=1, M=N-1, every shard a full copy
//   ec:K+M     Reed-Solomon, shard = 1/K of the blob
struct Redundancy {
  int data_shards = 1;
  int parity_shards = 0;
  bool copies = false;

  int total_shards() const { return data_shards + parity_shards; }
  // Shards that must be stored for a write to succeed: one more than the
  // minimum to rebuild, so a degraded write still survives one more fault
  // (all of them when there is no redundancy at all).
  int min_shards_for_write() const {
    return parity_shards == 0 ? total_shards() : data_shards + 1;
  }
  // "plain", "copies:2", "ec:4+2": the form cairn.toml and --help use.
  std::string ToString() const;
  friend bool operator==(const Redundancy&, const Redundancy&) = default;
};

// Parses "plain", "copies:N" (2..16) or "ec:K+M" (K 2..16, M 1..4, K+M <= 20).
absl::StatusOr<Redundancy> ParseRedundancy(std::string_view text);
// The default for a volume of `disks` disks: 1 plain, 2 two copies,
// 3-5 ec:2+1, 6 or more ec:4+2.
Redundancy DefaultRedundancy(size_t disks);

class ShardCodec {
 public:
  explicit ShardCodec(Redundancy redundancy);

  const Redundancy& redundancy() const { return redundancy_; }

  // Bytes in each shard for a payload of `payload_bytes`.
  size_t ShardBytes(size_t payload_bytes) const;

  // Splits `payload` into total_shards() shards of ShardBytes() bytes each
  // (the last data shard zero-padded) and computes the redundant ones.
  std::vector<std::string> Encode(std::string_view payload) const;

  // `shards` has total_shards() entries; those with `present` set are
  // ShardBytes() long. Fills in every other one. kIo if fewer than K are
  // present.
  absl::Status Reconstruct(std::vector<std::string>& shards,
                           const std::vector<bool>& present) const;

  // Concatenates the data shards and cuts the padding: the payload back.
  static std::string Join(std::vector<std::string>&& shards, int data_shards,
                          size_t payload_bytes);

 private:
  Redundancy redundancy_;
  // (K+M) x K encoding matrix; rows 0..K-1 are the identity.
  std::vector<uint8_t> matrix_;
  std::vector<uint8_t> encode_tables_;
};

}  // namespace cairn

#include "backend/blob/erasure_code.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "isa-l/erasure_code.h"

namespace cairn {

std::string Redundancy::ToString() const {
  if (parity_shards == 0) return "plain";
  if (copies) return absl::StrCat("copies:", total_shards());
  return absl::StrCat("ec:", data_shards, "+", parity_shards);
}

absl::StatusOr<Redundancy> ParseRedundancy(std::string_view input) {
  // Debian's Abseil has its own string_view; std::string converts to both.
  const std::string text(input);
  auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "redundancy '", text,
        "' is not one of plain, copies:N (N 2..16) or ec:K+M (K 2..16, M 1..4)"));
  };
  Redundancy r;
  if (text == "plain") return r;
  if (text.substr(0, 7) == "copies:") {
    int n = 0;
    if (!absl::SimpleAtoi(std::string(text.substr(7)), &n) || n < 2 || n > 16) return bad();
    r.copies = true;
    r.parity_shards = n - 1;
    return r;
  }
  if (text.substr(0, 3) == "ec:") {
    std::string rest = text.substr(3);
    size_t plus = rest.find('+');
    if (plus == std::string::npos) return bad();
    int k = 0, m = 0;
    if (!absl::SimpleAtoi(rest.substr(0, plus), &k) ||
        !absl::SimpleAtoi(rest.substr(plus + 1), &m) || k < 2 || k > 16 || m < 1 ||
        m > 4) {
      return bad();
    }
    r.data_shards = k;
    r.parity_shards = m;
    return r;
  }
  return bad();
}

Redundancy DefaultRedundancy(size_t disks) {
  Redundancy r;
  if (disks == 2) {
    r.copies = true;
    r.parity_shards = 1;
  } else if (disks >= 3 && disks <= 5) {
    r.data_shards = 2;
    r.parity_shards = 1;
  } else if (disks >= 6) {
    r.data_shards = 4;
    r.parity_shards = 2;
  }
  return r;
}

ShardCodec::ShardCodec(Redundancy redundancy) : redundancy_(redundancy) {
  const int k = redundancy_.data_shards, n = redundancy_.total_shards();
  if (redundancy_.copies || redundancy_.parity_shards == 0) return;
  matrix_.resize(static_cast<size_t>(n) * k);
  // Cauchy rather than Vandermonde: every KxK submatrix is invertible, so
  // any K shards decode, whatever K and M.
  gf_gen_cauchy1_matrix(matrix_.data(), n, k);
  encode_tables_.resize(static_cast<size_t>(32) * k * (n - k));
  ec_init_tables(k, n - k, matrix_.data() + k * k, encode_tables_.data());
}

size_t ShardCodec::ShardBytes(size_t payload_bytes) const {
  if (redundancy_.copies) return payload_bytes;
  const size_t k = redundancy_.data_shards;
  return (payload_bytes + k - 1) / k;
}

std::vector<std::string> ShardCodec::Encode(std::string_view payload) const {
  const int k = redundancy_.data_shards, n = redundancy_.total_shards();
  const size_t shard_bytes = ShardBytes(payload.size());
  std::vector<std::string> shards(n);
  if (redundancy_.copies || n == 1) {
    for (std::string& shard : shards) shard.assign(payload);
    return shards;
  }
  for (int i = 0; i < k; ++i) {
    size_t at = std::min(payload.size(), i * shard_bytes);
    shards[i].assign(payload.substr(at, shard_bytes));
    shards[i].resize(shard_bytes, '\0');
  }
  if (shard_bytes == 0) return shards;
  std::vector<uint8_t*> data(k), parity(n - k);
  for (int i = 0; i < k; ++i) data[i] = reinterpret_cast<uint8_t*>(shards[i].data());
  for (int i = k; i < n; ++i) {
    shards[i].resize(shard_bytes);
    parity[i - k] = reinterpret_cast<uint8_t*>(shards[i].data());
  }
  ec_encode_data(static_cast<int>(shard_bytes), k, n - k,
                 const_cast<uint8_t*>(encode_tables_.data()), data.data(), parity.data());
  return shards;
}

absl::Status ShardCodec::Reconstruct(std::vector<std::string>& shards,
                                     const std::vector<bool>& have) const {
  const int k = redundancy_.data_shards, n = redundancy_.total_shards();
  if (static_cast<int>(shards.size()) != n || static_cast<int>(have.size()) != n) {
    return FsError(FsErrorKind::kInvalid, "wrong number of shards to reconstruct");
  }
  std::vector<int> present, missing;
  size_t shard_bytes = 0;
  for (int i = 0; i < n; ++i) {
    if (!have[i]) {
      missing.push_back(i);
    } else {
      present.push_back(i);
      shard_bytes = shards[i].size();
    }
  }
  if (missing.empty()) return absl::OkStatus();
  if (static_cast<int>(present.size()) < k) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("only ", present.size(), " of ", n,
                                " shards are readable; ", k, " are needed"));
  }
  for (int i : present) {
    if (shards[i].size() != shard_bytes) {
      return FsError(FsErrorKind::kIo, "shards of one blob differ in length");
    }
  }
  if (redundancy_.copies || n == 1) {
    for (int i : missing) shards[i] = shards[present[0]];
    return absl::OkStatus();
  }
  // Invert the rows of the K shards we use; each missing shard is then a
  // linear combination of them.
  std::vector<uint8_t> survivors(static_cast<size_t>(k) * k), inverse(k * k);
  for (int r = 0; r < k; ++r) {
    memcpy(&survivors[r * k], &matrix_[present[r] * k], k);
  }
  if (gf_invert_matrix(survivors.data(), inverse.data(), k) != 0) {
    return FsError(FsErrorKind::kIo, "erasure code matrix is not invertible");
  }
  const int lost = static_cast<int>(missing.size());
  std::vector<uint8_t> decode(static_cast<size_t>(lost) * k);
  for (int e = 0; e < lost; ++e) {
    const int row = missing[e];
    for (int j = 0; j < k; ++j) {
      uint8_t sum = 0;
      for (int i = 0; i < k; ++i) {
        sum ^= gf_mul(matrix_[row * k + i], inverse[i * k + j]);
      }
      decode[e * k + j] = sum;
    }
  }
  std::vector<uint8_t> tables(static_cast<size_t>(32) * k * lost);
  ec_init_tables(k, lost, decode.data(), tables.data());
  std::vector<uint8_t*> sources(k), outputs(lost);
  for (int i = 0; i < k; ++i) {
    sources[i] = reinterpret_cast<uint8_t*>(shards[present[i]].data());
  }
  for (int e = 0; e < lost; ++e) {
    shards[missing[e]].resize(shard_bytes);
    outputs[e] = reinterpret_cast<uint8_t*>(shards[missing[e]].data());
  }
  if (shard_bytes > 0) {
    ec_encode_data(static_cast<int>(shard_bytes), k, lost, tables.data(), sources.data(),
                   outputs.data());
  }
  return absl::OkStatus();
}

std::string ShardCodec::Join(std::vector<std::string>&& shards, int data_shards,
                             size_t payload_bytes) {
  // One data shard (one disk, copies:N) is the payload: moved, not copied,
  // or every read of a blob held it twice.
  if (data_shards == 1 && !shards.empty() && shards[0].size() >= payload_bytes) {
    std::string payload = std::move(shards[0]);
    payload.resize(payload_bytes);
    return payload;
  }
  std::string payload;
  payload.reserve(payload_bytes);
  for (int i = 0; i < data_shards && payload.size() < payload_bytes; ++i) {
    payload.append(shards[i], 0, std::min(shards[i].size(), payload_bytes - payload.size()));
  }
  return payload;
}

}  // namespace cairn

#include "backend/base/crc64nvme.h"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace cairn {
namespace {

// 0xAD93D23594C93659 with its bits reversed: in a reflected CRC, bit i of
// a 64-bit word is the coefficient of x^(63-i).
constexpr uint64_t kReflectedPoly = 0x9A6C9329AC4BC9B5ull;

using Tables = std::array<std::array<uint64_t, 256>, 8>;

// Slicing-by-8: tables[k][b] is the CRC of byte b followed by k zero bytes.
constexpr Tables MakeTables() {
  Tables tables{};
  for (uint64_t b = 0; b < 256; ++b) {
    uint64_t crc = b;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ kReflectedPoly : crc >> 1;
    tables[0][b] = crc;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (size_t b = 0; b < 256; ++b) {
      uint64_t previous = tables[k - 1][b];
      tables[k][b] = (previous >> 8) ^ tables[0][previous & 0xff];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();

// `crc` is the raw register (no inversion).
uint64_t TableUpdate(uint64_t crc, const unsigned char* p, size_t n) {
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // little-endian: the first byte is the lowest
    word ^= crc;
    crc = kTables[7][word & 0xff] ^ kTables[6][(word >> 8) & 0xff] ^
          kTables[5][(word >> 16) & 0xff] ^ kTables[4][(word >> 24) & 0xff] ^
          kTables[3][(word >> 32) & 0xff] ^ kTables[2][(word >> 40) & 0xff] ^
          kTables[1][(word >> 48) & 0xff] ^ kTables[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = kTables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)

// x^n mod P, reflected. Multiplying by x moves every coefficient one bit
// down; x^64 wraps around as P's lower terms.
constexpr uint64_t XPowModP(int n) {
  uint64_t v = 1ull << 63;  // x^0
  for (int i = 0; i < n; ++i) v = (v & 1) ? (v >> 1) ^ kReflectedPoly : v >> 1;
  return v;
}

// Folding a 128-bit block forward by D bits (Intel's "Fast CRC computation
// for generic polynomials using PCLMULQDQ"): its first (higher-degree)
// 64 bits H and last ones L become H * x^(D+64) + L * x^D mod P, which has
// the same remainder once the D bits that follow are XORed in. The
// carry-less product of two reflected 64-bit values is the product times
// x in the 128-bit frame, hence the constants' exponents one lower.
struct FoldConstants {
  uint64_t high_half, low_half;  // multiply H by the first, L by the second
};
constexpr FoldConstants FoldBy(int bits) { return {XPowModP(bits + 63), XPowModP(bits - 1)}; }
constexpr FoldConstants kFold128 = FoldBy(128);
constexpr FoldConstants kFold512 = FoldBy(512);

__attribute__((target("pclmul,sse2"))) inline __m128i Fold(__m128i block, __m128i constants) {
  return _mm_xor_si128(_mm_clmulepi64_si128(block, constants, 0x00),
                       _mm_clmulepi64_si128(block, constants, 0x11));
}

__attribute__((target("pclmul,sse2"))) uint64_t ClmulUpdate(uint64_t crc, const unsigned char* p,
                                                             size_t n) {
  if (n < 128) return TableUpdate(crc, p, n);
  auto load = [](const unsigned char* at) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
  };
  const __m128i by512 = _mm_set_epi64x(static_cast<long long>(kFold512.low_half),
                                       static_cast<long long>(kFold512.high_half));
  const __m128i by128 = _mm_set_epi64x(static_cast<long long>(kFold128.low_half),
                                       static_cast<long long>(kFold128.high_half));
  // Four blocks in flight hide the multiplier's latency. The register so
  // far XORed into the first 8 bytes continues the CRC from it.
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi64_si128(static_cast<long long>(crc)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  n -= 64;
  while (n >= 64) {
    x0 = _mm_xor_si128(Fold(x0, by512), load(p));
    x1 = _mm_xor_si128(Fold(x1, by512), load(p + 16));
    x2 = _mm_xor_si128(Fold(x2, by512), load(p + 32));
    x3 = _mm_xor_si128(Fold(x3, by512), load(p + 48));
    p += 64;
    n -= 64;
  }
  __m128i x = _mm_xor_si128(Fold(x0, by128), x1);
  x = _mm_xor_si128(Fold(x, by128), x2);
  x = _mm_xor_si128(Fold(x, by128), x3);
  while (n >= 16) {
    x = _mm_xor_si128(Fold(x, by128), load(p));
    p += 16;
    n -= 16;
  }
  // The 16 bytes left in the register have the remainder of all that came
  // before: their CRC from a zero register is the CRC so far.
  unsigned char rest[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(rest), x);
  return TableUpdate(TableUpdate(0, rest, sizeof(rest)), p, n);
}

bool HasClmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
  return has;
}

#endif

const unsigned char* Bytes(std::string_view data) {
  return reinterpret_cast<const unsigned char*>(data.data());
}

}  // namespace

uint64_t Crc64NvmeExtend(uint64_t crc, std::string_view data) {
#if defined(__x86_64__)
  if (HasClmul()) return ~ClmulUpdate(~crc, Bytes(data), data.size());
#endif
  return ~TableUpdate(~crc, Bytes(data), data.size());
}

uint64_t Crc64Nvme(std::string_view data) { return Crc64NvmeExtend(0, data); }

namespace internal {
uint64_t Crc64NvmeExtendPortable(uint64_t crc, std::string_view data) {
  return ~TableUpdate(~crc, Bytes(data), data.size());
}
}  // namespace internal

}  // namespace cairn

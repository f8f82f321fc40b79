// Deterministic incompressible test data.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace cairn {

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

}  // namespace cairn

// Files as the rot tests see them: whole byte strings to keep and compare,
// and single bytes to damage in place.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

namespace cairn {

// Every byte of the file at `path`; "" when it cannot be read.
inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// XORs the byte at `position` of the file at `path` with `mask`, in place.
inline void FlipByte(const std::string& path, uint64_t position, char mask = 0x20) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(position));
  char byte = 0;
  file.get(byte);
  file.seekp(static_cast<std::streamoff>(position));
  file.put(static_cast<char>(byte ^ mask));
}

}  // namespace cairn

// Fixed-width integer encoding for on-disk formats. Little-endian for record
// fields; big-endian for RocksDB keys, so byte order sorts like the numbers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn {

inline void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
inline void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
inline void PutBigEndian64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint64_t DecodeBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Reads fields in order from a buffer; every read checks the length first,
// so a truncated or hostile record fails instead of reading past the end.
class Decoder {
 public:
  explicit Decoder(std::string_view data) : data_(data) {}
  bool Fixed32(uint32_t* v) {
    if (data_.size() < 4) return false;
    *v = DecodeFixed32(data_.data());
    data_.remove_prefix(4);
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (data_.size() < 8) return false;
    *v = DecodeFixed64(data_.data());
    data_.remove_prefix(8);
    return true;
  }
  // A length-prefixed (fixed32) byte string.
  bool Bytes(std::string* v) {
    uint32_t n;
    if (!Fixed32(&n) || data_.size() < n) return false;
    v->assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }
  bool empty() const { return data_.empty(); }
  std::string_view rest() const { return data_; }

 private:
  std::string_view data_;
};

// Parses all of `text` as lowercase hex digits (the %x of file names); false
// if it is empty, longer than 16 digits or holds anything else.
inline bool ParseHex(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 16) return false;
  uint64_t v = 0;
  for (char c : text) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

inline void PutBytes(std::string* out, std::string_view v) {
  PutFixed32(out, static_cast<uint32_t>(v.size()));
  out->append(v);
}

}  // namespace cairn

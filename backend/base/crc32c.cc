#include <isa-l/crc.h>

#include "backend/base/crc32c.h"

namespace cairn {

// ISA-L's crc32_iscsi neither pre- nor post-inverts; the standard CRC32C
// (RFC 3720, S3's x-amz-checksum-crc32c) does both, so we invert around it.
uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  auto* bytes =
      reinterpret_cast<unsigned char*>(const_cast<char*>(data.data()));  // ISA-L only reads
  return ~crc32_iscsi(bytes, static_cast<int>(data.size()), ~crc);
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

}  // namespace cairn

// CRC32C (Castagnoli), the standard variant S3 uses for
// x-amz-checksum-crc32c, computed with ISA-L's hardware-accelerated
// crc32_iscsi. Crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstdint>
#include <string_view>

namespace cairn {

uint32_t Crc32c(std::string_view data);
// Continues a CRC over more data: Crc32cExtend(Crc32c(a), b) == Crc32c(a+b).
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);

}  // namespace cairn

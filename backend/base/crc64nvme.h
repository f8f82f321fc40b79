// CRC-64/NVME (poly 0xAD93D23594C93659, reflected, init and xorout all
// ones), the CRC S3 uses for x-amz-checksum-crc64nvme and computes for
// every object uploaded without a checksum. Debian 12's ISA-L (2.30)
// predates it, so it is ours: carry-less multiplication (PCLMULQDQ) where
// the CPU has it, tables elsewhere. Crc64Nvme("123456789") ==
// 0xAE8B14860A799888.
#pragma once

#include <cstdint>
#include <string_view>

namespace cairn {

uint64_t Crc64Nvme(std::string_view data);
// Continues a CRC over more data: Crc64NvmeExtend(Crc64Nvme(a), b) ==
// Crc64Nvme(a+b).
uint64_t Crc64NvmeExtend(uint64_t crc, std::string_view data);

namespace internal {
// The table-driven computation alone, which the fast one must match.
uint64_t Crc64NvmeExtendPortable(uint64_t crc, std::string_view data);
}  // namespace internal

}  // namespace cairn

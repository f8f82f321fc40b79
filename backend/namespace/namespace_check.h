// Offline consistency check of the namespace database, for `cairn fsck`.
//
// Reads every record and cross-checks them: directory entries against the
// inodes they name and the listing index, link counts against the entries,
// extents against file sizes and the blobs they reference, blob reference
// counts and GC queue entries, and the volume's counters. Reports every
// problem it finds; changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

struct NamespaceCounters {
  uint64_t next_inode = 0;
  uint64_t next_blob = 0;
  uint64_t inode_count = 0;
  uint64_t data_bytes = 0;
};

// Keeps one entry per inode and blob in memory.
absl::StatusOr<NamespaceCheckReport> CheckNamespace(KvReader& reader,
                                                    const NamespaceCounters& counters);

}  // namespace cairn

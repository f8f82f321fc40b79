// Checking a backup in the replica whole without restoring it (cairn
// restore --verify).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/services/backup.h"

namespace cairn {

struct VerifyReport {
  std::string backup_id;
  uint64_t blobs = 0;
  uint64_t bytes = 0;
  uint64_t missing = 0;
  uint64_t damaged = 0;
  std::vector<std::string> problems;  // the first hundred, one line each
  bool ok() const { return missing == 0 && damaged == 0 && problems.empty(); }
};

// Reads the backup's files and every blob it needs from the replica and
// checks them against the manifest and the blob list; writes nothing.
absl::StatusOr<VerifyReport> VerifyBackup(BackupStore& store, RemoteBlobStore& replica,
                                          const BackupManifest& manifest, int parallel,
                                          const RestoreProgress& progress);

}  // namespace cairn

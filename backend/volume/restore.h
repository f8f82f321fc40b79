// Rebuilding a whole volume from a backup in its replica (cairn restore).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/erasure_code.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/config/config.h"
#include "backend/services/backup.h"
#include "backend/volume/io.h"

namespace cairn {

struct RestoreOptions {
  std::vector<std::string> disks;            // empty: NEW_VOLUME_DIR/data
  std::optional<Redundancy> redundancy;      // default by disk count
  // Write the [replica] section into the new volume's cairn.toml, so it
  // goes on replicating (and collecting garbage) where the lost one did.
  std::optional<ReplicaConfig> take_over;
  int parallel = 8;
  RestoreProgress progress;
  Io io;  // the new volume's disks and clock
};

struct RestoreReport {
  std::string backup_id;
  uint64_t blobs = 0;         // fetched now
  uint64_t bytes = 0;
  uint64_t already_there = 0; // kept from an interrupted run
  uint64_t inodes = 0;
};

// Builds a new volume in `volume_dir` from a backup: the namespace from the
// checkpoint, every blob fetched from the replica (eagerly, verified) and
// stored on the new disks. `volume_dir` must be empty, or hold an
// interrupted restore of the same backup (which is then finished, keeping
// the blobs already stored). The volume keeps its id. Until the end a marker
// file makes the half-built volume unmountable.
absl::StatusOr<RestoreReport> RestoreVolume(BackupStore& store, RemoteBlobStore& replica,
                                            const BackupManifest& manifest,
                                            const std::string& volume_dir,
                                            const RestoreOptions& options);

}  // namespace cairn

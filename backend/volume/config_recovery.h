// The way back from a lost or edited cairn.toml that keeps the data: the
// namespace knows the volume's id, its format and (since the volume was last
// mounted) the whole file as it was then, and every disk's marker knows the
// volume and its place in it. `cairn fsck --repair` uses these; a format
// would erase the volume instead.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/config/config.h"
#include "backend/volume/io.h"

namespace cairn {

struct RecoveredConfig {
  VolumeConfig config;
  // What the operator should check or add back (secrets never kept in the
  // namespace, settings that took their defaults, disks without a marker).
  std::vector<std::string> notes;
};

// Writes VOLUME_DIR/cairn.toml again, taking the volume lock while it
// works. The settings are the namespace's record of the last mount, or,
// for a volume never mounted by this cairn, the defaults. `disks`, when
// given (any order), replaces the recorded disk list; without a record it
// is needed whenever the volume had --disk directories. Every disk whose
// marker can be read must name this volume and fit the list; the written
// list is in marker order. Refuses, writing nothing, when cairn.toml
// exists, when the namespace is missing or names no volume, or when the
// disks disagree.
absl::StatusOr<RecoveredConfig> RecoverVolumeConfig(const std::string& volume_dir,
                                                    const std::vector<std::string>& disks,
                                                    const Io& io = Io());

// Puts back the format_version the namespace recorded when cairn.toml says
// another (an edit Volume::Open refuses). Returns what it changed, nothing
// when the two agree.
absl::StatusOr<std::optional<std::string>> RepairConfigFormatVersion(
    const std::string& volume_dir, const Io& io = Io());

}  // namespace cairn

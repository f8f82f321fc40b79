// A cairn mount's entry in util-linux's table of userspace mount state
// (/run/mount/utab). umount(8) identifies a mount that has no entry by
// statfs alone, which says only "fuse", so it unmounts without a helper and
// returns while the daemon is still storing what was written. With an entry
// it reads the full type, fuse.cairn, and runs umount.fuse.cairn, which
// waits for the daemon as cairn umount does.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace cairn::cli {

// Adds the entry for the mount of `volume_dir` at `mountpoint`. Fails where
// the table is not writable (a mount by a user other than root).
absl::Status RecordInMountTable(const std::string& volume_dir, const std::string& mountpoint);

// Removes the entry for `mountpoint`, if there is one; a stale entry only
// sends a later umount(8) the long way round, so failures are ignored.
void ForgetInMountTable(const std::string& mountpoint);

}  // namespace cairn::cli

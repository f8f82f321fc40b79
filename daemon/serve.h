// The mounted daemon: everything a mount runs, built here and stopped here
// in order. The journal and the write cache over the volume, the FUSE
// session, the background services, the control channel, the metrics
// endpoint and the stats file for cairn status.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "backend/volume/volume.h"
#include "fs/fuse_session.h"

namespace cairn {

// Mounts `volume` at options.mountpoint and serves it until the filesystem
// is unmounted (umount, fusermount3 -u) or SIGTERM/SIGINT/SIGHUP arrives.
// `on_ready` runs once the kernel mount is in place, before the first
// request is served, with what the user must hear of the journal's replay
// (damage it skipped; empty when there was none). Before returning, stores every written byte and syncs
// the namespace; returns the first error of that flush (the data is then
// kept in the writeback journal for the next mount).
absl::Status ServeVolume(Volume& volume, const FuseMountOptions& options,
                         const std::function<void(const std::string& replay_warning)>& on_ready);

}  // namespace cairn

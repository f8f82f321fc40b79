// The mounted daemon: everything a mount runs, built here and stopped here
// in order. The journal and the write cache over the volume, the FUSE
// session, the background services, the control channel, the metrics
// endpoint and the stats file for cairn status.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "backend/volume/volume.h"
#include "fs/fuse_session.h"

namespace cairn {

// How the daemon serves a volume.
struct ServeOptions {
  // Where and how to mount. None: the daemon runs without FUSE and serves
  // the volume over S3 only (`cairn serve s3` of an unmounted volume).
  std::optional<FuseMountOptions> fuse;
  // Serve S3 at this HOST:PORT instead of [s3] listen ("": as configured).
  std::string s3_listen;
};

// What the daemon reports once it serves.
struct ServeReady {
  // What the user must hear of the journal's replay (damage it skipped;
  // empty when there was none).
  std::string replay_warning;
  // Where S3 is served ("http://HOST:PORT"), empty when it is not.
  std::string s3_url;
};

// Serves `volume` until the filesystem is unmounted (umount, fusermount3 -u)
// or SIGTERM/SIGINT/SIGHUP arrives (the only way to stop a daemon without a
// mount). `on_ready` runs once the kernel mount (or the S3 listener) is in
// place, before the first request is served. Before returning, stores
// every written byte and syncs the namespace; returns the first error of
// that flush (the data is then kept in the writeback journal for the next
// start).
absl::Status ServeVolume(Volume& volume, const ServeOptions& options,
                         const std::function<void(const ServeReady&)>& on_ready);

}  // namespace cairn

// The FUSE face of a volume: serves POSIX operations from the kernel through
// libfuse's low-level API onto the volume's namespace and data cache.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "backend/volume/volume.h"

namespace cairn {

struct FuseMountOptions {
  std::string mountpoint;
  bool allow_other = false;  // let users other than the mounter in
  bool read_only = false;
  bool debug = false;        // libfuse request tracing to stderr
  bool noatime = false;      // never update atime on read
};

// Mounts `volume` at options.mountpoint and serves requests until the
// filesystem is unmounted (umount, fusermount3 -u) or SIGTERM/SIGINT/SIGHUP
// arrives. `on_ready` runs once the kernel mount is in place, before the first
// request is served. Before returning, flushes every dirty byte to the volume
// and syncs the namespace; returns the first error of that flush.
absl::Status ServeFuse(Volume& volume, const FuseMountOptions& options,
                       const std::function<void()>& on_ready);

}  // namespace cairn

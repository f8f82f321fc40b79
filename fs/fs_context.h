// What the FUSE handlers serve: the filesystem, and the counters of the
// requests. Built by the daemon; the handlers (fuse_ops.cc) find it as the
// session's userdata.
#pragma once

#include "fs/file_system.h"
#include "fs/fuse_metrics.h"

struct fuse_session;

namespace cairn {

struct FsContext {
  FileSystem* fs = nullptr;
  // How long the kernel may trust entries and attributes we return. Only
  // this daemon changes the volume and the kernel updates or invalidates its
  // cache for every change it makes through us, so the timeout can be long.
  double cache_timeout_seconds = 3600.0;
  // Requests, errors and latency per operation; always counted (a few
  // relaxed atomic adds), exported when [metrics] is configured.
  FuseMetrics metrics;
  // The session serving it, for notifications to the kernel; set by the
  // mount.
  fuse_session* session = nullptr;
};

}  // namespace cairn

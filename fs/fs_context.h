// What the FUSE handlers serve: the namespace, the data cache over the blob
// store, and the kernel's references to inodes. Built by the daemon; the
// handlers (fuse_ops.cc) find it as the session's userdata.
#pragma once

#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "cache/file_data_cache.h"
#include "fs/fuse_metrics.h"
#include "fs/inode_table.h"

namespace cairn {

struct FsContext {
  NamespaceStore* ns = nullptr;
  BlobStore* blobs = nullptr;
  FileDataCache* cache = nullptr;
  Clock* clock = Clock::Default();
  InodeTable inodes;
  // How long the kernel may trust entries and attributes we return. Only
  // this daemon changes the volume and the kernel updates or invalidates its
  // cache for every change it makes through us, so the timeout can be long.
  double cache_timeout_seconds = 3600.0;
  bool read_only = false;
  // With the writeback cache the kernel keeps mtime/ctime of written files
  // and sends them with setattr; set in init.
  bool kernel_tracks_mtime = false;
  // Requests, errors and latency per operation; always counted (a few
  // relaxed atomic adds), exported when [metrics] is configured.
  FuseMetrics metrics;
};

}  // namespace cairn

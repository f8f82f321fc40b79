// libfuse low-level handlers over an FsContext. Internal to fs/.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "fs/fs_context.h"

namespace cairn {

// The handler table; userdata must be an FsContext. With `shared_locks`
// (the filesystem has FileLocks) it has getlk, setlk and flock, so the
// kernel sends locks to us; without, the kernel keeps them local.
const fuse_lowlevel_ops& CairnFuseOperations(bool shared_locks);

}  // namespace cairn

// libfuse low-level handlers over an FsContext. Internal to fs/.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "fs/fs_context.h"

namespace cairn {

// The handler table; userdata must be an FsContext.
const fuse_lowlevel_ops& CairnFuseOperations();

}  // namespace cairn

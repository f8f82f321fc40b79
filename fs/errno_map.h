// The one place where statuses from the layers below become errno values.
#pragma once

#include "absl/status/status.h"

namespace cairn {

// 0 for OK. Uses the FsErrorKind payload when present (exact POSIX
// condition), else the canonical code.
int ErrnoFromStatus(const absl::Status& status);

}  // namespace cairn

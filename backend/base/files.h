// Whole small files written so a crash leaves the old or the new content,
// never a mix (cairn.toml, markers, last-stop).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cairn {

// Writes `text` to `path` through a temporary file: write, fsync, rename,
// fsync of the directory; the file gets `mode` whatever the umask.
absl::Status WriteFileAtomically(const std::string& path, std::string_view text,
                                 mode_t mode = 0644);

}  // namespace cairn

// Whole small files: written so a crash leaves the old or the new content,
// never a mix (cairn.toml, markers, last-stop), read, and made durable.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn {

// Writes `text` to `path` through a temporary file: write, fsync, rename,
// fsync of the directory; the file gets `mode` whatever the umask.
absl::Status WriteFileAtomically(const std::string& path, std::string_view text,
                                 mode_t mode = 0644);

// The whole content of `path`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Creates (or truncates) `path` with `data` and fsyncs it; the directory
// entry is durable only after SyncDirectory of its directory.
absl::Status WriteFileSynced(const std::string& path, std::string_view data);

// fsync of a directory: entries created, renamed or removed in it survive a
// crash.
absl::Status SyncDirectory(const std::string& dir);

}  // namespace cairn

// Where a file's data is, as the user.cairn.location xattr shows it, and
// the xattr names the tiering reads and the FUSE layer answers.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "backend/base/types.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

// Set (any value) on a file to keep its data on the local disks: the
// tiering policy never moves it out.
inline constexpr char kPinXattr[] = "user.cairn.pin";
// Read-only, computed: where the file's data is (FileLocation).
inline constexpr char kLocationXattr[] = "user.cairn.location";

// "local", "remote", "local+remote" or "mixed": where file `ino`'s data is
// (for the user.cairn.location xattr). Inline data and holes count as local.
absl::StatusOr<std::string> FileLocation(NamespaceStore& ns, InodeId ino);

}  // namespace cairn

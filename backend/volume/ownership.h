// Who may read a volume's backing store: its owner alone. The journal
// segments, the namespace (small files live inline in it) and the shards
// hold every file's bytes, whatever the files' own modes say, so the
// directories that hold them (VOLUME_DIR, cache_dir and every disk) must be
// owner-only, and no directory above them may let another user replace
// them (or plant a link where the daemon will write).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "backend/base/env.h"
#include "backend/config/config.h"

namespace cairn {

struct OwnershipProblem {
  std::string path;
  std::string why;  // "readable and writable by other users (mode 0755)"
  std::string fix;  // a command that fixes it, or advice
};

// The roots of a volume's backing store: VOLUME_DIR, cache_dir and the
// data disks.
std::vector<std::string> BackingStoreRoots(const std::string& volume_dir,
                                           const VolumeConfig& config);

// Checks that every root that exists is a directory owned by `uid` with no
// permission for group or others, and that every directory above every
// root, existing or not, is owned by root or `uid` and writable by no one
// else (unless sticky, as /tmp). A missing root is no problem (cache_dir
// is made at mount).
// With `check_roots` false only the directories above them are checked
// (format, which makes the roots owner-only itself).
std::vector<OwnershipProblem> CheckVolumeOwnership(Env* env, const std::string& volume_dir,
                                                   const VolumeConfig& config, uint32_t uid,
                                                   bool check_roots = true);

// kFailedPrecondition listing the problems and the fixes, with the advice
// to run `cairn fsck --repair VOLUME_DIR` for a volume made by an older
// cairn; OK when there are none.
absl::Status OwnershipError(const std::string& volume_dir,
                            const std::vector<OwnershipProblem>& problems);

// Makes everything under the roots owner-only: directories 0700, files
// 0600 (what an older cairn made 0755 and 0644). It cannot change an owner
// or the directories above: those problems stay. `on_fixed` is called with
// every path changed. Returns how many it changed.
absl::StatusOr<uint64_t> MakeVolumeOwnerOnly(
    Env* env, const std::string& volume_dir, const VolumeConfig& config,
    const std::function<void(const std::string&)>& on_fixed = nullptr);

}  // namespace cairn

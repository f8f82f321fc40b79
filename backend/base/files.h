// Whole files and directory trees over an Env: small files written so a
// crash leaves the old or the new content, never a mix (cairn.toml, disk
// markers, last-stop), read whole, or written and made durable; trees made
// and removed. Every failure is returned, the directory fsync's included.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/env.h"

namespace cairn {

// Writes `bytes` to `path` through PATH.tmp: write, fsync, rename over
// `path`, fsync of the directory. The file gets `permissions` whatever the
// umask.
absl::Status WriteFileAtomically(Env* env, const std::string& path, std::string_view bytes,
                                 uint32_t permissions = 0600);

// Replaces `path` with `bytes` through PATH.tmp and a rename, without any
// fsync: readers see the old or the new content whole, and a crash may
// leave either (for files rewritten every few seconds, like stats.json).
absl::Status ReplaceFile(Env* env, const std::string& path, std::string_view bytes,
                         uint32_t permissions = 0600);

// The whole content of `path`.
absl::StatusOr<std::string> ReadFileToString(Env* env, const std::string& path);

// Creates (or empties) `path` with `bytes` and fsyncs it. Its name is
// durable only after a SyncDir of its directory.
absl::Status WriteFileSynced(Env* env, const std::string& path, std::string_view bytes,
                             uint32_t permissions = 0600);

// Creates `path` and any missing parents, durably (each new directory's
// parent is synced).
absl::Status CreateDirs(Env* env, const std::string& path, uint32_t permissions = 0700);

// Removes `path` and, for a directory, everything in it; OK if absent.
absl::Status RemoveAll(Env* env, const std::string& path);

// `path` made absolute (against the working directory) and normalised
// ("." and ".." resolved, repeated slashes dropped) without touching the
// disk: symlinks are not resolved.
std::string AbsolutePath(const std::string& path);

// `path` is `dir` or below it, by their spelling (both absolute and
// normalised, as AbsolutePath gives them).
bool PathIsWithin(const std::string& path, const std::string& dir);

// The directory part of `path` ("/a/b" for "/a/b/c"; "." without a slash).
std::string DirName(const std::string& path);

}  // namespace cairn

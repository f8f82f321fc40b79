// How S3 names map onto the tree: buckets are top-level directories with
// valid bucket names, and a key is the path below its bucket (listings:
// s3_key_walk.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::frontend {

// S3's rules for new buckets: 3-63 of [a-z0-9.-], starting and ending with
// a letter or digit, no "..", not shaped like an IPv4 address. A directory
// at the top with another name is not a bucket.
bool IsValidBucketName(std::string_view name);

// A key's path components. `dir_key` says the key ends with "/" (a
// directory object). InvalidArgument for an empty key, an empty, "." or
// ".." component (the tree cannot hold them), or a NUL byte;
// KeyTooLongError for a key over 1024 bytes or a component over 255.
struct KeyPath {
  std::vector<std::string> components;
  bool dir_key = false;
};
absl::StatusOr<KeyPath> ParseKey(std::string_view key);

}  // namespace cairn::frontend

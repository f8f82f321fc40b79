// How S3 names map onto the tree: buckets are top-level directories with
// valid bucket names, a key is the path below its bucket, and listings go
// in S3's order (bytewise over whole keys, where a directory's keys all
// start with "name/").
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

// One directory's names in S3 order: a subdirectory sorts as "name/", so
// "a-b" and "a.b" come before the keys of directory "a", and "a0" after.
struct ListedName {
  std::string name;
  bool is_dir = false;
  uint64_t ino = 0;
  // The name as it sorts among keys: name, or name + "/" for a directory.
  std::string SortKey() const { return is_dir ? name + "/" : name; }
};
void SortInKeyOrder(std::vector<ListedName>& names);

}  // namespace cairn::frontend

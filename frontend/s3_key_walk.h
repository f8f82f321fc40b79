// One page of a bucket listing (ListObjects v1 and v2, ListObjectVersions):
// the keys and common prefixes after a marker, in S3's order, with S3's
// prefix, delimiter and limit. Internal to frontend/.
//
// Promises:
// - Items come in S3's order, bytewise over whole keys, although a
//   directory's entries are stored in name order: a subdirectory "a" holds
//   keys "a/...", which sort after "a-b" and "a.b" ('-' and '.' are below
//   '/') and before "a0".
// - A page costs the entries it returns (and those skipped on the way:
//   symlinks, keys the key may not see, empty directory trees), plus a
//   seek per directory on the path to the marker: the walk range-scans
//   each directory from the marker's name (FileSystem::ScanDir), never
//   reads a directory whole and never sorts one. A common prefix that ends
//   inside a name (a delimiter other than "/") skips the names it covers
//   with one seek.
// - Memory is the page, plus, for each directory level on the walk's path,
//   an open scan and one held-back subdirectory for each byte of the name
//   being scanned that sorts before '/'.
//
// Not promised: a snapshot. Names added or removed during the walk may or
// may not appear, as for readdir(3); a listing resumed from a marker goes
// on from that key in the tree as it is then.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "frontend/s3_auth.h"
#include "fs/file_system.h"

namespace cairn::frontend {

class KeyWalk {
 public:
  struct Item {
    std::string key;
    bool common_prefix = false;
    InodeId ino = 0;
    bool dir_object = false;  // a directory marked as the object "key/"
  };
  // `after`: the marker, exclusive (empty: from the start). `max`: items
  // per page; a walk that finds one more is truncated().
  KeyWalk(FileSystem& fs, const S3Key& who, std::string prefix, std::string delimiter,
          std::string after, size_t max);

  // Walks from `bucket`; fills items() and truncated().
  absl::Status Run(const InodeAttr& bucket);
  const std::vector<Item>& items() const { return items_; }
  bool truncated() const { return truncated_; }

 private:
  // Where a directory's scan stands.
  struct Scan {
    InodeAttr dir;
    std::string dir_key;  // "" for the bucket, else "a/b/"
    // Subdirectories already scanned whose keys ("name/") sort after the
    // names still to come: each is a prefix of those names followed by a
    // byte below '/'. The last sorts first.
    std::vector<DirEntry> pending;
    // Set by a common prefix that ends inside a name: the next name to
    // read (all names before it roll up into a prefix already settled).
    std::string skip_to;
    bool stop = false;  // the page is full
  };

  // Lists `dir` (whose keys all start with `dir_key`) in key order. False
  // once the page is full.
  absl::StatusOr<bool> Walk(const InodeAttr& dir, const std::string& dir_key);
  // Where the scan of `scan.dir` starts: the first name it must read, after
  // filling scan.pending with the directories whose keys are after the
  // marker though their names come at or before the marker's.
  absl::Status Seek(Scan& scan, std::string& start);
  // One entry, in key order. Sets scan.stop when the page is full.
  absl::Status Visit(Scan& scan, const DirEntry& entry);
  // Visits the pending directories whose keys sort before `sort_key`
  // (all of them if null).
  absl::Status VisitPendingBefore(Scan& scan, const std::string* sort_key);
  // False once the limit is reached.
  bool Emit(Item item);
  // A file is a key; a directory holds one if it is an object or has one
  // below it (a tree of empty directories makes no common prefix).
  bool HoldsAKey(const DirEntry& entry);

  FileSystem& fs_;
  const S3Key& who_;
  const std::string prefix_, delimiter_, after_;
  const size_t max_;
  std::vector<Item> items_;
  bool truncated_ = false;
};

}  // namespace cairn::frontend

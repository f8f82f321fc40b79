// Value types shared by the namespace, the blob store and the layers above.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace cairn {

using InodeId = uint64_t;
using BlobId = uint64_t;

inline constexpr InodeId kRootInode = 1;
inline constexpr BlobId kNoBlob = 0;

// Longest name of one directory entry, in bytes (as ext4).
inline constexpr size_t kMaxNameBytes = 255;
// Most hard links one inode may have (as ext4); one more is EMLINK.
inline constexpr uint32_t kMaxLinks = 65000;
// Largest file size we accept (EFBIG beyond): the kernel's own limit for a
// FUSE file (MAX_LFS_FILESIZE, the largest off_t). A smaller one cannot be
// enforced at write(2): with the writeback cache the kernel accepts the
// write into its page cache, and the daemon's refusal came only at fsync,
// after the caller was told the bytes were written. Every offset and end
// stays below 2^63, so unsigned sums of them cannot overflow.
inline constexpr uint64_t kMaxFileBytes = uint64_t{INT64_MAX};

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  friend bool operator==(const Timespec&, const Timespec&) = default;
  // Earlier before later: seconds, then nanoseconds.
  friend auto operator<=>(const Timespec&, const Timespec&) = default;
};

// Attributes of one inode as POSIX stat(2) reports them.
struct InodeAttr {
  InodeId ino = 0;
  uint32_t mode = 0;  // file type and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  // Bytes of file data actually stored (extents), for st_blocks: a sparse
  // file reports fewer blocks than its size.
  uint64_t allocated_bytes = 0;
  Timespec atime;
  Timespec mtime;
  Timespec ctime;
  Timespec btime;
  // For directories: the inode that holds this directory's entry (".."). The
  // root is its own parent. Zero for other types.
  InodeId parent = 0;
  friend bool operator==(const InodeAttr&, const InodeAttr&) = default;
};

// Who performs an operation: owner of the inodes it creates.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

}  // namespace cairn

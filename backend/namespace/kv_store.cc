#include "backend/namespace/kv_store.h"

namespace cairn {

const char* KvSpaceName(KvSpace space) {
  // The column family names of every RocksDB volume: never rename one.
  static const char* const kNames[kKvSpaceCount] = {
      "inodes", "dentries", "dircookies", "xattrs", "extents",
      "blobs",  "gc",       "orphans",    "meta"};
  return kNames[static_cast<int>(space)];
}

}  // namespace cairn

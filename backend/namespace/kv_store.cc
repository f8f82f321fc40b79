#include "backend/namespace/kv_store.h"

namespace cairn {

const char* KvSpaceName(KvSpace space) {
  // The column family names of every RocksDB volume: never rename one.
  static const char* const kNames[kKvSpaceCount] = {
      "inodes", "dentries", "dircookies", "xattrs", "extents",
      "blobs",  "gc",       "orphans",    "meta"};
  return kNames[static_cast<int>(space)];
}

std::string KvPrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(end.back() + 1);
  return end;
}

}  // namespace cairn

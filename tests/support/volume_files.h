// Files made straight through a volume's namespace and blob store, for tests
// of the storage layers under the FUSE layer.
#pragma once

#include <sys/stat.h>

#include <string>

#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "gtest/gtest.h"

namespace cairn {

// Stores `data` as the only blob of a new file `name` in the root directory
// (through `blobs`, then committed); returns the blob id.
inline BlobId WriteFileAsOneBlob(NamespaceStore& ns, BlobStore& blobs, const std::string& name,
                                 const std::string& data) {
  NewNode node;
  node.mode = S_IFREG | 0644;
  InodeId ino = ns.MakeNode(kRootInode, name, node, {})->ino;
  BlobId id = *ns.AllocateBlobIds(1);
  BlobInfo info = *blobs.Put(id, data);
  Extent extent;
  extent.length = data.size();
  extent.blob_id = id;
  EXPECT_TRUE(ns.CommitWrite(ino, {NewBlob{id, info.length, info.crc32c}}, {extent}).ok());
  return id;
}

}  // namespace cairn

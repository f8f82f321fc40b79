// What the kernel cached of what other hosts changed (a volume several
// hosts mount): which FUSE notifications a namespace change calls for,
// behind a seam a test replaces.
//
// The notifications are sent from the namespace's watcher thread, never
// from a request handler: the kernel may hold the directory's lock while it
// waits for a request of ours, and a handler that waited for the kernel
// could deadlock with it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/base/types.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class KernelCache {
 public:
  virtual ~KernelCache() = default;
  // fuse_lowlevel_notify_inval_entry: the kernel looks the name up again.
  virtual void ForgetName(InodeId parent, const std::string& name) = 0;
  // fuse_lowlevel_notify_inval_inode over the whole file: attributes and
  // cached pages (data, a directory's listing) are fetched again.
  virtual void ForgetInode(InodeId ino) = 0;
};

// Sends `kernel` what `changes` make stale: an entry change forgets the
// name, an inode change the inode.
void ForgetChanges(const std::vector<NamespaceChange>& changes, KernelCache& kernel);

// Subscribes `kernel` (which must outlive the result) to the changes other
// hosts make to `ns`. nullptr, and OK, when no other host can change it.
absl::StatusOr<std::unique_ptr<NamespaceWatch>> ForgetRemoteChanges(NamespaceStore& ns,
                                                                    KernelCache* kernel);

}  // namespace cairn

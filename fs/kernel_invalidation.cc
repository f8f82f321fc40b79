#include "fs/kernel_invalidation.h"

namespace cairn {

void ForgetChanges(const std::vector<NamespaceChange>& changes, KernelCache& kernel) {
  for (const NamespaceChange& c : changes) {
    switch (c.kind) {
      case NamespaceChange::Kind::kEntry:
        kernel.ForgetName(c.ino, c.name);
        break;
      case NamespaceChange::Kind::kInode:
        kernel.ForgetInode(c.ino);
        break;
    }
  }
}

absl::StatusOr<std::unique_ptr<NamespaceWatch>> ForgetRemoteChanges(NamespaceStore& ns,
                                                                    KernelCache* kernel) {
  absl::StatusOr<std::unique_ptr<NamespaceWatch>> watch = ns.WatchChanges(
      [kernel](const std::vector<NamespaceChange>& changes) { ForgetChanges(changes, *kernel); });
  if (absl::IsUnimplemented(watch.status())) return nullptr;
  return watch;
}

}  // namespace cairn

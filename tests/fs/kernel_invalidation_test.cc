// Which kernel notifications the changes other hosts make call for, without
// FUSE: a recording KernelCache in place of the mount.
#include "fs/kernel_invalidation.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cairn {
namespace {

class RecordingKernel : public KernelCache {
 public:
  void ForgetName(InodeId parent, const std::string& name) override {
    calls.push_back("entry " + std::to_string(parent) + " " + name);
  }
  void ForgetInode(InodeId ino) override { calls.push_back("inode " + std::to_string(ino)); }
  std::vector<std::string> calls;
};

TEST(KernelInvalidation, EntryChangesForgetNamesAndInodeChangesForgetInodes) {
  RecordingKernel kernel;
  ForgetChanges({{NamespaceChange::Kind::kEntry, 1, "renamed"},
                 {NamespaceChange::Kind::kInode, 1, ""},
                 {NamespaceChange::Kind::kInode, 42, ""},
                 {NamespaceChange::Kind::kEntry, 42, "child"}},
                kernel);
  EXPECT_EQ(kernel.calls, (std::vector<std::string>{"entry 1 renamed", "inode 1", "inode 42",
                                                    "entry 42 child"}));
}

TEST(KernelInvalidation, NothingChangedNothingForgotten) {
  RecordingKernel kernel;
  ForgetChanges({}, kernel);
  EXPECT_TRUE(kernel.calls.empty());
}

}  // namespace
}  // namespace cairn

// The kernel's references to inodes, and the freeing of a removed inode
// that no handle has open (fs/inode_table.h).
#include "fs/inode_table.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

InodeAttr AttrOf(InodeId ino) {
  InodeAttr attr;
  attr.ino = ino;
  attr.mode = 0100644;
  attr.size = 5;
  return attr;
}

TEST(InodeTableTest, AnOpenHandleKeepsTheInodeFromBeingFreed) {
  InodeTable table;
  table.AddLookup(7);
  ASSERT_TRUE(table.AddOpen(7));
  EXPECT_FALSE(table.FreeIfUnopened(7));
  EXPECT_FALSE(table.ReleaseOpen(7)) << "the lookup still holds it";
  EXPECT_TRUE(table.FreeIfUnopened(7));
}

TEST(InodeTableTest, AFreedInodeAnswersWithItsLastAttributesUntilForgotten) {
  InodeTable table;
  table.AddLookup(7, 2);
  ASSERT_TRUE(table.FreeIfUnopened(7));
  EXPECT_FALSE(table.FreedAttr(7)) << "no attributes before the commit went through";
  table.Freed(7, AttrOf(7));
  ASSERT_TRUE(table.FreedAttr(7));
  EXPECT_EQ(table.FreedAttr(7)->size, 5u);
  EXPECT_FALSE(table.AddOpen(7)) << "an open that raced with the removal fails";
  std::optional<InodeAttr> changed =
      table.FreedAttr(7, [](InodeAttr& attr) { attr.ctime = Timespec{9, 0}; });
  EXPECT_EQ(changed->ctime, (Timespec{9, 0}));
  EXPECT_EQ(table.FreedAttr(7)->ctime, (Timespec{9, 0}));
  EXPECT_FALSE(table.Forget(7, 1));
  EXPECT_FALSE(table.Forget(7, 1)) << "already freed: nothing left to release";
  EXPECT_FALSE(table.FreedAttr(7));
  EXPECT_FALSE(table.InUse(7));
}

TEST(InodeTableTest, AFailedCommitUndoesTheMark) {
  InodeTable table;
  table.AddLookup(7);
  ASSERT_TRUE(table.FreeIfUnopened(7));
  table.NotFreed(7);
  EXPECT_FALSE(table.FreedAttr(7));
  EXPECT_TRUE(table.AddOpen(7)) << "the file still has its name";
  table.ReleaseOpen(7);
  EXPECT_TRUE(table.Forget(7, 1)) << "unused, not freed: the caller releases it";
}

TEST(InodeTableTest, AnInodeTheKernelDoesNotHoldNeedsNoMark) {
  InodeTable table;
  EXPECT_TRUE(table.FreeIfUnopened(9));
  EXPECT_FALSE(table.InUse(9));
}

}  // namespace
}  // namespace cairn

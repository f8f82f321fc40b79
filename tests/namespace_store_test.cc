#include "backend/namespace_store.h"

#include <sys/stat.h>

#include "backend/fs_error.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

class FakeClock : public Clock {
 public:
  Timespec Now() override { return now; }
  Timespec now{1000000, 0};
};

FsErrorKind KindOf(const absl::Status& s) {
  std::optional<FsErrorKind> kind = GetFsErrorKind(s);
  EXPECT_TRUE(kind.has_value()) << s;
  return kind.value_or(FsErrorKind::kIo);
}

class NamespaceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    store_.reset();
    NamespaceOptions options;
    options.create_if_missing = true;
    options.clock = &clock_;
    options.gc_grace_seconds = 60;
    auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  InodeAttr Make(InodeId parent, const std::string& name, uint32_t mode) {
    NewNode node;
    node.mode = mode;
    auto attr = store_->MakeNode(parent, name, node, Caller{1000, 100});
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.value_or(InodeAttr{});
  }
  Extent BlobExtent(uint64_t offset, uint64_t length, BlobId blob,
                    uint64_t blob_offset = 0) {
    Extent e;
    e.file_offset = offset;
    e.length = length;
    e.blob_id = blob;
    e.blob_offset = blob_offset;
    return e;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<NamespaceStore> store_;
};

TEST_F(NamespaceStoreTest, NewVolumeHasRootDirectory) {
  auto root = store_->GetAttr(kRootInode);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(S_ISDIR(root->mode));
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(root->parent, kRootInode);
}

TEST_F(NamespaceStoreTest, NamesAreValidated) {
  NewNode node;
  node.mode = S_IFREG | 0644;
  EXPECT_EQ(KindOf(store_->MakeNode(kRootInode, "", node, {}).status()),
            FsErrorKind::kInvalid);
  EXPECT_EQ(KindOf(store_->MakeNode(kRootInode, "a/b", node, {}).status()),
            FsErrorKind::kInvalid);
  EXPECT_EQ(KindOf(store_->MakeNode(kRootInode, std::string(256, 'x'), node, {}).status()),
            FsErrorKind::kNameTooLong);
  EXPECT_TRUE(store_->MakeNode(kRootInode, std::string(255, 'x'), node, {}).ok());
  std::string binary("\x01\xff name", 7);
  EXPECT_TRUE(store_->MakeNode(kRootInode, binary, node, {}).ok());
  EXPECT_TRUE(store_->Lookup(kRootInode, binary).ok());
}

TEST_F(NamespaceStoreTest, CreateSetsOwnerTimesAndParentCounts) {
  clock_.now = {5000, 7};
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  EXPECT_EQ(dir.uid, 1000u);
  EXPECT_EQ(dir.gid, 100u);
  EXPECT_EQ(dir.mtime, (Timespec{5000, 7}));
  EXPECT_EQ(store_->GetAttr(kRootInode)->nlink, 3u);
  EXPECT_EQ(store_->GetAttr(kRootInode)->mtime, (Timespec{5000, 7}));
  NewNode node;
  node.mode = S_IFREG | 0644;
  EXPECT_EQ(KindOf(store_->MakeNode(kRootInode, "d", node, {}).status()),
            FsErrorKind::kExists);
}

TEST_F(NamespaceStoreTest, SetgidDirectoryGivesGroupAndBit) {
  InodeAttr dir = Make(kRootInode, "g", S_IFDIR | 0755);
  SetAttrRequest request;
  request.gid = 777;
  request.mode = 02775;
  ASSERT_TRUE(store_->SetAttr(dir.ino, request).ok());
  InodeAttr file = Make(dir.ino, "f", S_IFREG | 0644);
  InodeAttr sub = Make(dir.ino, "s", S_IFDIR | 0755);
  EXPECT_EQ(file.gid, 777u);
  EXPECT_EQ(sub.gid, 777u);
  EXPECT_TRUE(sub.mode & S_ISGID);
  EXPECT_FALSE(file.mode & S_ISGID);
}

TEST_F(NamespaceStoreTest, SymlinkKeepsTargetAndSize) {
  NewNode node;
  node.mode = S_IFLNK | 0777;
  node.symlink_target = "../some/where";
  auto link = store_->MakeNode(kRootInode, "l", node, {});
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->size, 13u);
  EXPECT_EQ(*store_->ReadLink(link->ino), "../some/where");
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->ReadLink(file.ino).status()), FsErrorKind::kInvalid);
}

TEST_F(NamespaceStoreTest, ReadDirResumesAfterCookieWhileDirectoryChanges) {
  for (const char* name : {"a", "b", "c", "d"}) Make(kRootInode, name, S_IFREG | 0644);
  std::vector<DirEntry> first;
  ASSERT_TRUE(store_->ReadDir(kRootInode, 0, [&](const DirEntry& e) {
                first.push_back(e);
                return first.size() < 2;
              }).ok());
  ASSERT_EQ(first.size(), 2u);
  // Changes behind and ahead of the position.
  ASSERT_TRUE(store_->Unlink(kRootInode, first[0].name).ok());
  Make(kRootInode, "e", S_IFREG | 0644);
  std::vector<std::string> rest;
  ASSERT_TRUE(store_->ReadDir(kRootInode, first[1].cookie, [&](const DirEntry& e) {
                rest.push_back(e.name);
                return true;
              }).ok());
  EXPECT_EQ(rest, (std::vector<std::string>{"c", "d", "e"}));
}

TEST_F(NamespaceStoreTest, UnlinkedOpenFileIsOrphanUntilReleased) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  Extent data;
  data.file_offset = 0;
  data.length = 3;
  data.inline_data = "abc";
  ASSERT_TRUE(store_->CommitWrite(file.ino, {}, {data}).ok());
  auto removed = store_->Unlink(kRootInode, "f");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->nlink, 0u);
  EXPECT_EQ(KindOf(store_->Lookup(kRootInode, "f").status()), FsErrorKind::kNotFound);
  // Still readable by inode (an open file descriptor).
  EXPECT_EQ(store_->GetExtents(file.ino, 0, 3)->at(0).inline_data, "abc");
  // A crash now: the orphan is released at the next open.
  Open();
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 1u);
  EXPECT_EQ(KindOf(store_->GetAttr(file.ino).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(store_->Stats()->inode_count, 1u);
  EXPECT_EQ(store_->Stats()->data_bytes, 0u);
}

TEST_F(NamespaceStoreTest, OverwriteSplitsExtentAndCountsReferences) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId first = *store_->AllocateBlobIds(2);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{first, 300, 1}},
                                  {BlobExtent(0, 300, first)})
                  .ok());
  // Overwrite the middle: the old extent is split in two.
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{first + 1, 100, 2}},
                                  {BlobExtent(100, 100, first + 1)})
                  .ok());
  auto extents = store_->GetExtents(file.ino, 0, 300);
  ASSERT_TRUE(extents.ok());
  ASSERT_EQ(extents->size(), 3u);
  EXPECT_EQ((*extents)[0], BlobExtent(0, 100, first, 0));
  EXPECT_EQ((*extents)[1], BlobExtent(100, 100, first + 1, 0));
  EXPECT_EQ((*extents)[2], BlobExtent(200, 100, first, 200));
  EXPECT_EQ(store_->GetBlob(first)->refcount, 2u);
  EXPECT_EQ(store_->GetAttr(file.ino)->size, 300u);
  EXPECT_EQ(store_->GetAttr(file.ino)->allocated_bytes, 300u);
  // Clipped reads.
  auto middle = store_->GetExtents(file.ino, 150, 100);
  ASSERT_EQ(middle->size(), 2u);
  EXPECT_EQ((*middle)[0], BlobExtent(150, 50, first + 1, 50));
  EXPECT_EQ((*middle)[1], BlobExtent(200, 50, first, 200));
}

TEST_F(NamespaceStoreTest, UnreferencedBlobIsCollectableOnlyAfterGrace) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 100, 1}},
                                  {BlobExtent(0, 100, blob)})
                  .ok());
  SetAttrRequest truncate;
  truncate.size = 0;
  ASSERT_TRUE(store_->SetAttr(file.ino, truncate).ok());
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 0u);
  EXPECT_TRUE(store_->CollectableBlobs(10)->empty());
  clock_.now.sec += 61;
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{blob});
  ASSERT_TRUE(store_->ForgetBlobs({blob}).ok());
  EXPECT_TRUE(store_->CollectableBlobs(10)->empty());
  EXPECT_EQ(KindOf(store_->GetBlob(blob).status()), FsErrorKind::kNotFound);
}

TEST_F(NamespaceStoreTest, PunchHoleKeepsSizeAndDropsData) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 4096, 1}},
                                  {BlobExtent(0, 4096, blob)})
                  .ok());
  auto punched = store_->PunchHole(file.ino, 1024, 1024);
  ASSERT_TRUE(punched.ok());
  EXPECT_EQ(punched->size, 4096u);
  EXPECT_EQ(punched->allocated_bytes, 3072u);
  auto extents = store_->GetExtents(file.ino, 0, 4096);
  ASSERT_EQ(extents->size(), 2u);
  EXPECT_EQ((*extents)[1].file_offset, 2048u);
  auto extended = store_->Allocate(file.ino, 0, 10000);
  EXPECT_EQ(extended->size, 10000u);
}

TEST_F(NamespaceStoreTest, BlobIdsAreNeverReusedAcrossReopen) {
  BlobId a = *store_->AllocateBlobIds(5);
  Open();
  BlobId b = *store_->AllocateBlobIds(1);
  EXPECT_GE(b, a + 5);
}

TEST_F(NamespaceStoreTest, EverythingSurvivesReopen) {
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0700);
  InodeAttr file = Make(dir.ino, "f", S_IFREG | 0640);
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.k", "v", XattrMode::kCreateOrReplace).ok());
  ASSERT_TRUE(store_->Link(file.ino, kRootInode, "hard").ok());
  Extent data;
  data.length = 5;
  data.inline_data = "hello";
  ASSERT_TRUE(store_->CommitWrite(file.ino, {}, {data}).ok());
  ASSERT_TRUE(store_->Sync().ok());
  Open();
  auto again = store_->Lookup(dir.ino, "f");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ino, file.ino);
  EXPECT_EQ(again->nlink, 2u);
  EXPECT_EQ(again->size, 5u);
  EXPECT_EQ(again->mode, S_IFREG | 0640u);
  EXPECT_EQ(*store_->GetXattr(file.ino, "user.k"), "v");
  EXPECT_EQ(store_->GetExtents(file.ino, 0, 5)->at(0).inline_data, "hello");
  // A new inode gets a new number.
  EXPECT_GT(Make(kRootInode, "n", S_IFREG | 0644).ino, file.ino);
}

TEST_F(NamespaceStoreTest, XattrModesAndLimits) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->SetXattr(file.ino, "user.a", "1", XattrMode::kReplaceOnly)),
            FsErrorKind::kNoAttribute);
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.a", "1", XattrMode::kCreateOnly).ok());
  EXPECT_EQ(KindOf(store_->SetXattr(file.ino, "user.a", "2", XattrMode::kCreateOnly)),
            FsErrorKind::kExists);
  EXPECT_EQ(KindOf(store_->SetXattr(file.ino, "user.big", std::string(65537, 'x'),
                                    XattrMode::kCreateOrReplace)),
            FsErrorKind::kRange);
  EXPECT_EQ(KindOf(store_->GetXattr(file.ino, "user.none").status()),
            FsErrorKind::kNoAttribute);
  EXPECT_EQ(KindOf(store_->RemoveXattr(file.ino, "user.none")), FsErrorKind::kNoAttribute);
}

TEST_F(NamespaceStoreTest, RenameRulesForDirectories) {
  InodeAttr a = Make(kRootInode, "a", S_IFDIR | 0755);
  InodeAttr b = Make(a.ino, "b", S_IFDIR | 0755);
  Make(kRootInode, "file", S_IFREG | 0644);
  InodeAttr full = Make(kRootInode, "full", S_IFDIR | 0755);
  Make(full.ino, "x", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", b.ino, "c", RenameMode::kReplace).status()),
            FsErrorKind::kInvalid);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", kRootInode, "file", RenameMode::kReplace).status()),
            FsErrorKind::kNotDirectory);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "file", kRootInode, "a", RenameMode::kReplace).status()),
            FsErrorKind::kIsDirectory);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", kRootInode, "full", RenameMode::kReplace).status()),
            FsErrorKind::kNotEmpty);
  // Moving b up changes its parent and both link counts.
  ASSERT_TRUE(store_->Rename(a.ino, "b", kRootInode, "b", RenameMode::kReplace).ok());
  EXPECT_EQ(store_->GetAttr(b.ino)->parent, kRootInode);
  EXPECT_EQ(store_->GetAttr(a.ino)->nlink, 2u);
  EXPECT_EQ(store_->GetAttr(kRootInode)->nlink, 5u);  // a, full, b
  EXPECT_EQ(KindOf(store_->Rmdir(kRootInode, "full").status()),
            FsErrorKind::kNotEmpty);
}

}  // namespace
}  // namespace cairn

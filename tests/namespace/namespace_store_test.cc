#include "backend/namespace/namespace_store.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/records.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/file_bytes.h"
#include "tests/support/fake_clock.h"
#include "rocksdb/db.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "tests/support/pg_server.h"
#include "tests/support/namespace_model.h"  // PrintTo for the value types
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

FsErrorKind KindOf(const absl::Status& s) {
  std::optional<FsErrorKind> kind = GetFsErrorKind(s);
  EXPECT_TRUE(kind.has_value()) << s;
  return kind.value_or(FsErrorKind::kIo);
}

// Each test runs over the RocksDB namespace, again over the same engine
// with every transaction body run twice (the first run thrown away, as a
// retried conflict is on a shared engine): a body with an effect outside
// its transaction gives a wrong answer there; and over PostgreSQL (a
// database of its own per test), the engine of shared volumes. Tests of
// RocksDB's own files and statistics skip the latter.
class NamespaceStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    store_.reset();
    NamespaceOptions options;
    options.create_if_missing = true;
    options.clock = &clock_;
    options.gc_grace_seconds = 60;
    if (GetParam() == "rocksdb") {
      auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
      return;
    }
    if (GetParam() == "postgresql") {
      PgKvOptions pg;
      if (pg_url_.empty()) {
        pg_url_ = FreshPgDatabase("suite");
        if (pg_url_.empty()) return;
        pg.url = pg_url_;
        auto formatted = PgKvStore::Format(pg);
        ASSERT_TRUE(formatted.ok()) << formatted.status();
        auto store = OpenKvNamespace(std::move(*formatted), options);
        ASSERT_TRUE(store.ok()) << store.status();
        store_ = std::move(*store);
        return;
      }
      pg.url = pg_url_;
      auto kv = PgKvStore::Open(pg);
      ASSERT_TRUE(kv.ok()) << kv.status();
      auto store = OpenKvNamespace(std::move(*kv), options);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
      return;
    }
    ASSERT_EQ(GetParam(), "rocksdb_run_twice");
    RocksKvOptions engine;
    engine.clock = &clock_;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    TestKvStore::Options twice;
    twice.run_twice = true;
    auto store = OpenKvNamespace(
        std::make_unique<TestKvStore>(std::shared_ptr<KvStore>(std::move(*kv)), twice), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string pg_url_;  // the test's database, made at the first Open
  InodeAttr Make(InodeId parent, const std::string& name, uint32_t mode) {
    NewNode node;
    node.mode = mode;
    auto attr = store_->MakeNode(parent, name, node, Caller{1000, 100});
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.value_or(InodeAttr{});
  }
  Extent InlineExtent(uint64_t offset, std::string data) {
    Extent e;
    e.file_offset = offset;
    e.length = data.size();
    e.inline_data = std::move(data);
    return e;
  }
  std::vector<std::string> Names(InodeId dir) {
    std::vector<std::string> names;
    EXPECT_TRUE(store_->ReadDir(dir, 0, [&](const DirEntry& e) {
                  names.push_back(e.name);
                  return true;
                }).ok());
    return names;
  }
  // Closes the store and hands its database to `edit`, to plant records no
  // API call would write (corruption, an inode at the link limit).
  void EditRawDb(const std::function<void(
                     rocksdb::DB*, std::map<std::string, rocksdb::ColumnFamilyHandle*>&)>&
                     edit) {
    store_.reset();
    std::string path = dir_.path() + "/ns";
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, descriptors, &handles, &db).ok());
    std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
    for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
    edit(db, by_name);
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
    Open();
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

TEST_P(NamespaceStoreTest, NewVolumeHasRootDirectory) {
  auto root = store_->GetAttr(kRootInode);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(S_ISDIR(root->mode));
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(root->parent, kRootInode);
}

TEST_P(NamespaceStoreTest, NamesAreValidated) {
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

TEST_P(NamespaceStoreTest, CreateSetsOwnerTimesAndParentCounts) {
  clock_.Set({5000, 7});
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

TEST_P(NamespaceStoreTest, SetgidDirectoryGivesGroupAndBit) {
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

TEST_P(NamespaceStoreTest, SymlinkKeepsTargetAndSize) {
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

TEST_P(NamespaceStoreTest, ReadDirResumesAfterCookieWhileDirectoryChanges) {
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

TEST_P(NamespaceStoreTest, ScanDirListsNamesInByteOrderFromAName) {
  // Made out of order; a neighbour directory's entries (its inode number
  // follows) must not leak into the scan.
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  InodeAttr next = Make(kRootInode, "e", S_IFDIR | 0755);
  for (const char* name : {"b", "a0", "a", "a-b", "\xff", "a.b", "B"}) {
    Make(dir.ino, name, S_IFREG | 0644);
  }
  InodeAttr sub = Make(dir.ino, "a-", S_IFDIR | 0755);
  Make(next.ino, "0", S_IFREG | 0644);
  auto scan = [&](std::string_view start, size_t limit) {
    std::vector<std::string> names;
    EXPECT_TRUE(store_->ScanDir(dir.ino, start, [&](const DirEntry& e) {
                  names.push_back(e.name);
                  return names.size() < limit;
                }).ok());
    return names;
  };
  EXPECT_EQ(scan("", 100),
            (std::vector<std::string>{"B", "a", "a-", "a-b", "a.b", "a0", "b", "\xff"}));
  EXPECT_EQ(scan("a-", 2), (std::vector<std::string>{"a-", "a-b"}));
  EXPECT_EQ(scan(std::string("a-\0", 3), 100),
            (std::vector<std::string>{"a-b", "a.b", "a0", "b", "\xff"}));
  EXPECT_EQ(scan("a1", 100), (std::vector<std::string>{"b", "\xff"}));
  EXPECT_TRUE(scan("\xff\xff", 100).empty());
  // Entries carry what ReadDir's do.
  std::vector<DirEntry> entries;
  ASSERT_TRUE(store_->ScanDir(dir.ino, "a-", [&](const DirEntry& e) {
                entries.push_back(e);
                return false;
              }).ok());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].ino, sub.ino);
  EXPECT_EQ(entries[0].mode, static_cast<uint32_t>(S_IFDIR));
  bool found = false;
  ASSERT_TRUE(store_->ReadDir(dir.ino, 0, [&](const DirEntry& e) {
                if (e.name == "a-") found = e.cookie == entries[0].cookie;
                return true;
              }).ok());
  EXPECT_TRUE(found) << "the cookie ReadDir resumes from";
}

TEST_P(NamespaceStoreTest, UnlinkedOpenFileIsOrphanUntilReleased) {
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

TEST_P(NamespaceStoreTest, OverwriteSplitsExtentAndCountsReferences) {
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

TEST_P(NamespaceStoreTest, BlobLocationSurvivesReferenceChangesAndReopen) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(2);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 300, 1}},
                                  {BlobExtent(0, 300, blob)})
                  .ok());
  EXPECT_EQ(store_->GetBlob(blob)->location, BlobLocation::kLocal);
  ASSERT_TRUE(store_->SetBlobLocation(blob, BlobLocation::kRemote).ok());
  // An overwrite changes the record's reference count, not its location.
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob + 1, 100, 2}},
                                  {BlobExtent(0, 100, blob + 1)})
                  .ok());
  EXPECT_EQ(store_->GetBlob(blob)->location, BlobLocation::kRemote);
  EXPECT_EQ(store_->GetBlob(blob + 1)->location, BlobLocation::kLocal);
  store_.reset();
  Open();
  EXPECT_EQ(store_->GetBlob(blob)->location, BlobLocation::kRemote);
  EXPECT_TRUE(store_->CompactionCandidates(10, 1.0)->empty() ||
              store_->CompactionCandidates(10, 1.0)->front().first != blob)
      << "remote-only blobs are never compacted back to the local disks";
  EXPECT_FALSE(store_->SetBlobLocation(blob + 99, BlobLocation::kBoth).ok());
  EXPECT_TRUE(store_->Check()->problems.empty());
}

// fsck verifies the blobs Check() lists. A blob queued for GC is garbage:
// the collector deletes its shards before forgetting its record, so after
// a crash between the two its shards are gone, and that is no problem.
TEST_P(NamespaceStoreTest, CheckListsNoBlobThatOnlyWaitsForTheCollector) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(2);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 300, 1}},
                                  {BlobExtent(0, 300, blob)})
                  .ok());
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob + 1, 300, 2}},
                                  {BlobExtent(0, 300, blob + 1)})
                  .ok());
  absl::StatusOr<NamespaceCheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
  ASSERT_EQ(check->blobs.size(), 1u) << "the overwritten blob waits for the collector";
  EXPECT_EQ(check->blobs[0].first, blob + 1);
}

TEST_P(NamespaceStoreTest, UnreferencedBlobIsCollectableOnlyAfterGrace) {
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
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{blob});
  ASSERT_TRUE(store_->ForgetBlobs({blob}).ok());
  EXPECT_TRUE(store_->CollectableBlobs(10)->empty());
  EXPECT_EQ(KindOf(store_->GetBlob(blob).status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, PunchHoleKeepsSizeAndDropsData) {
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

TEST_P(NamespaceStoreTest, BlobIdsAreNeverReusedAcrossReopen) {
  BlobId a = *store_->AllocateBlobIds(5);
  Open();
  BlobId b = *store_->AllocateBlobIds(1);
  EXPECT_GE(b, a + 5);
}

TEST_P(NamespaceStoreTest, EverythingSurvivesReopen) {
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

TEST_P(NamespaceStoreTest, XattrModesAndLimits) {
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

TEST_P(NamespaceStoreTest, RenameRulesForDirectories) {
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

TEST_P(NamespaceStoreTest, ParentMustBeALiveDirectory) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  NewNode node;
  node.mode = S_IFREG | 0644;
  EXPECT_EQ(KindOf(store_->Lookup(file.ino, "x").status()), FsErrorKind::kNotDirectory);
  EXPECT_EQ(KindOf(store_->MakeNode(file.ino, "x", node, {}).status()),
            FsErrorKind::kNotDirectory);
  EXPECT_EQ(KindOf(store_->Unlink(file.ino, "x").status()), FsErrorKind::kNotDirectory);
  EXPECT_EQ(KindOf(store_->MakeNode(12345, "x", node, {}).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Lookup(kRootInode, "missing").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Lookup(kRootInode, "..").status()), FsErrorKind::kInvalid);
  // A removed directory still open somewhere takes no new entries.
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  ASSERT_TRUE(store_->Rmdir(kRootInode, "d").ok());
  EXPECT_EQ(KindOf(store_->MakeNode(dir.ino, "x", node, {}).status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, LinkAddsNameCountsAndTimes) {
  clock_.Set({2000, 0});
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  clock_.Set({3000, 0});
  auto linked = store_->Link(file.ino, dir.ino, "h");
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_EQ(linked->nlink, 2u);
  EXPECT_EQ(linked->ctime, (Timespec{3000, 0}));
  EXPECT_EQ(linked->mtime, (Timespec{2000, 0}));
  EXPECT_EQ(store_->GetAttr(dir.ino)->mtime, (Timespec{3000, 0}));
  EXPECT_EQ(store_->GetAttr(dir.ino)->ctime, (Timespec{3000, 0}));
  EXPECT_EQ(store_->Lookup(dir.ino, "h")->ino, file.ino);
  EXPECT_EQ(Names(dir.ino), std::vector<std::string>{"h"});
  EXPECT_EQ(KindOf(store_->Link(file.ino, dir.ino, "h").status()), FsErrorKind::kExists);
  EXPECT_EQ(KindOf(store_->Link(dir.ino, kRootInode, "dl").status()),
            FsErrorKind::kNotPermitted);
  EXPECT_EQ(KindOf(store_->Link(999, kRootInode, "x").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Link(file.ino, file.ino, "x").status()),
            FsErrorKind::kNotDirectory);
  // Dropping one of two names keeps the inode; releasing it is a no-op.
  EXPECT_EQ(store_->Unlink(kRootInode, "f")->nlink, 1u);
  ASSERT_TRUE(store_->ReleaseInode(file.ino).ok());
  EXPECT_TRUE(store_->GetAttr(file.ino).ok());
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 0u);
}

TEST_P(NamespaceStoreTest, LinkRefusesBeyondMaxLinks) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  EditRawDb([&](rocksdb::DB* db, auto& cfs) {
    std::string value;
    ASSERT_TRUE(db->Get({}, cfs["inodes"], InodeKey(file.ino), &value).ok());
    absl::StatusOr<InodeRecord> record = DecodeInode(file.ino, value);
    ASSERT_TRUE(record.ok());
    record->attr.nlink = kMaxLinks;
    ASSERT_TRUE(db->Put({}, cfs["inodes"], InodeKey(file.ino), EncodeInode(*record)).ok());
  });
  EXPECT_EQ(KindOf(store_->Link(file.ino, kRootInode, "one_more").status()),
            FsErrorKind::kTooManyLinks);
}

TEST_P(NamespaceStoreTest, UnlinkAndRmdirCheckTheType) {
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  Make(kRootInode, "f", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->Unlink(kRootInode, "d").status()), FsErrorKind::kIsDirectory);
  EXPECT_EQ(KindOf(store_->Rmdir(kRootInode, "f").status()), FsErrorKind::kNotDirectory);
  EXPECT_EQ(KindOf(store_->Unlink(kRootInode, "none").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Rmdir(kRootInode, "none").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(store_->GetAttr(kRootInode)->nlink, 3u);
  auto removed = store_->Rmdir(kRootInode, "d");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->nlink, 0u);
  EXPECT_EQ(store_->GetAttr(kRootInode)->nlink, 2u);
  EXPECT_EQ(store_->Stats()->inode_count, 3u);  // root, f and the orphan d
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 1u);
  EXPECT_EQ(KindOf(store_->GetAttr(dir.ino).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(store_->Stats()->inode_count, 2u);
  EXPECT_TRUE(store_->ReleaseInode(dir.ino).ok());  // gone already: no-op
}

TEST_P(NamespaceStoreTest, APublishedOrphanReplacesTheFileAtItsNameInOneCommit) {
  InodeAttr dir = Make(kRootInode, "bucket", S_IFDIR | 0755);
  InodeAttr old_file = Make(dir.ino, "key", S_IFREG | 0644);
  ASSERT_TRUE(store_->CommitWrite(old_file.ino, {}, {InlineExtent(0, "old")}).ok());
  NewNode node;
  node.mode = S_IFREG | 0640;
  absl::StatusOr<InodeAttr> orphan = store_->MakeOrphan(dir.ino, node, Caller{1000, 100});
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  EXPECT_EQ(orphan->nlink, 0u);
  EXPECT_EQ(Names(dir.ino), std::vector<std::string>{"key"});
  ASSERT_TRUE(store_->CommitWrite(orphan->ino, {}, {InlineExtent(0, "new!")}).ok());

  absl::StatusOr<std::optional<InodeAttr>> replaced =
      store_->Publish(orphan->ino, dir.ino, "key", PublishCondition{});
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, old_file.ino);
  EXPECT_EQ((*replaced)->nlink, 0u);  // an orphan until released
  absl::StatusOr<InodeAttr> found = store_->Lookup(dir.ino, "key");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ino, orphan->ino);
  EXPECT_EQ(found->nlink, 1u);
  EXPECT_EQ(found->size, 4u);

  // The published file is no orphan any more; the replaced one is.
  absl::StatusOr<uint64_t> released = store_->ReleaseAllOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1u);
  EXPECT_TRUE(store_->GetAttr(orphan->ino).ok());
  EXPECT_EQ(KindOf(store_->GetAttr(old_file.ino).status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, AnUnpublishedOrphanIsFreedAtTheNextOpen) {
  InodeAttr dir = Make(kRootInode, "bucket", S_IFDIR | 0755);
  NewNode node;
  node.mode = S_IFREG | 0644;
  absl::StatusOr<InodeAttr> orphan = store_->MakeOrphan(dir.ino, node, Caller{1000, 100});
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  Open();
  absl::StatusOr<uint64_t> released = store_->ReleaseAllOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1u);
  EXPECT_EQ(KindOf(store_->GetAttr(orphan->ino).status()), FsErrorKind::kNotFound);
  node.mode = S_IFDIR | 0755;
  EXPECT_EQ(KindOf(store_->MakeOrphan(dir.ino, node, Caller{1000, 100}).status()),
            FsErrorKind::kInvalid);
}

TEST_P(NamespaceStoreTest, PublishChecksItsConditionInTheCommit) {
  InodeAttr dir = Make(kRootInode, "bucket", S_IFDIR | 0755);
  InodeAttr sub = Make(dir.ino, "sub", S_IFDIR | 0755);
  InodeAttr file = Make(dir.ino, "key", S_IFREG | 0644);
  NewNode node;
  node.mode = S_IFREG | 0644;
  absl::StatusOr<InodeAttr> orphan = store_->MakeOrphan(dir.ino, node, Caller{1000, 100});
  ASSERT_TRUE(orphan.ok()) << orphan.status();

  PublishCondition absent{PublishCondition::Kind::kMustBeAbsent};
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "key", absent).status()),
            FsErrorKind::kExists);
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "sub", PublishCondition{}).status()),
            FsErrorKind::kIsDirectory);
  PublishCondition other{PublishCondition::Kind::kMustBe, sub.ino, file.ctime};
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "key", other).status()),
            FsErrorKind::kStale);
  Timespec earlier = file.ctime;
  earlier.sec -= 1;
  PublishCondition changed{PublishCondition::Kind::kMustBe, file.ino, earlier};
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "key", changed).status()),
            FsErrorKind::kStale);
  PublishCondition missing{PublishCondition::Kind::kMustBe, file.ino, file.ctime};
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "nokey", missing).status()),
            FsErrorKind::kNotFound);
  // Nothing of the refused attempts stuck: the old file keeps its name.
  EXPECT_EQ(store_->Lookup(dir.ino, "key")->ino, file.ino);

  PublishCondition same{PublishCondition::Kind::kMustBe, file.ino, file.ctime};
  ASSERT_TRUE(store_->Publish(orphan->ino, dir.ino, "key", same).ok());
  EXPECT_EQ(store_->Lookup(dir.ino, "key")->ino, orphan->ino);
  // A file that has a name cannot be published again.
  EXPECT_EQ(KindOf(store_->Publish(orphan->ino, dir.ino, "again", PublishCondition{}).status()),
            FsErrorKind::kInvalid);
}

TEST_P(NamespaceStoreTest, ConcatenateSharesThePartsBlobsWithoutCopying) {
  InodeAttr a = Make(kRootInode, "a", S_IFREG | 0644);
  InodeAttr b = Make(kRootInode, "b", S_IFREG | 0644);
  InodeAttr whole = Make(kRootInode, "whole", S_IFREG | 0644);
  absl::StatusOr<BlobId> first = store_->AllocateBlobIds(2);
  ASSERT_TRUE(first.ok());
  Extent in_blob;
  in_blob.file_offset = 0;
  in_blob.length = 100;
  in_blob.blob_id = *first;
  ASSERT_TRUE(store_->CommitWrite(a.ino, {NewBlob{*first, 100, 1}}, {in_blob}).ok());
  // b: a hole, then 50 bytes of a blob, then inline bytes.
  Extent later = in_blob;
  later.file_offset = 10;
  later.length = 50;
  later.blob_id = *first + 1;
  ASSERT_TRUE(store_->CommitWrite(b.ino, {NewBlob{*first + 1, 50, 2}},
                                  {later, InlineExtent(60, "tail")}).ok());

  const InodeId parts[] = {a.ino, b.ino};
  absl::StatusOr<InodeAttr> done = store_->Concatenate(whole.ino, parts);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->size, 164u);
  absl::StatusOr<std::vector<Extent>> extents = store_->GetExtents(whole.ino, 0, 1000);
  ASSERT_TRUE(extents.ok());
  ASSERT_EQ(extents->size(), 3u);
  EXPECT_EQ((*extents)[0].blob_id, *first);
  EXPECT_EQ((*extents)[1].file_offset, 110u);
  EXPECT_EQ((*extents)[1].blob_id, *first + 1);
  EXPECT_EQ((*extents)[2].file_offset, 160u);
  EXPECT_EQ((*extents)[2].inline_data, "tail");
  EXPECT_EQ(store_->GetBlob(*first)->refcount, 2u);

  // The parts go; their blobs stay for the whole file.
  ASSERT_TRUE(store_->Unlink(kRootInode, "a").ok());
  ASSERT_TRUE(store_->Unlink(kRootInode, "b").ok());
  ASSERT_TRUE(store_->ReleaseAllOrphans().ok());
  EXPECT_EQ(store_->GetBlob(*first)->refcount, 1u);
  EXPECT_EQ(store_->GetBlob(*first + 1)->refcount, 1u);
  // Only an empty file can be filled.
  EXPECT_EQ(KindOf(store_->Concatenate(whole.ino, {}).status()), FsErrorKind::kInvalid);
}

// S3 multipart uploads: a part is an orphan file the upload's record holds.
class MultipartRecordTest : public NamespaceStoreTest {
 protected:
  MultipartUploadRecord Upload() {
    MultipartUploadRecord upload;
    upload.bucket = "bucket";
    upload.key = "dir/key";
    upload.uid = 1000;
    upload.gid = 100;
    upload.access_key = "AKIDEXAMPLE";
    upload.initiated = Timespec{1700000000, 123456789};
    upload.headers = {{"content-type", "text/plain"}, {"x-amz-meta-color", "blue"}};
    upload.checksum_header = "x-amz-checksum-crc32c";
    return upload;
  }
  // A nameless file holding `data` (inline).
  InodeId Part(const std::string& data) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    absl::StatusOr<InodeAttr> orphan = store_->MakeOrphan(kRootInode, node, Caller{1000, 100});
    EXPECT_TRUE(orphan.ok()) << orphan.status();
    EXPECT_TRUE(store_->CommitWrite(orphan->ino, {}, {InlineExtent(0, data)}).ok());
    return orphan->ino;
  }
  MultipartPartRecord PartRecord(uint32_t number, InodeId ino, uint64_t size) {
    MultipartPartRecord part;
    part.number = number;
    part.ino = ino;
    part.size = size;
    part.etag = absl::StrCat("etag", number);
    part.checksum = absl::StrCat("sum", number);
    part.modified = Timespec{1700000100, number};
    return part;
  }
  std::vector<MultipartPartRecord> Parts(const std::string& id) {
    std::vector<MultipartPartRecord> parts;
    EXPECT_TRUE(store_->ListMultipartParts(id, 0, [&](const MultipartPartRecord& part) {
                  parts.push_back(part);
                  return true;
                }).ok());
    return parts;
  }
  bool Exists(InodeId ino) { return store_->GetAttr(ino).ok(); }
  // The bytes of a file whose data is all inline.
  absl::StatusOr<std::string> FileBytes(NamespaceStore& store, InodeId ino) {
    absl::StatusOr<std::vector<Extent>> extents = store.GetExtents(ino, 0, 1 << 20);
    if (!extents.ok()) return extents.status();
    std::string data;
    for (const Extent& e : *extents) data += e.inline_data;
    return data;
  }
};

TEST_P(MultipartRecordTest, UploadAndPartRecordsRoundTripAcrossAReopen) {
  const MultipartUploadRecord upload = Upload();
  ASSERT_TRUE(store_->PutMultipartUpload("abc123", upload).ok());
  EXPECT_EQ(KindOf(store_->PutMultipartUpload("abc123", upload)), FsErrorKind::kExists);
  EXPECT_EQ(KindOf(store_->PutMultipartUpload("no/slash", upload)), FsErrorKind::kInvalid);
  MultipartPartRecord two = PartRecord(2, Part("world"), 5);
  MultipartPartRecord one = PartRecord(1, Part("hello"), 5);
  ASSERT_TRUE(store_->PutMultipartPart("abc123", two).ok());
  ASSERT_TRUE(store_->PutMultipartPart("abc123", one).ok());
  Open();
  absl::StatusOr<std::optional<MultipartUploadRecord>> read = store_->GetMultipartUpload("abc123");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, upload);
  EXPECT_EQ(Parts("abc123"), (std::vector<MultipartPartRecord>{one, two}));
  std::vector<MultipartPartRecord> after_one;
  ASSERT_TRUE(store_->ListMultipartParts("abc123", 1, [&](const MultipartPartRecord& part) {
                after_one.push_back(part);
                return true;
              }).ok());
  EXPECT_EQ(after_one, std::vector<MultipartPartRecord>{two});
  ASSERT_TRUE(store_->PutMultipartUpload("abd", upload).ok());
  std::vector<std::string> ids;
  ASSERT_TRUE(store_->ListMultipartUploads("", [&](const std::string& id,
                                                   const MultipartUploadRecord&) {
                ids.push_back(id);
                return true;
              }).ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"abc123", "abd"}));
  EXPECT_FALSE(store_->GetMultipartUpload("nope")->has_value());
  EXPECT_EQ(KindOf(store_->PutMultipartPart("nope", one).status()), FsErrorKind::kNotFound);
  absl::StatusOr<NamespaceCheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
  EXPECT_EQ(check->multipart_uploads, 2u);
  EXPECT_EQ(check->multipart_parts, 2u);
}

TEST_P(MultipartRecordTest, ReleaseAllOrphansKeepsHeldPartsAndFreesTheRest) {
  ASSERT_TRUE(store_->PutMultipartUpload("up", Upload()).ok());
  InodeId held = Part("kept");
  InodeId loose = Part("a part whose upload died mid-body");
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(1, held, 4)).ok());
  // A release at its handle's close leaves a held part alone.
  ASSERT_TRUE(store_->ReleaseInode(held).ok());
  EXPECT_TRUE(Exists(held));
  Open();
  absl::StatusOr<uint64_t> released = store_->ReleaseAllOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1u);
  EXPECT_TRUE(Exists(held));
  EXPECT_FALSE(Exists(loose));
  absl::StatusOr<std::string> data = FileBytes(*store_, held);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "kept");
}

TEST_P(MultipartRecordTest, AReplacedPartAndAnAbortedUploadsPartsAreFreedInTheirCommit) {
  ASSERT_TRUE(store_->PutMultipartUpload("up", Upload()).ok());
  InodeId first = Part("one"), second = Part("two"), again = Part("uno");
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(1, first, 3)).ok());
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(2, second, 3)).ok());
  auto always = [](InodeId) { return true; };
  absl::StatusOr<std::optional<MultipartPartRecord>> replaced =
      store_->PutMultipartPart("up", PartRecord(1, again, 3), always);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, first);
  EXPECT_FALSE(Exists(first));
  ASSERT_TRUE(store_->DeleteMultipartUpload("up", always).ok());
  EXPECT_FALSE(Exists(second));
  EXPECT_FALSE(Exists(again));
  EXPECT_FALSE(store_->GetMultipartUpload("up")->has_value());
  EXPECT_TRUE(Parts("up").empty());
  EXPECT_EQ(KindOf(store_->DeleteMultipartUpload("up")), FsErrorKind::kNotFound);
  EXPECT_TRUE(store_->Check()->problems.empty());
}

TEST_P(MultipartRecordTest, AnAbortThatMayNotFreeAPartLeavesItAnOrdinaryOrphan) {
  ASSERT_TRUE(store_->PutMultipartUpload("up", Upload()).ok());
  InodeId part = Part("open");
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(1, part, 4)).ok());
  ASSERT_TRUE(store_->DeleteMultipartUpload("up", [](InodeId) { return false; }).ok());
  EXPECT_TRUE(Exists(part));  // its last user frees it
  ASSERT_TRUE(store_->ReleaseInode(part).ok());
  EXPECT_FALSE(Exists(part));
}

TEST_P(MultipartRecordTest, PublishingTheUploadEndsItAndFreesItsPartsInOneCommit) {
  InodeAttr dir = Make(kRootInode, "bucket", S_IFDIR | 0755);
  ASSERT_TRUE(store_->PutMultipartUpload("up", Upload()).ok());
  InodeId a = Part("hello "), b = Part("world");
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(1, a, 6)).ok());
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(2, b, 5)).ok());
  NewNode node;
  node.mode = S_IFREG | 0644;
  absl::StatusOr<InodeAttr> object = store_->MakeOrphan(dir.ino, node, Caller{1000, 100});
  ASSERT_TRUE(object.ok());
  const InodeId parts[] = {a, b};
  ASSERT_TRUE(store_->Concatenate(object->ino, parts).ok());
  // A publish that fails its condition ends nothing.
  PublishCondition absent{PublishCondition::Kind::kMustBeAbsent};
  Make(dir.ino, "taken", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->PublishMultipartUpload("up", object->ino, dir.ino, "taken", absent)
                       .status()),
            FsErrorKind::kExists);
  EXPECT_TRUE(store_->GetMultipartUpload("up")->has_value());
  EXPECT_TRUE(Exists(a));

  auto always = [](InodeId) { return true; };
  ASSERT_TRUE(store_->PublishMultipartUpload("up", object->ino, dir.ino, "key", absent, always)
                  .ok());
  EXPECT_FALSE(store_->GetMultipartUpload("up")->has_value());
  EXPECT_FALSE(Exists(a));
  EXPECT_FALSE(Exists(b));
  absl::StatusOr<InodeAttr> found = store_->Lookup(dir.ino, "key");
  ASSERT_TRUE(found.ok()) << found.status();
  absl::StatusOr<std::string> data = FileBytes(*store_, found->ino);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "hello world");
  // Gone: a second publish of it (another nameless file) is refused.
  absl::StatusOr<InodeAttr> another = store_->MakeOrphan(dir.ino, node, Caller{1000, 100});
  ASSERT_TRUE(another.ok());
  EXPECT_EQ(KindOf(store_->PublishMultipartUpload("up", another->ino, dir.ino, "k2", {}).status()),
            FsErrorKind::kNotFound);
  EXPECT_FALSE(store_->Lookup(dir.ino, "k2").ok());
  EXPECT_TRUE(store_->Check()->problems.empty());
}

TEST_P(MultipartRecordTest, CheckReportsAPartWhoseInodeIsGone) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  ASSERT_TRUE(store_->PutMultipartUpload("up", Upload()).ok());
  ASSERT_TRUE(store_->PutMultipartPart("up", PartRecord(1, Part("x"), 1)).ok());
  MultipartPartRecord ghost = PartRecord(2, 999999, 1);
  EditRawDb([&](rocksdb::DB* db, std::map<std::string, rocksdb::ColumnFamilyHandle*>& cf) {
    std::string key = "mp:up/";
    key.append(std::string("\0\0\0\0\0\0\0\2", 8));
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf["meta"], key, EncodeMultipartPart(ghost)).ok());
  });
  absl::StatusOr<NamespaceCheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  ASSERT_EQ(check->problems.size(), 1u);
  EXPECT_NE(check->problems[0].find("999999, which does not exist"), std::string::npos)
      << check->problems[0];
  EXPECT_EQ(check->multipart_parts, 2u);
}

TEST_P(NamespaceStoreTest, RenameNoReplaceAndExchangeNeedTheRightTarget) {
  Make(kRootInode, "a", S_IFREG | 0644);
  Make(kRootInode, "b", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", kRootInode, "b", RenameMode::kNoReplace)
                       .status()),
            FsErrorKind::kExists);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", kRootInode, "c", RenameMode::kExchange)
                       .status()),
            FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "x", kRootInode, "c", RenameMode::kReplace)
                       .status()),
            FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->Rename(kRootInode, "a", kRootInode, "", RenameMode::kReplace)
                       .status()),
            FsErrorKind::kInvalid);
  EXPECT_TRUE(store_->Rename(kRootInode, "a", kRootInode, "c", RenameMode::kNoReplace).ok());
  EXPECT_EQ(Names(kRootInode), (std::vector<std::string>{"b", "c"}));
}

TEST_P(NamespaceStoreTest, RenameExchangeSwapsDirAndFile) {
  InodeAttr dir = Make(kRootInode, "dir", S_IFDIR | 0755);
  InodeAttr other = Make(kRootInode, "other", S_IFDIR | 0755);
  InodeAttr file = Make(other.ino, "file", S_IFREG | 0644);
  std::map<std::string, uint64_t> cookies;
  ASSERT_TRUE(store_->ReadDir(kRootInode, 0, [&](const DirEntry& e) {
                cookies[e.name] = e.cookie;
                return true;
              }).ok());
  clock_.Set({4000, 0});
  auto result = store_->Rename(kRootInode, "dir", other.ino, "file", RenameMode::kExchange);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->has_value());
  EXPECT_EQ(store_->Lookup(kRootInode, "dir")->ino, file.ino);
  EXPECT_EQ(store_->Lookup(other.ino, "file")->ino, dir.ino);
  EXPECT_EQ(store_->GetAttr(dir.ino)->parent, other.ino);
  EXPECT_EQ(store_->GetAttr(kRootInode)->nlink, 3u);  // only "other" is a dir now
  EXPECT_EQ(store_->GetAttr(other.ino)->nlink, 3u);
  for (InodeId ino : {dir.ino, file.ino}) {
    EXPECT_EQ(store_->GetAttr(ino)->ctime, (Timespec{4000, 0}));
  }
  for (InodeId ino : {kRootInode, other.ino}) {
    EXPECT_EQ(store_->GetAttr(ino)->mtime, (Timespec{4000, 0}));
  }
  // The swapped entry keeps its place in the listing.
  ASSERT_TRUE(store_->ReadDir(kRootInode, 0, [&](const DirEntry& e) {
                EXPECT_EQ(cookies[e.name], e.cookie) << e.name;
                if (e.name == "dir") {
                  EXPECT_EQ(e.mode, static_cast<uint32_t>(S_IFREG));
                }
                return true;
              }).ok());
  // Exchanging a directory with an entry inside it would detach a cycle.
  Make(dir.ino, "inner", S_IFREG | 0644);
  EXPECT_EQ(KindOf(store_->Rename(other.ino, "file", dir.ino, "inner", RenameMode::kExchange)
                       .status()),
            FsErrorKind::kInvalid);
}

TEST_P(NamespaceStoreTest, RenameBetweenNamesOfOneInodeChangesNothing) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  ASSERT_TRUE(store_->Link(file.ino, kRootInode, "g").ok());
  clock_.Set({9000, 0});
  auto same_inode = store_->Rename(kRootInode, "f", kRootInode, "g", RenameMode::kReplace);
  ASSERT_TRUE(same_inode.ok());
  EXPECT_FALSE(same_inode->has_value());
  auto same_name = store_->Rename(kRootInode, "f", kRootInode, "f", RenameMode::kNoReplace);
  ASSERT_TRUE(same_name.ok());
  EXPECT_EQ(Names(kRootInode), (std::vector<std::string>{"f", "g"}));
  EXPECT_EQ(store_->GetAttr(file.ino)->nlink, 2u);
  EXPECT_NE(store_->GetAttr(kRootInode)->mtime, (Timespec{9000, 0}));
}

TEST_P(NamespaceStoreTest, RenameOverLastLinkReturnsOrphanAndFreesItsBlobs) {
  InodeAttr victim = Make(kRootInode, "victim", S_IFREG | 0644);
  InodeAttr kept = Make(kRootInode, "kept", S_IFREG | 0644);
  ASSERT_TRUE(store_->Link(kept.ino, kRootInode, "kept2").ok());
  Make(kRootInode, "a", S_IFREG | 0644);
  Make(kRootInode, "b", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(victim.ino, {NewBlob{blob, 10, 0}}, {BlobExtent(0, 10, blob)})
                  .ok());
  auto replaced = store_->Rename(kRootInode, "a", kRootInode, "victim", RenameMode::kReplace);
  ASSERT_TRUE(replaced.ok());
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, victim.ino);
  EXPECT_EQ((*replaced)->nlink, 0u);
  // A replaced inode with another name lives on.
  ASSERT_TRUE(store_->Rename(kRootInode, "b", kRootInode, "kept", RenameMode::kReplace).ok());
  EXPECT_EQ(store_->GetAttr(kept.ino)->nlink, 1u);
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 1u);
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 0u);
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{blob});
  EXPECT_EQ(Names(kRootInode), (std::vector<std::string>{"kept2", "victim", "kept"}));
}

TEST_P(NamespaceStoreTest, ARemovalFreesTheLastLinkInItsOwnCommitWhenAllowed) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "counts commits in RocksDB's log statistics";
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  InodeAttr victim = Make(kRootInode, "victim", S_IFREG | 0644);
  Make(kRootInode, "src", S_IFREG | 0644);
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 10, 0}}, {BlobExtent(0, 10, blob)})
                  .ok());
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.a", "v", XattrMode::kCreateOrReplace).ok());
  const uint64_t inodes = store_->Stats()->inode_count;
  std::vector<InodeId> asked;
  auto yes = [&](InodeId ino) {
    asked.push_back(ino);
    return true;
  };

  const uint64_t commits = store_->Stats()->log_writes;
  auto removed = store_->Unlink(kRootInode, "f", yes);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->nlink, 0u);
  EXPECT_EQ(store_->Stats()->log_writes, commits + 1) << "the removal and the free in one batch";
  EXPECT_EQ(KindOf(store_->GetAttr(file.ino).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->GetXattr(file.ino, "user.a").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 0u);
  EXPECT_EQ(store_->Stats()->data_bytes, 0u);

  auto replaced = store_->Rename(kRootInode, "src", kRootInode, "victim", RenameMode::kReplace, yes);
  ASSERT_TRUE(replaced.ok() && replaced->has_value());
  EXPECT_EQ(KindOf(store_->GetAttr(victim.ino).status()), FsErrorKind::kNotFound);
  ASSERT_TRUE(store_->Rmdir(kRootInode, "d", yes).ok());
  EXPECT_EQ(KindOf(store_->GetAttr(dir.ino).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(asked, (std::vector<InodeId>{file.ino, victim.ino, dir.ino}));
  EXPECT_EQ(store_->Stats()->inode_count, inodes - 3);
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 0u) << "nothing was left an orphan";
  ASSERT_TRUE(store_->Check().ok());
  EXPECT_TRUE(store_->Check()->problems.empty());

  // Refused (a handle is open): an orphan, as without the check.
  InodeAttr open = Make(kRootInode, "open", S_IFREG | 0644);
  ASSERT_TRUE(store_->Unlink(kRootInode, "open", [](InodeId) { return false; }).ok());
  EXPECT_EQ(store_->GetAttr(open.ino)->nlink, 0u);
  // A name whose inode keeps another link is not asked about.
  InodeAttr linked = Make(kRootInode, "l1", S_IFREG | 0644);
  ASSERT_TRUE(store_->Link(linked.ino, kRootInode, "l2").ok());
  asked.clear();
  ASSERT_TRUE(store_->Unlink(kRootInode, "l1", yes).ok());
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(store_->GetAttr(linked.ino)->nlink, 1u);
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 1u);
}

// With the writeback cache the kernel sends back the ctime it set after a
// rename or unlink; that costs no commit, any real change still does.
TEST_P(NamespaceStoreTest, AKernelCtimeWriteBackCostsNoCommit) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "counts commits in RocksDB's log statistics";
  clock_.Set({1000, 0});
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  SetAttrRequest echo;
  echo.mtime = file.mtime;
  echo.ctime = Timespec{1000, 4'000'000};
  uint64_t commits = store_->Stats()->log_writes;
  auto answered = store_->SetAttr(file.ino, echo);
  ASSERT_TRUE(answered.ok());
  EXPECT_EQ(*answered, file);
  EXPECT_EQ(store_->Stats()->log_writes, commits);

  SetAttrRequest later = echo;
  later.ctime = Timespec{1002, 0};  // seconds later: a real change of ctime
  EXPECT_EQ(store_->SetAttr(file.ino, later)->ctime, (Timespec{1002, 0}));
  EXPECT_EQ(store_->Stats()->log_writes, commits + 1);
  SetAttrRequest touch = echo;
  touch.mtime = Timespec{1002, 5};  // a new mtime is always stored
  touch.ctime = Timespec{1002, 0};
  EXPECT_EQ(store_->SetAttr(file.ino, touch)->mtime, (Timespec{1002, 5}));
  SetAttrRequest chmod = echo;
  chmod.mtime = Timespec{1002, 5};
  chmod.mode = 0600;
  EXPECT_EQ(store_->SetAttr(file.ino, chmod)->mode, static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(store_->Stats()->log_writes, commits + 3);
  EXPECT_EQ(KindOf(store_->SetAttr(777, echo).status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, RenameMovesDirectoryOverEmptyDirectory) {
  InodeAttr from = Make(kRootInode, "from", S_IFDIR | 0755);
  InodeAttr to = Make(kRootInode, "to", S_IFDIR | 0755);
  InodeAttr moving = Make(from.ino, "m", S_IFDIR | 0755);
  Make(moving.ino, "child", S_IFREG | 0644);
  InodeAttr empty = Make(to.ino, "e", S_IFDIR | 0755);
  clock_.Set({6000, 0});
  auto replaced = store_->Rename(from.ino, "m", to.ino, "e", RenameMode::kReplace);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, empty.ino);
  EXPECT_EQ((*replaced)->nlink, 0u);
  EXPECT_EQ(store_->GetAttr(from.ino)->nlink, 2u);
  EXPECT_EQ(store_->GetAttr(to.ino)->nlink, 3u);
  EXPECT_EQ(store_->GetAttr(moving.ino)->parent, to.ino);
  EXPECT_EQ(store_->GetAttr(moving.ino)->ctime, (Timespec{6000, 0}));
  EXPECT_EQ(store_->GetAttr(from.ino)->mtime, (Timespec{6000, 0}));
  EXPECT_EQ(store_->GetAttr(to.ino)->ctime, (Timespec{6000, 0}));
  EXPECT_EQ(Names(to.ino), std::vector<std::string>{"e"});
  EXPECT_TRUE(Names(from.ino).empty());
  EXPECT_TRUE(store_->Lookup(moving.ino, "child").ok());
}

TEST_P(NamespaceStoreTest, SetAttrChangesOnlyWhatIsAsked) {
  clock_.Set({1000, 0});
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  clock_.Set({7000, 0});
  SetAttrRequest chmod;
  chmod.mode = S_IFDIR | 04755;  // type bits in a request are ignored
  chmod.uid = 5;
  auto changed = store_->SetAttr(file.ino, chmod);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->mode, static_cast<uint32_t>(S_IFREG | 04755));
  EXPECT_EQ(changed->uid, 5u);
  EXPECT_EQ(changed->gid, 100u);
  EXPECT_EQ(changed->ctime, (Timespec{7000, 0}));
  EXPECT_EQ(changed->mtime, (Timespec{1000, 0}));
  SetAttrRequest times;
  times.atime = Timespec{1, 2};
  times.mtime = Timespec{3, 4};
  times.ctime = Timespec{5, 6};
  changed = store_->SetAttr(file.ino, times);
  EXPECT_EQ(changed->atime, (Timespec{1, 2}));
  EXPECT_EQ(changed->mtime, (Timespec{3, 4}));
  EXPECT_EQ(changed->ctime, (Timespec{5, 6}));
  EXPECT_EQ(*store_->GetAttr(file.ino), *changed);
  EXPECT_EQ(KindOf(store_->SetAttr(777, chmod).status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, TruncateRulesAndTimes) {
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  SetAttrRequest request;
  request.size = 10;
  EXPECT_EQ(KindOf(store_->SetAttr(dir.ino, request).status()), FsErrorKind::kIsDirectory);
  request.size = kMaxFileBytes + 1;
  EXPECT_EQ(KindOf(store_->SetAttr(file.ino, request).status()), FsErrorKind::kFileTooBig);
  EXPECT_EQ(store_->GetAttr(file.ino)->size, 0u);
  clock_.Set({8000, 0});
  request.size = 100;
  auto extended = store_->SetAttr(file.ino, request);
  ASSERT_TRUE(extended.ok());
  EXPECT_EQ(extended->size, 100u);
  EXPECT_EQ(extended->allocated_bytes, 0u);
  EXPECT_EQ(extended->mtime, (Timespec{8000, 0}));
  EXPECT_TRUE(store_->GetExtents(file.ino, 0, 100)->empty());
  request.size = 50;
  request.mtime = Timespec{42, 0};
  EXPECT_EQ(store_->SetAttr(file.ino, request)->mtime, (Timespec{42, 0}));
}

TEST_P(NamespaceStoreTest, TruncateSlicesInlineDataAndTrimsBlobExtents) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 100, 0}},
                                  {InlineExtent(0, "hello world"), BlobExtent(100, 100, blob)})
                  .ok());
  EXPECT_EQ(store_->Stats()->data_bytes, 111u);
  SetAttrRequest request;
  request.size = 150;
  ASSERT_EQ(store_->SetAttr(file.ino, request)->allocated_bytes, 61u);
  EXPECT_EQ(store_->GetExtents(file.ino, 0, 1000)->back(), BlobExtent(100, 50, blob, 0));
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 1u);
  request.size = 5;
  ASSERT_EQ(store_->SetAttr(file.ino, request)->allocated_bytes, 5u);
  auto extents = store_->GetExtents(file.ino, 0, 1000);
  ASSERT_EQ(extents->size(), 1u);
  EXPECT_EQ((*extents)[0], InlineExtent(0, "hello"));
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 0u);
  EXPECT_EQ(store_->Stats()->data_bytes, 5u);
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{blob});
}

TEST_P(NamespaceStoreTest, WritesInOneCommitApplyInOrderAndSplitInlineData) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  auto attr = store_->CommitWrite(file.ino, {},
                                  {InlineExtent(0, "abcdefgh"), InlineExtent(3, "XY")});
  ASSERT_TRUE(attr.ok()) << attr.status();
  EXPECT_EQ(attr->size, 8u);
  EXPECT_EQ(attr->allocated_bytes, 8u);
  auto extents = store_->GetExtents(file.ino, 0, 8);
  ASSERT_EQ(extents->size(), 3u);
  EXPECT_EQ((*extents)[0], InlineExtent(0, "abc"));
  EXPECT_EQ((*extents)[1], InlineExtent(3, "XY"));
  EXPECT_EQ((*extents)[2], InlineExtent(5, "fgh"));
  auto clipped = store_->GetExtents(file.ino, 2, 4);
  ASSERT_EQ(clipped->size(), 3u);
  EXPECT_EQ((*clipped)[0], InlineExtent(2, "c"));
  EXPECT_EQ((*clipped)[2], InlineExtent(5, "f"));
  EXPECT_TRUE(store_->GetExtents(file.ino, 8, 100)->empty());
  EXPECT_TRUE(store_->GetExtents(file.ino, 0, 0)->empty());
}

TEST_P(NamespaceStoreTest, BlobShadowedInItsOwnCommitGoesToGc) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId first = *store_->AllocateBlobIds(2);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{first, 100, 1}, NewBlob{first + 1, 100, 2}},
                                  {BlobExtent(0, 100, first), BlobExtent(0, 100, first + 1)})
                  .ok());
  EXPECT_EQ(store_->GetBlob(first)->refcount, 0u);
  EXPECT_EQ(store_->GetBlob(first + 1)->refcount, 1u);
  EXPECT_EQ(store_->GetBlob(first + 1)->crc32c, 2u);
  EXPECT_EQ(store_->Stats()->data_bytes, 100u);
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{first});
}

TEST_P(NamespaceStoreTest, CommitWriteKeepsTimesAndRejectsBadWrites) {
  clock_.Set({1000, 0});
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  InodeAttr dir = Make(kRootInode, "d", S_IFDIR | 0755);
  clock_.Set({2000, 0});
  auto attr = store_->CommitWrite(file.ino, {}, {InlineExtent(10, "x")});
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 11u);
  EXPECT_EQ(attr->mtime, (Timespec{1000, 0}));
  EXPECT_FALSE(store_->CommitWrite(dir.ino, {}, {InlineExtent(0, "x")}).ok());
  EXPECT_EQ(KindOf(store_->CommitWrite(file.ino, {}, {InlineExtent(kMaxFileBytes, "x")})
                       .status()),
            FsErrorKind::kFileTooBig);
  // An extent naming a blob nobody registered is refused, not recorded.
  EXPECT_FALSE(store_->CommitWrite(file.ino, {}, {BlobExtent(0, 10, 4242)}).ok());
  EXPECT_EQ(store_->GetExtents(file.ino, 0, 100)->size(), 1u);
}

TEST_P(NamespaceStoreTest, GetExtentsFindsExtentStartingBeforeTheRange) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 3000, 0}},
                                  {BlobExtent(0, 1000, blob), BlobExtent(2000, 1000, blob, 2000)})
                  .ok());
  EXPECT_EQ(*store_->GetExtents(file.ino, 500, 10),
            std::vector<Extent>{BlobExtent(500, 10, blob, 500)});
  EXPECT_TRUE(store_->GetExtents(file.ino, 1000, 1000)->empty());  // the hole
  EXPECT_EQ(store_->GetExtents(file.ino, 900, 1200)->size(), 2u);
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 2u);
}

TEST_P(NamespaceStoreTest, ReleaseInodeDropsDataXattrsAndCounts) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 50, 0}},
                                  {InlineExtent(0, "abc"), BlobExtent(10, 50, blob)})
                  .ok());
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.x", "1", XattrMode::kCreateOnly).ok());
  ASSERT_TRUE(store_->ReleaseInode(file.ino).ok());  // still linked: no-op
  EXPECT_TRUE(store_->GetAttr(file.ino).ok());
  ASSERT_TRUE(store_->Unlink(kRootInode, "f").ok());
  EXPECT_EQ(store_->Stats()->inode_count, 2u);
  ASSERT_TRUE(store_->ReleaseInode(file.ino).ok());
  EXPECT_EQ(KindOf(store_->GetAttr(file.ino).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->ListXattr(file.ino).status()), FsErrorKind::kNotFound);
  EXPECT_TRUE(store_->GetExtents(file.ino, 0, 100)->empty());
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 0u);
  EXPECT_EQ(store_->Stats()->inode_count, 1u);
  EXPECT_EQ(store_->Stats()->data_bytes, 0u);
  EXPECT_EQ(*store_->ReleaseAllOrphans(), 0u);
}

TEST_P(NamespaceStoreTest, CollectableBlobsHonoursMaxAndReadyTime) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId first = *store_->AllocateBlobIds(3);
  for (BlobId id = first; id < first + 3; ++id) {
    ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{id, 10, 0}}, {BlobExtent(0, 10, id)}).ok());
    clock_.Advance(absl::Seconds(10));  // each previous blob is released 10 s after the last
  }
  ASSERT_TRUE(store_->PunchHole(file.ino, 0, 10).ok());
  clock_.Advance(absl::Seconds(45));  // first's grace is over, first+1's not yet
  EXPECT_EQ(*store_->CollectableBlobs(10), std::vector<BlobId>{first});
  clock_.Advance(absl::Seconds(100));
  EXPECT_EQ(store_->CollectableBlobs(2)->size(), 2u);
  EXPECT_EQ(store_->CollectableBlobs(10)->size(), 3u);
}

TEST_P(NamespaceStoreTest, XattrsListRemoveAndTouchCtime) {
  clock_.Set({100, 0});
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  clock_.Set({200, 0});
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.b", "2", XattrMode::kCreateOrReplace).ok());
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.a", std::string(65536, 'x'),
                               XattrMode::kCreateOrReplace)
                  .ok());
  EXPECT_EQ(store_->GetAttr(file.ino)->ctime, (Timespec{200, 0}));
  EXPECT_EQ(*store_->ListXattr(file.ino), (std::vector<std::string>{"user.a", "user.b"}));
  ASSERT_TRUE(store_->SetXattr(file.ino, "user.b", "3", XattrMode::kReplaceOnly).ok());
  EXPECT_EQ(*store_->GetXattr(file.ino, "user.b"), "3");
  clock_.Set({300, 0});
  ASSERT_TRUE(store_->RemoveXattr(file.ino, "user.b").ok());
  EXPECT_EQ(store_->GetAttr(file.ino)->ctime, (Timespec{300, 0}));
  EXPECT_EQ(*store_->ListXattr(file.ino), std::vector<std::string>{"user.a"});
  EXPECT_EQ(KindOf(store_->SetXattr(file.ino, "", "v", XattrMode::kCreateOrReplace)),
            FsErrorKind::kInvalid);
  EXPECT_EQ(KindOf(store_->SetXattr(file.ino, std::string(256, 'n'), "v",
                                    XattrMode::kCreateOrReplace)),
            FsErrorKind::kRange);
  EXPECT_EQ(KindOf(store_->SetXattr(999, "user.a", "v", XattrMode::kCreateOrReplace)),
            FsErrorKind::kNotFound);
  EXPECT_EQ(KindOf(store_->GetXattr(999, "user.a").status()), FsErrorKind::kNotFound);
}

TEST_P(NamespaceStoreTest, VolumeMetaIsSeparateFromCountersAndSurvivesReopen) {
  EXPECT_FALSE(store_->GetVolumeMeta("volume_id")->has_value());
  ASSERT_TRUE(store_->SetVolumeMeta("volume_id", "v1").ok());
  ASSERT_TRUE(store_->SetVolumeMeta("volume_id", "v2").ok());
  // Names that look like internal counters are just user keys.
  ASSERT_TRUE(store_->SetVolumeMeta("c:next_ino", std::string("\0\0", 2)).ok());
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  ASSERT_TRUE(store_->Sync().ok());
  Open();
  EXPECT_EQ(**store_->GetVolumeMeta("volume_id"), "v2");
  EXPECT_EQ(**store_->GetVolumeMeta("c:next_ino"), std::string("\0\0", 2));
  EXPECT_GT(Make(kRootInode, "g", S_IFREG | 0644).ino, file.ino);
  EXPECT_EQ(store_->Stats()->inode_count, 3u);
}

TEST_P(NamespaceStoreTest, OpenWithoutCreateRefusesAMissingDatabase) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  NamespaceOptions options;
  EXPECT_FALSE(NamespaceStore::Open(dir_.path() + "/absent", options).ok());
}

TEST_P(NamespaceStoreTest, CorruptRecordsAreIoErrorsNotCrashes) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  InodeAttr sub = Make(kRootInode, "sub", S_IFDIR | 0755);
  Make(sub.ino, "x", S_IFREG | 0644);
  EditRawDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Put({}, cfs["inodes"], InodeKey(file.ino), "\x01\x00\x00\x00garbage").ok());
    ASSERT_TRUE(db->Put({}, cfs["dentries"], DentryKey(kRootInode, "sub"), "short").ok());
    ASSERT_TRUE(db->Put({}, cfs["dircookies"], CookieKey(sub.ino, 3), "\xff\xff\xff\xff").ok());
  });
  absl::Status status = store_->GetAttr(file.ino).status();
  EXPECT_EQ(KindOf(status), FsErrorKind::kIo);
  EXPECT_NE(status.message().find(std::to_string(file.ino)), std::string_view::npos) << status;
  EXPECT_EQ(KindOf(store_->Lookup(kRootInode, "f").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store_->Lookup(kRootInode, "sub").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store_->ReadDir(sub.ino, 0, [](const DirEntry&) { return true; })),
            FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store_->Unlink(kRootInode, "f").status()), FsErrorKind::kIo);
}

// Every record decoder refuses truncated or extended input and survives
// random bytes (run under ASan/UBSan to see it never reads out of bounds).
TEST(NamespaceRecordsTest, DecodersTreatBytesAsHostile) {
  InodeRecord inode;
  inode.attr.mode = S_IFLNK | 0777;
  inode.symlink_target = "target";
  Extent inline_extent;
  inline_extent.length = 3;
  inline_extent.inline_data = "abc";
  StoredBlob blob;
  blob.record.refcount = 2;
  std::vector<std::pair<std::string, std::function<bool(std::string_view)>>> formats = {
      {EncodeInode(inode), [](std::string_view v) { return DecodeInode(7, v).ok(); }},
      {EncodeDentry(DentryValue{5, S_IFREG, 9}),
       [](std::string_view v) { return DecodeDentry(v).ok(); }},
      {EncodeCookieEntry("name", DentryValue{5, S_IFREG, 9}),
       [](std::string_view v) { return DecodeCookieEntry(3, v).ok(); }},
      {EncodeExtent(inline_extent), [](std::string_view v) { return DecodeExtent(0, v).ok(); }},
      {EncodeBlob(blob), [](std::string_view v) { return DecodeBlob(v).ok(); }},
  };
  std::mt19937 rng(7);
  for (size_t f = 0; f < formats.size(); ++f) {
    const auto& [encoded, decodes] = formats[f];
    SCOPED_TRACE("format " + std::to_string(f));
    EXPECT_TRUE(decodes(encoded));
    for (size_t n = 0; n < encoded.size(); ++n) {
      // A blob record cut right before its live-bytes field is a valid
      // record of the earlier format.
      if (f == 4 && n == 28) {
        EXPECT_TRUE(decodes(encoded.substr(0, n)));
        continue;
      }
      EXPECT_FALSE(decodes(encoded.substr(0, n))) << n;
    }
    EXPECT_FALSE(decodes(encoded + "x"));
    for (int i = 0; i < 2000; ++i) {
      std::string mutated = encoded;
      mutated[rng() % mutated.size()] = static_cast<char>(rng());
      if (rng() % 2) mutated.resize(rng() % (mutated.size() + 1));
      decodes(mutated);  // may or may not decode; must not crash
    }
  }
  // Versioned records refuse an unknown version; an inline extent must hold
  // exactly its length in bytes.
  std::string future = EncodeInode(inode);
  future[0] = 3;
  EXPECT_FALSE(DecodeInode(7, future).ok());
  // Version 1 records (before the journal mark) still read, with mark 0.
  inode.journal_mark = 42;
  std::string current = EncodeInode(inode);
  ASSERT_TRUE(DecodeInode(7, current).ok());
  EXPECT_EQ(DecodeInode(7, current)->journal_mark, 42u);
  std::string version1 = current.substr(0, current.size() - 8);
  version1[0] = 1;
  ASSERT_TRUE(DecodeInode(7, version1).ok());
  EXPECT_EQ(DecodeInode(7, version1)->journal_mark, 0u);
  EXPECT_EQ(DecodeInode(7, version1)->symlink_target, "target");
  Extent lying = inline_extent;
  lying.length = 4;
  EXPECT_FALSE(DecodeExtent(0, EncodeExtent(lying)).ok());
}

TEST_P(NamespaceStoreTest, ConcurrentCreatesGetDistinctInodesAndCookies) {
  constexpr int kThreads = 4, kPerThread = 50;
  std::vector<std::thread> threads;
  std::vector<std::vector<InodeId>> made(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = "t" + std::to_string(t) + "_" + std::to_string(i);
        made[t].push_back(Make(kRootInode, name, S_IFREG | 0644).ino);
        EXPECT_TRUE(store_->Lookup(kRootInode, name).ok());
        (void)store_->ReadDir(kRootInode, 0, [](const DirEntry&) { return true; });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<InodeId> inodes;
  for (const auto& list : made) inodes.insert(list.begin(), list.end());
  EXPECT_EQ(inodes.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<uint64_t> cookies;
  uint64_t last = 0;
  ASSERT_TRUE(store_->ReadDir(kRootInode, 0, [&](const DirEntry& e) {
                EXPECT_GT(e.cookie, last);
                last = e.cookie;
                cookies.insert(e.cookie);
                return true;
              }).ok());
  EXPECT_EQ(cookies.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(store_->Stats()->inode_count, static_cast<uint64_t>(kThreads * kPerThread + 1));
}

TEST_P(NamespaceStoreTest, RegisteringABlobTwiceIsRefusedAndKeepsItsReferences) {
  InodeAttr file = Make(kRootInode, "twice", S_IFREG | 0644);
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 100, 1}},
                                  {BlobExtent(0, 100, blob)})
                  .ok());
  // A retried commit of the same blob must not reset its reference count.
  auto again = store_->CommitWrite(file.ino, {NewBlob{blob, 100, 1}},
                                   {BlobExtent(0, 100, blob)});
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(store_->GetBlob(blob)->refcount, 1u);
}

TEST_P(NamespaceStoreTest, CheckIsCleanOnAHealthyNamespaceAndNamesEachKindOfDamage) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  InodeAttr sub = Make(kRootInode, "sub", S_IFDIR | 0755);
  InodeAttr inner = Make(sub.ino, "x", S_IFREG | 0644);
  ASSERT_TRUE(store_->Link(inner.ino, kRootInode, "hard").ok());
  BlobId blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{blob, 100, 1}},
                                  {BlobExtent(0, 100, blob)}).ok());
  absl::StatusOr<NamespaceCheckReport> clean = store_->Check();
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_TRUE(clean->problems.empty()) << clean->problems.front();
  EXPECT_EQ(clean->inodes, 4u);
  EXPECT_EQ(clean->files, 2u);
  EXPECT_EQ(clean->directories, 2u);
  ASSERT_EQ(clean->blobs.size(), 1u);
  EXPECT_EQ(clean->blobs[0].first, blob);

  EditRawDb([&](rocksdb::DB* db, auto& cfs) {
    // An entry naming a missing inode, and a blob record lost.
    ASSERT_TRUE(db->Delete({}, cfs["inodes"], InodeKey(inner.ino)).ok());
    ASSERT_TRUE(db->Delete({}, cfs["blobs"], BlobKey(blob)).ok());
  });
  absl::StatusOr<NamespaceCheckReport> damaged = store_->Check();
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  std::string all;
  for (const std::string& p : damaged->problems) all += p + "\n";
  EXPECT_NE(all.find("names inode " + std::to_string(inner.ino) + ", which does not exist"),
            std::string::npos) << all;
  EXPECT_NE(all.find("references blob " + std::to_string(blob)), std::string::npos) << all;
}

TEST_P(NamespaceStoreTest, ScansNeverWalkTheTombstonesOfDeletedFiles) {
  if (GetParam() == "postgresql") GTEST_SKIP() << "edits or reads RocksDB's own files";
  InodeAttr before = Make(kRootInode, "before", S_IFREG | 0644);
  InodeAttr big = Make(kRootInode, "big", S_IFREG | 0644);
  InodeAttr after = Make(kRootInode, "after", S_IFREG | 0644);
  std::vector<Extent> writes;
  for (uint64_t i = 0; i < 3000; ++i) {
    Extent e;
    e.file_offset = i * 8192;
    e.length = 10;
    e.inline_data = std::string(10, 'x');
    writes.push_back(e);
  }
  ASSERT_TRUE(store_->CommitWrite(big.ino, {}, writes).ok());
  ASSERT_TRUE(store_->Unlink(kRootInode, "big").ok());
  ASSERT_TRUE(store_->ReleaseInode(big.ino).ok());
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  for (const InodeAttr& file : {before, after}) {
    ASSERT_TRUE(store_->GetExtents(file.ino, 0, 1 << 30).ok());
    ASSERT_TRUE(store_->ListXattr(file.ino).ok());
  }
  uint64_t skipped = rocksdb::get_perf_context()->internal_delete_skipped_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_LT(skipped, 10u) << "seeks next to a deleted file walked its deleted extents";
}

TEST_P(NamespaceStoreTest, RelocationMovesOnlyRangesStillReadFromTheOldBlob) {
  InodeAttr file = Make(kRootInode, "f", S_IFREG | 0644);
  BlobId old_blob = *store_->AllocateBlobIds(1);
  // Two ranges of the file in one packed blob: [0,100) at 0, [1000,1100) at 100.
  ASSERT_TRUE(store_->CommitWrite(file.ino, {NewBlob{old_blob, 4000, 1}},
                                  {BlobExtent(0, 100, old_blob, 0),
                                   BlobExtent(1000, 100, old_blob, 100)}).ok());
  EXPECT_EQ(store_->GetBlob(old_blob)->live_bytes, 200u);
  EXPECT_EQ(store_->GetBlob(old_blob)->owner, file.ino);
  // Half of the second range is overwritten before the compactor commits.
  Extent inline_write;
  inline_write.file_offset = 1050;
  inline_write.length = 50;
  inline_write.inline_data = std::string(50, 'n');
  ASSERT_TRUE(store_->CommitWrite(file.ino, {}, {inline_write}).ok());
  EXPECT_EQ(store_->GetBlob(old_blob)->live_bytes, 150u);
  auto candidates = store_->CompactionCandidates(10, 0.5);
  ASSERT_TRUE(candidates.ok());
  ASSERT_EQ(candidates->size(), 1u);
  EXPECT_EQ((*candidates)[0].first, old_blob);

  BlobId new_blob = *store_->AllocateBlobIds(1);
  ASSERT_TRUE(store_->RelocateExtents(
      file.ino, {NewBlob{new_blob, 200, 2}},
      {Relocation{0, 100, old_blob, 0, new_blob, 0},
       Relocation{1000, 100, old_blob, 100, new_blob, 100}}).ok());
  std::vector<Extent> extents = *store_->GetExtents(file.ino, 0, 1 << 20);
  ASSERT_EQ(extents.size(), 3u);
  EXPECT_EQ(extents[0], BlobExtent(0, 100, new_blob, 0));
  EXPECT_EQ(extents[1], BlobExtent(1000, 50, new_blob, 100));
  EXPECT_EQ(extents[2].inline_data, std::string(50, 'n')) << "newer data is kept";
  EXPECT_EQ(store_->GetBlob(old_blob)->refcount, 0u);
  EXPECT_EQ(store_->GetBlob(new_blob)->live_bytes, 150u);
  EXPECT_EQ(store_->GetAttr(file.ino)->allocated_bytes, 200u);
  auto check = store_->Check();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A file that lost a write stays marked until it is deleted (or the file
// system clears it on a truncate to 0).
TEST_P(NamespaceStoreTest, DamagedFilesAreKeptUntilClearedOrDeleted) {
  InodeId a = Make(kRootInode, "a", S_IFREG | 0644).ino;
  InodeId b = Make(kRootInode, "b", S_IFREG | 0644).ino;
  ASSERT_TRUE(store_->MarkDamaged(a, "lost a write").ok());
  ASSERT_TRUE(store_->MarkDamaged(b, "lost another").ok());
  Open();  // survives a reopen
  auto damaged = store_->DamagedFiles();
  ASSERT_TRUE(damaged.ok());
  ASSERT_EQ(damaged->size(), 2u);
  EXPECT_EQ((*damaged)[0], std::make_pair(a, std::string("lost a write")));
  ASSERT_TRUE(store_->ClearDamage(a).ok());
  ASSERT_TRUE(store_->Unlink(kRootInode, "b").ok());
  ASSERT_TRUE(store_->ReleaseInode(b).ok());
  EXPECT_TRUE(store_->DamagedFiles()->empty());
}

// 20,000 xattrs on one file were all accepted, after which listxattr failed
// with E2BIG and cp -a dropped them silently: a file's xattrs are bounded
// (ENOSPC) so that every one can be listed.
TEST_P(NamespaceStoreTest, XattrsPerFileAreBoundedSoAllCanBeListed) {
  InodeId f = Make(kRootInode, "f", S_IFREG | 0644).ino;
  int stored = 0;
  absl::Status refused;
  for (int i = 0; i < 20000; ++i) {
    refused = store_->SetXattr(f, absl::StrCat("user.attribute-number-", i), "v",
                               XattrMode::kCreateOrReplace);
    if (!refused.ok()) break;
    ++stored;
  }
  ASSERT_FALSE(refused.ok()) << "20,000 names accepted";
  EXPECT_EQ(KindOf(refused), FsErrorKind::kNoSpace) << refused;
  auto names = store_->ListXattr(f);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), static_cast<size_t>(stored));
  size_t list_bytes = 0;
  for (const std::string& name : *names) list_bytes += name.size() + 1;
  EXPECT_LE(list_bytes, 65536u);
  // Replacing a value takes no list room; removing one makes room for one.
  EXPECT_TRUE(store_->SetXattr(f, "user.attribute-number-0", "w", XattrMode::kCreateOrReplace).ok());
  ASSERT_TRUE(store_->RemoveXattr(f, "user.attribute-number-1").ok());
  EXPECT_TRUE(store_->SetXattr(f, "user.attribute-number-x", "v", XattrMode::kCreateOrReplace).ok());

  // Values count too: 64 of 64 KiB go past the 4 MiB a file may hold.
  InodeId g = Make(kRootInode, "g", S_IFREG | 0644).ino;
  const std::string big(64 << 10, 'b');
  int values = 0;
  while (values < 100 && store_->SetXattr(g, absl::StrCat("user.v", values), big,
                                          XattrMode::kCreateOrReplace).ok()) {
    ++values;
  }
  EXPECT_EQ(values, 63);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// The namespace directory as a crash leaves it: copied while the store is
// open, after its last Sync, so every change is only in the log.
class NamespaceLogDamageTest : public ::testing::Test {
 protected:
  std::string CrashImage() {
    NamespaceOptions options;
    options.create_if_missing = true;
    auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
    EXPECT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 200; ++i) {
      NewNode node;
      node.mode = S_IFREG | 0644;
      EXPECT_TRUE((*store)->MakeNode(kRootInode, "f" + std::to_string(i), node, {}).ok());
      EXPECT_TRUE((*store)->Sync().ok());
    }
    const std::string image = dir_.path() + "/image";
    std::filesystem::copy(dir_.path() + "/ns", image);
    return image;
  }
  static std::string LogFile(const std::string& db) {
    for (const auto& entry : std::filesystem::directory_iterator(db)) {
      if (entry.path().extension() == ".log" && std::filesystem::file_size(entry.path()) > 0) {
        return entry.path();
      }
    }
    return "";
  }

  TempDir dir_;
};

// Replay used to stop at a damaged record and open anyway: every file
// created after it was gone, and nothing said so.
TEST_F(NamespaceLogDamageTest, ADamagedLogRefusesTheOpenAndSalvageKeepsEveryIntactRecord) {
  const std::string image = CrashImage();
  const std::string log = LogFile(image);
  ASSERT_FALSE(log.empty());
  FlipByte(log, std::filesystem::file_size(log) / 3);

  NamespaceOptions plain;
  auto refused = NamespaceStore::Open(image, plain);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();

  std::vector<std::string> dropped;
  NamespaceOptions salvage;
  salvage.salvaged_log = &dropped;
  {
    auto salvaged = NamespaceStore::Open(image, salvage);
    ASSERT_TRUE(salvaged.ok()) << salvaged.status();
  }
  ASSERT_GE(dropped.size(), 1u);
  EXPECT_NE(dropped[0].find("dropping"), std::string::npos) << dropped[0];
  // The log is retired: a plain open works now and finds every file but
  // those whose records shared the damaged stretch (replay skips to the next
  // 32 KiB block of the log), those after it included.
  auto reopened = NamespaceStore::Open(image, plain);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  int found = 0;
  for (int i = 0; i < 200; ++i) {
    if ((*reopened)->Lookup(kRootInode, "f" + std::to_string(i)).ok()) ++found;
  }
  EXPECT_GE(found, 150);
  EXPECT_LT(found, 200);
  EXPECT_TRUE((*reopened)->Lookup(kRootInode, "f199").ok()) << "records after the damage lost";
}

// A clean close leaves nothing in the log to damage.
TEST_F(NamespaceLogDamageTest, ACleanCloseLeavesAnEmptyLog) {
  {
    NamespaceOptions options;
    options.create_if_missing = true;
    auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
    ASSERT_TRUE(store.ok());
    NewNode node;
    node.mode = S_IFREG | 0644;
    ASSERT_TRUE((*store)->MakeNode(kRootInode, "f", node, {}).ok());
  }
  EXPECT_EQ(LogFile(dir_.path() + "/ns"), "");
}

INSTANTIATE_TEST_SUITE_P(Engines, NamespaceStoreTest,
                         ::testing::Values("rocksdb", "rocksdb_run_twice", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
INSTANTIATE_TEST_SUITE_P(Engines, MultipartRecordTest,
                         ::testing::Values("rocksdb", "rocksdb_run_twice", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace cairn

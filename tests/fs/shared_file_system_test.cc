// FileSystem over a namespace several hosts share: each host is a
// FileSystem with its own namespace object, write cache and inode table
// over one RocksDB store (tests/support/test_kv_store.h gives each its
// session and runs every transaction body twice) and one blob store, as
// the hosts of a shared volume share the database and the bucket.
#include <fcntl.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/rocks_kv_store.h"
#include "cache/file_data_cache.h"
#include "fs/file_system.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

struct Host {
  TestKvStore* kv = nullptr;  // owned by ns
  std::unique_ptr<NamespaceStore> ns;
  std::unique_ptr<FileDataCache> cache;
  std::unique_ptr<FileSystem> fs;
};

class SharedFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RocksKvOptions engine;
    engine.clock = &clock_;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    store_ = std::shared_ptr<KvStore>(std::move(*kv));
    auto blobs = LocalBlobStore::Open(dir_.path() + "/data");
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
  }
  void TearDown() override {
    for (Host* host : {&a_, &b_}) {
      host->fs.reset();
      host->cache.reset();
      host->ns.reset();
    }
  }
  // `session` 0: a single-host volume.
  void Start(Host& host, uint64_t session) {
    TestKvStore::Options options;
    options.session = session;
    options.sessions = &sessions_;
    options.run_twice = true;
    auto kv = std::make_unique<TestKvStore>(store_, options);
    host.kv = kv.get();
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_options.clock = &clock_;
    auto ns = OpenKvNamespace(std::move(kv), ns_options);
    ASSERT_TRUE(ns.ok()) << ns.status();
    host.ns = std::move(*ns);
    FileDataCacheOptions cache_options;
    cache_options.background_threads = false;
    host.cache = std::make_unique<FileDataCache>(*host.ns, *blobs_, cache_options);
    FileSystem::Options fs_options;
    fs_options.clock = &clock_;
    host.fs = std::make_unique<FileSystem>(*host.ns, *blobs_, *host.cache, fs_options);
  }
  // Creates `name` holding `data`, stored, and closes it (the kernel keeps
  // its lookup).
  InodeId WriteFile(Host& host, const std::string& name, const std::string& data) {
    auto attr = host.fs->Create(kRootInode, name, 0644, Caller{1000, 100}, O_RDWR);
    EXPECT_TRUE(attr.ok()) << attr.status();
    if (!attr.ok()) return 0;
    EXPECT_TRUE(host.fs->Write(attr->ino, 0, data).ok());
    EXPECT_TRUE(host.fs->Fsync(attr->ino).ok());
    host.fs->Release(attr->ino, O_RDWR);
    EXPECT_TRUE(host.fs->DropClosedHolds().ok());
    return attr->ino;
  }
  // Sessions holding inodes open, as (inode, session) keys read raw.
  size_t HoldCount() {
    size_t count = 0;
    EXPECT_TRUE(store_->Reader()
                    .Scan(KvSpace::kMeta, "oh:", KvPrefixEnd("oh:"),
                          [&](std::string_view, std::string_view) {
                            ++count;
                            return true;
                          })
                    .ok());
    return count;
  }
  static FsErrorKind KindOf(const absl::Status& s) {
    return GetFsErrorKind(s).value_or(FsErrorKind::kIo);
  }
  bool InNamespace(Host& host, InodeId ino) {
    auto attr = host.ns->GetAttr(ino);
    EXPECT_TRUE(attr.ok() || GetFsErrorKind(attr.status()) == FsErrorKind::kNotFound)
        << attr.status();
    return attr.ok();
  }

  TempDir dir_;
  FakeClock clock_;
  FakeSessions sessions_;
  std::shared_ptr<KvStore> store_;
  std::unique_ptr<LocalBlobStore> blobs_;
  Host a_, b_;
};

// B's kernel still believes the name absent (its negative entry outlives
// A's create by up to the feed's delay) and sends CREATE for an open(2)
// with O_CREAT. Without O_EXCL that open must reach A's file: ESTALE has
// the kernel look the name up again. With O_EXCL the name exists.
TEST_F(SharedFileSystemTest, ACreateOfANameAnotherHostMadeOpensItUnlessExclusive) {
  Start(a_, 1);
  Start(b_, 2);
  const InodeId made = WriteFile(a_, "lock", "x");
  ASSERT_NE(made, 0u);
  auto plain = b_.fs->Create(kRootInode, "lock", 0644, Caller{1000, 100}, O_RDWR | O_CREAT);
  EXPECT_EQ(KindOf(plain.status()), FsErrorKind::kStale) << plain.status();
  auto exclusive =
      b_.fs->Create(kRootInode, "lock", 0644, Caller{1000, 100}, O_RDWR | O_CREAT | O_EXCL);
  EXPECT_EQ(KindOf(exclusive.status()), FsErrorKind::kExists) << exclusive.status();
  // The lookup the kernel then makes finds A's file, which nothing replaced.
  auto found = b_.fs->Lookup(kRootInode, "lock");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ino, made);
  EXPECT_EQ(found->size, 1u);
}

// The unlink's body runs twice; between the runs another host renames a
// file over the name, so the second run removes another inode than the
// first asked about. The first one, marked freed by its question, must be
// unmarked: it is now an orphan this host's forget releases.
TEST_F(SharedFileSystemTest, AnUnlinkRunTwiceFreesOnlyWhatItsCommitRemoved) {
  Start(a_, 0);
  Start(b_, 0);
  // Empty files, which the write cache does not track: the unlink's
  // commit itself frees what it removes.
  NewNode node;
  node.mode = S_IFREG | 0644;
  auto made = a_.fs->MakeNode(kRootInode, "f", node, Caller{});
  ASSERT_TRUE(made.ok()) << made.status();
  const InodeId first = made->ino;
  made = a_.fs->MakeNode(kRootInode, "g", node, Caller{});
  ASSERT_TRUE(made.ok()) << made.status();
  const InodeId second = made->ino;
  a_.kv->BetweenRunsOfNextBody([&] {
    auto replaced = b_.ns->Rename(kRootInode, "g", kRootInode, "f", RenameMode::kReplace);
    ASSERT_TRUE(replaced.ok()) << replaced.status();
  });
  ASSERT_TRUE(a_.fs->Unlink(kRootInode, "f").ok());
  EXPECT_FALSE(InNamespace(a_, second));
  ASSERT_TRUE(InNamespace(a_, first));  // the rename's orphan
  // The kernel forgets what it looked up: the orphan goes.
  a_.fs->Forget(first, 1);
  EXPECT_FALSE(InNamespace(a_, first));
}

// Without the kernel's writeback cache each write sets its file's times;
// committing them per write cost a transaction per write(2). A file's
// first write in a second commits them; later ones are seen on this host
// at once and committed at close (so another host's open after it sees
// them), fsync, a setattr, or the next write after the second.
TEST_F(SharedFileSystemTest, AFilesWriteTimesAreCommittedOnceASecondAndAtClose) {
  Start(a_, 1);
  Start(b_, 2);
  auto made = a_.fs->Create(kRootInode, "f", 0644, Caller{1000, 100}, O_RDWR);
  ASSERT_TRUE(made.ok()) << made.status();
  const InodeId f = made->ino;
  auto committed = [&] { return a_.ns->GetAttr(f)->mtime; };
  auto seen_on = [&](Host& host) { return host.fs->GetAttr(f)->mtime; };
  auto write = [&](const std::string& data) {
    clock_.Advance(absl::Milliseconds(100));
    EXPECT_TRUE(a_.fs->Write(f, 0, data).ok());
    return clock_.NowTimespec();
  };

  const Timespec first = write("one");
  EXPECT_EQ(committed(), first) << "the first write commits its times";
  const Timespec second = write("two");
  EXPECT_EQ(committed(), first) << "the next one within a second is kept";
  EXPECT_EQ(seen_on(a_), second) << "and seen on this host";
  EXPECT_EQ(a_.fs->GetAttr(f)->ctime, second);
  EXPECT_EQ(seen_on(b_), first);
  ASSERT_TRUE(a_.fs->FlushOnClose(f).ok());
  EXPECT_EQ(committed(), second) << "close commits them";
  EXPECT_EQ(seen_on(b_), second);

  EXPECT_EQ(committed(), write("three")) << "the first write after a close commits";
  const Timespec kept = write("four");
  ASSERT_TRUE(a_.fs->Fsync(f).ok());
  EXPECT_EQ(committed(), kept) << "fsync commits them";

  write("five");
  const Timespec late = write("six");
  clock_.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(committed(), write("seven")) << "a write a second after the last commit commits";
  EXPECT_LT(late.sec * 1'000'000'000ll + late.nsec,
            committed().sec * 1'000'000'000ll + committed().nsec);

  write("eight");
  write("nine");
  SetAttrRequest chmod;
  chmod.mode = 0600;
  ASSERT_TRUE(a_.fs->SetAttr(f, chmod).ok());
  EXPECT_EQ(committed(), clock_.NowTimespec()) << "a setattr commits the kept time with it";

  write("ten");
  write("eleven");
  SetAttrRequest utimes;
  utimes.mtime = Timespec{1000, 0};
  ASSERT_TRUE(a_.fs->SetAttr(f, utimes).ok());
  ASSERT_TRUE(a_.fs->FlushOnClose(f).ok());
  EXPECT_EQ(committed(), (Timespec{1000, 0})) << "a time set after the writes wins over theirs";
  EXPECT_EQ(seen_on(a_), (Timespec{1000, 0}));

  write("twelve");
  const Timespec before_truncate = write("thirteen");
  SetAttrRequest same_size;
  same_size.size = a_.fs->GetAttr(f)->size;
  ASSERT_TRUE(a_.fs->SetAttr(f, same_size).ok());
  EXPECT_EQ(committed(), before_truncate) << "a truncate to the same size keeps the writes' time";

  write("fourteen");
  const Timespec last = write("fifteen");  // as a shared mapping's writeback, after the close
  a_.fs->Release(f, O_RDWR);
  EXPECT_EQ(committed(), last) << "the release of the last reference commits them";
}

TEST_F(SharedFileSystemTest, AFileAnotherHostHasOpenStaysUntilItsLastClose) {
  sessions_.Set({11, 22});
  Start(a_, 11);
  Start(b_, 22);
  auto created = a_.fs->Create(kRootInode, "f", 0644, Caller{}, O_RDWR);
  ASSERT_TRUE(created.ok()) << created.status();
  const InodeId f = created->ino;
  EXPECT_EQ(HoldCount(), 1u);  // in the create's own commit
  ASSERT_TRUE(a_.fs->Write(f, 0, "hello").ok());
  ASSERT_TRUE(a_.fs->Fsync(f).ok());
  a_.fs->Release(f, O_RDWR);
  ASSERT_TRUE(a_.fs->DropClosedHolds().ok());
  EXPECT_EQ(HoldCount(), 0u);

  auto found = b_.fs->Lookup(kRootInode, "f");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(b_.fs->Open(f, O_RDONLY).ok());
  EXPECT_EQ(HoldCount(), 1u);
  ASSERT_TRUE(a_.fs->Unlink(kRootInode, "f").ok());
  // Gone for A (its kernel looks the name up again), kept for B.
  EXPECT_EQ(KindOf(a_.fs->Open(f, O_RDONLY)), FsErrorKind::kStale);
  ASSERT_TRUE(InNamespace(a_, f));
  auto data = b_.fs->Read(f, 0, 100);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "hello");
  // B's last close frees it, though B's kernel still holds its lookup.
  b_.fs->Release(f, O_RDONLY);
  ASSERT_TRUE(b_.fs->DropClosedHolds().ok());
  EXPECT_FALSE(InNamespace(a_, f));
  EXPECT_EQ(HoldCount(), 0u);
  auto attr = b_.fs->GetAttr(f);
  ASSERT_TRUE(attr.ok()) << attr.status();
  EXPECT_EQ(attr->nlink, 0u);
  b_.fs->Forget(f, 1);
  a_.fs->Forget(f, 1);
}

TEST_F(SharedFileSystemTest, AFileOnlyLookedUpOnAnotherHostIsGoneThere) {
  sessions_.Set({11, 22});
  Start(a_, 11);
  Start(b_, 22);
  const InodeId f = WriteFile(a_, "f", "hello");
  ASSERT_TRUE(b_.fs->Lookup(kRootInode, "f").ok());
  ASSERT_TRUE(a_.fs->Unlink(kRootInode, "f").ok());
  EXPECT_FALSE(InNamespace(a_, f));
  // B's kernel, holding the stale lookup, is told to look the name up
  // again (ESTALE), as an NFS client is.
  EXPECT_EQ(KindOf(b_.fs->Open(f, O_RDONLY)), FsErrorKind::kStale);
  EXPECT_EQ(HoldCount(), 0u);
  EXPECT_EQ(KindOf(b_.fs->GetAttr(f).status()), FsErrorKind::kNotFound);
}

TEST_F(SharedFileSystemTest, TheLeaderFreesWhatADeadHostHadOpen) {
  sessions_.Set({11, 22});
  Start(a_, 11);
  Start(b_, 22);
  const InodeId f = WriteFile(a_, "f", "hello");
  ASSERT_TRUE(b_.fs->Lookup(kRootInode, "f").ok());
  ASSERT_TRUE(b_.fs->Open(f, O_RDONLY).ok());
  ASSERT_TRUE(a_.fs->Unlink(kRootInode, "f").ok());
  auto released = a_.fs->ReleaseUnheldOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 0u);
  // B dies with the file open: nothing it runs closes it.
  b_.fs.reset();
  b_.cache.reset();
  b_.ns.reset();
  sessions_.Set({11});
  released = a_.fs->ReleaseUnheldOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1u);
  EXPECT_FALSE(InNamespace(a_, f));
  EXPECT_EQ(HoldCount(), 0u);
}

TEST_F(SharedFileSystemTest, ASingleHostVolumeRecordsNoHolds) {
  Start(a_, 0);
  auto created = a_.fs->Create(kRootInode, "f", 0644, Caller{}, O_RDWR);
  ASSERT_TRUE(created.ok()) << created.status();
  const InodeId f = created->ino;
  ASSERT_TRUE(a_.fs->Open(f, O_RDONLY).ok());
  EXPECT_EQ(HoldCount(), 0u);
  ASSERT_TRUE(a_.fs->Unlink(kRootInode, "f").ok());
  a_.fs->Release(f, O_RDWR);
  a_.fs->Release(f, O_RDONLY);
  EXPECT_TRUE(InNamespace(a_, f));  // the kernel's lookup keeps it
  a_.fs->Forget(f, 1);
  EXPECT_FALSE(InNamespace(a_, f));
  auto released = a_.fs->ReleaseUnheldOrphans();
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, 0u);
}

}  // namespace
}  // namespace cairn

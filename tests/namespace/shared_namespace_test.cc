// Two hosts of one shared namespace, each with a session of its own, as
// two mounted daemons have: what one host remembers (the inode a name
// held, to read it in the same round trip as the entry; a directory's
// attributes from its own commit; the values a transaction runs on
// before the server checks them) must never change what an operation
// does, or hide a newer commit, once the other host or another thread
// has changed it. Over PostgreSQL, and over RocksDB where the test
// drives the change feed and the order commits return in.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/namespace_store.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/namespace/records.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

FsErrorKind KindOf(const absl::Status& s) {
  return GetFsErrorKind(s).value_or(FsErrorKind::kIo);
}

class SharedNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase("hosts");
    if (url_.empty()) return;
    a_ = Host("a", /*format=*/true);
    b_ = Host("b", /*format=*/false);
  }

  // `deaf`: the host's change feed brings nothing within a test (no
  // doorbell, no polling). `kv`: where to put the host's store.
  std::unique_ptr<NamespaceStore> Host(const std::string& name, bool format, bool deaf = false,
                                       PgKvStore** kv_out = nullptr) {
    PgKvOptions pg;
    pg.url = url_;
    PgSessionOptions session;
    session.host = name;
    session.pid = getpid();
    session.mountpoint = "/mnt/" + name;
    session.expiry_s = 600;  // never fenced mid-test on a loaded machine
    if (deaf) {
      session.listen = false;
      session.feed_poll_ms = 600000;
    }
    pg.session = session;
    absl::StatusOr<std::unique_ptr<PgKvStore>> kv =
        format ? PgKvStore::Format(pg) : PgKvStore::Open(pg);
    EXPECT_TRUE(kv.ok()) << kv.status();
    if (!kv.ok()) return nullptr;
    if (kv_out != nullptr) *kv_out = kv->get();
    NamespaceOptions options;
    options.create_if_missing = true;
    auto ns = OpenKvNamespace(*std::move(kv), options);
    EXPECT_TRUE(ns.ok()) << ns.status();
    return ns.ok() ? *std::move(ns) : nullptr;
  }

  InodeAttr Make(NamespaceStore& ns, const std::string& name, uint32_t mode) {
    NewNode node;
    node.mode = mode;
    auto attr = ns.MakeNode(kRootInode, name, node, Caller{1000, 100});
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.value_or(InodeAttr{});
  }
  InodeAttr WithData(NamespaceStore& ns, const std::string& name) {
    InodeAttr attr = Make(ns, name, S_IFREG | 0644);
    Extent e;
    e.length = 4;
    e.inline_data = "data";
    EXPECT_TRUE(ns.CommitWrite(attr.ino, {}, {e}).ok());
    EXPECT_TRUE(ns.SetXattr(attr.ino, "user.k", "v", XattrMode::kCreateOrReplace).ok());
    return attr;
  }
  bool Exists(NamespaceStore& ns, InodeId ino) {
    auto attr = ns.GetAttr(ino);
    EXPECT_TRUE(attr.ok() || GetFsErrorKind(attr.status()) == FsErrorKind::kNotFound)
        << attr.status();
    return attr.ok();
  }

  std::string url_;
  std::unique_ptr<NamespaceStore> a_, b_;
};

TEST_F(SharedNamespaceTest, ANameTheOtherHostChangedIsReadAsItNowIs) {
  if (url_.empty()) return;
  ASSERT_NE(a_, nullptr);
  ASSERT_NE(b_, nullptr);
  // A knows "f" as its file; B replaces it with a directory.
  InodeAttr file = WithData(*a_, "f");
  ASSERT_TRUE(a_->Lookup(kRootInode, "f").ok());
  ASSERT_TRUE(b_->Unlink(kRootInode, "f", [](InodeId) { return true; }).ok());
  InodeAttr dir = Make(*b_, "f", S_IFDIR | 0755);
  auto found = a_->Lookup(kRootInode, "f");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ino, dir.ino);
  EXPECT_TRUE(S_ISDIR(found->mode));
  EXPECT_FALSE(Exists(*a_, file.ino));

  // A knows "f" as that directory; B replaces it with a file with data:
  // A's unlink frees B's file, all of it, and nothing else.
  ASSERT_TRUE(b_->Rmdir(kRootInode, "f", [](InodeId) { return true; }).ok());
  InodeAttr other = WithData(*b_, "f");
  auto gone = a_->Unlink(kRootInode, "f", [](InodeId) { return true; });
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->ino, other.ino);
  EXPECT_FALSE(Exists(*b_, other.ino));
  EXPECT_FALSE(b_->GetXattr(other.ino, "user.k").ok());
  auto extents = b_->GetExtents(other.ino, 0, 100);
  EXPECT_TRUE(!extents.ok() || extents->empty());

  // A knows "src" and "dst"; B swaps what they name. A's rename moves
  // what "src" names now and replaces what "dst" names now.
  InodeAttr first = WithData(*a_, "src");
  InodeAttr second = WithData(*a_, "dst");
  ASSERT_TRUE(b_->Rename(kRootInode, "src", kRootInode, "dst", RenameMode::kExchange, {}).ok());
  auto replaced = a_->Rename(kRootInode, "src", kRootInode, "dst", RenameMode::kReplace,
                             [](InodeId) { return true; });
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, first.ino);
  EXPECT_FALSE(Exists(*a_, first.ino));
  auto now = b_->Lookup(kRootInode, "dst");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->ino, second.ino);
  EXPECT_EQ(KindOf(a_->Lookup(kRootInode, "src").status()), FsErrorKind::kNotFound);
  auto check = a_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
}

// GetAttrRecent answers for a directory from this host's own last commit
// of it only while nothing newer may exist: its own later commits show at
// once, another host's once the change feed tells of them (well before
// the age limit here), and without a watch every answer is read afresh.
TEST_F(SharedNamespaceTest, RecentDirectoryAttributesNeverHideANewerCommit) {
  if (url_.empty()) return;
  ASSERT_NE(a_, nullptr);
  ASSERT_NE(b_, nullptr);
  constexpr double kLongAge = 60;  // only the feed or a commit may refresh
  auto fresh = [&](NamespaceStore& ns, InodeId ino) {
    auto attr = ns.GetAttr(ino);
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.value_or(InodeAttr{});
  };
  auto same = [](const InodeAttr& x, const InodeAttr& y) {
    return x.ino == y.ino && x.nlink == y.nlink && x.size == y.size && x.mtime == y.mtime &&
           x.ctime == y.ctime && x.mode == y.mode;
  };
  InodeAttr dir = Make(*a_, "d", S_IFDIR | 0755);
  NewNode node;
  node.mode = S_IFDIR | 0755;

  // Without a watch: always read.
  ASSERT_TRUE(a_->MakeNode(dir.ino, "x", node, Caller{}).ok());
  ASSERT_TRUE(b_->MakeNode(dir.ino, "y", node, Caller{}).ok());
  auto seen = a_->GetAttrRecent(dir.ino, kLongAge);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_TRUE(same(*seen, fresh(*b_, dir.ino)));

  auto watch = a_->WatchChanges([](const std::vector<NamespaceChange>&) {});
  ASSERT_TRUE(watch.ok()) << watch.status();
  // This host's own commit shows at once.
  ASSERT_TRUE(a_->MakeNode(dir.ino, "z", node, Caller{}).ok());
  seen = a_->GetAttrRecent(dir.ino, kLongAge);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_TRUE(same(*seen, fresh(*b_, dir.ino)));
  EXPECT_EQ(seen->nlink, 5u);
  // Another host's, once the feed brings it.
  ASSERT_TRUE(b_->Rmdir(dir.ino, "z", {}).ok());
  const InodeAttr after_b = fresh(*b_, dir.ino);
  bool caught_up = false;
  for (int i = 0; i < 100 && !caught_up; ++i) {
    seen = a_->GetAttrRecent(dir.ino, kLongAge);
    ASSERT_TRUE(seen.ok()) << seen.status();
    caught_up = same(*seen, after_b);
    if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(caught_up) << "another host's rmdir not seen within 5 s";

  // Many threads of this host committing in one directory: the last
  // answer is the last commit, never an earlier one that finished later.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string name = "t" + std::to_string(t) + "_" + std::to_string(i);
        EXPECT_TRUE(a_->MakeNode(dir.ino, name, node, Caller{}).ok());
        EXPECT_TRUE(a_->GetAttrRecent(dir.ino, kLongAge).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  seen = a_->GetAttrRecent(dir.ino, kLongAge);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_TRUE(same(*seen, fresh(*b_, dir.ino)));
  EXPECT_EQ(seen->nlink, 2u + 2u + 100u);  // ".", "..", x and y, the threads'
}

// A host whose change feed is watched runs a transaction first on what it
// remembers (RecentValues) and has the server check it at commit. Here the
// feed never reaches A (no doorbell, no polling within the test), so what
// A remembers goes stale whenever B commits: every operation must still
// do what it would on the server's values, and the stale runs show.
class SpeculationTest : public SharedNamespaceTest {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase("speculation");
    if (url_.empty()) return;
    a_ = Host("a", /*format=*/true, /*deaf=*/true, &a_kv_);
    b_ = Host("b", /*format=*/false);
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    auto watch = a_->WatchChanges([](const std::vector<NamespaceChange>&) {});
    ASSERT_TRUE(watch.ok()) << watch.status();
    watch_ = std::move(*watch);
  }
  void TearDown() override { watch_.reset(); }

  PgKvStore::SpeculationCounts Counts() { return a_kv_->speculation_counts(); }
  // Drops `ns`'s open hold of `ino`, no local opens left: whether that
  // freed it.
  static bool DropHold(NamespaceStore& ns, InodeId ino) {
    auto freed = ns.DropOpenHold(ino, [](InodeId) { return true; });
    EXPECT_TRUE(freed.ok()) << freed.status();
    return freed.ok() && freed->has_value();
  }

  PgKvStore* a_kv_ = nullptr;
  std::unique_ptr<NamespaceWatch> watch_;
};

TEST_F(SpeculationTest, WhatTheOtherHostChangedIsCaughtAtCommitAndRunAgain) {
  if (url_.empty()) return;
  NewNode file;
  file.mode = S_IFREG | 0644;
  // A's own commit of the root is remembered: its next create is one
  // speculative run, and nothing in it is stale.
  Make(*a_, "x1", file.mode);
  PgKvStore::SpeculationCounts before = Counts();
  Make(*a_, "x2", file.mode);
  EXPECT_GT(Counts().runs, before.runs);
  EXPECT_EQ(Counts().stale, before.stale);

  // B's create changes the root (its next entry cookie): A's create on
  // the old root is caught, and the entries keep distinct cookies.
  Make(*b_, "y", file.mode);
  before = Counts();
  Make(*a_, "x3", file.mode);
  EXPECT_GT(Counts().stale, before.stale);
  std::vector<DirEntry> listed;
  ASSERT_TRUE(b_->ReadDir(kRootInode, 0, [&](const DirEntry& e) {
                  listed.push_back(e);
                  return true;
                }).ok());
  std::set<uint64_t> cookies;
  std::set<std::string> names;
  for (const DirEntry& e : listed) {
    cookies.insert(e.cookie);
    names.insert(e.name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"x1", "x2", "x3", "y"}));
  EXPECT_EQ(cookies.size(), listed.size());

  // A remembers "n" absent; B creates it: A's exclusive create fails.
  EXPECT_EQ(KindOf(a_->Lookup(kRootInode, "n").status()), FsErrorKind::kNotFound);
  Make(*b_, "n", file.mode);
  EXPECT_EQ(KindOf(a_->MakeNode(kRootInode, "n", file, Caller{}).status()),
            FsErrorKind::kExists);
  // A remembers "p" present; B unlinks it: A's create succeeds.
  Make(*a_, "p", file.mode);
  ASSERT_TRUE(b_->Unlink(kRootInode, "p", [](InodeId) { return true; }).ok());
  auto again = a_->MakeNode(kRootInode, "p", file, Caller{});
  EXPECT_TRUE(again.ok()) << again.status();

  // A remembers a new file's open holds as none; B holds it open: A's
  // unlink must leave it for B, not free it.
  InodeAttr f = Make(*a_, "f", file.mode);
  ASSERT_TRUE(b_->HoldOpen(f.ino).ok());
  before = Counts();
  auto unlinked = a_->Unlink(kRootInode, "f", [](InodeId) { return true; });
  ASSERT_TRUE(unlinked.ok()) << unlinked.status();
  EXPECT_GT(Counts().stale, before.stale);
  EXPECT_TRUE(Exists(*b_, f.ino)) << "freed while another host holds it open";
  EXPECT_TRUE(DropHold(*b_, f.ino));
  EXPECT_FALSE(Exists(*b_, f.ino));

  // A remembers the holds of a file it holds open itself: checked as just
  // that hold at commit, and caught once B holds it too.
  InodeAttr g = Make(*a_, "g", file.mode);
  ASSERT_TRUE(a_->HoldOpen(g.ino).ok());
  ASSERT_TRUE(b_->HoldOpen(g.ino).ok());
  before = Counts();
  ASSERT_TRUE(a_->Unlink(kRootInode, "g", [](InodeId) { return true; }).ok());
  EXPECT_GT(Counts().stale, before.stale);
  EXPECT_TRUE(Exists(*b_, g.ino)) << "freed while another host holds it open";
  EXPECT_FALSE(DropHold(*a_, g.ino)) << "B still holds it";
  EXPECT_TRUE(DropHold(*b_, g.ino));
  EXPECT_FALSE(Exists(*b_, g.ino));
  // Nothing changed behind A's back: the same check passes, one run.
  InodeAttr h = Make(*a_, "h", file.mode);
  ASSERT_TRUE(a_->HoldOpen(h.ino).ok());
  before = Counts();
  ASSERT_TRUE(a_->Unlink(kRootInode, "h", [](InodeId) { return false; }).ok());
  EXPECT_GT(Counts().runs, before.runs);
  EXPECT_EQ(Counts().stale, before.stale);
  EXPECT_TRUE(Exists(*b_, h.ino)) << "still open on A";
  EXPECT_TRUE(DropHold(*a_, h.ino));
  EXPECT_FALSE(Exists(*b_, h.ino));

  auto check = b_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
}

// Two hosts over one RocksDB store (tests/support/test_kv_store.h), where
// a test delivers the change feed itself and can hold a finished commit
// before it returns, as a slow thread would be held.
class RecentDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RocksKvOptions engine;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    std::shared_ptr<KvStore> shared(std::move(*kv));
    sessions_.Set({7, 8});
    a_ = Host(shared, 7, &a_kv_);
    b_ = Host(shared, 8, nullptr);
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    auto watch = a_->WatchChanges([](const std::vector<NamespaceChange>&) {});
    ASSERT_TRUE(watch.ok()) << watch.status();
    watch_ = std::move(*watch);
    NewNode node;
    node.mode = S_IFDIR | 0755;
    auto dir = a_->MakeNode(kRootInode, "d", node, Caller{});
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ino_ = dir->ino;
  }

  std::unique_ptr<NamespaceStore> Host(std::shared_ptr<KvStore> store, uint64_t session,
                                       TestKvStore** kv) {
    TestKvStore::Options options;
    options.session = session;
    options.sessions = &sessions_;
    auto test_kv = std::make_unique<TestKvStore>(std::move(store), options);
    if (kv != nullptr) *kv = test_kv.get();
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    auto ns = OpenKvNamespace(std::move(test_kv), ns_options);
    EXPECT_TRUE(ns.ok()) << ns.status();
    return ns.ok() ? *std::move(ns) : nullptr;
  }
  void MakeDir(NamespaceStore& ns, const std::string& name) {
    NewNode node;
    node.mode = S_IFDIR | 0755;
    EXPECT_TRUE(ns.MakeNode(dir_ino_, name, node, Caller{}).ok());
  }
  uint32_t RecentLinks() {
    auto attr = a_->GetAttrRecent(dir_ino_, 60);
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.ok() ? attr->nlink : 0;
  }
  uint32_t StoredLinks() {
    auto attr = b_->GetAttr(dir_ino_);
    EXPECT_TRUE(attr.ok()) << attr.status();
    return attr.ok() ? attr->nlink : 0;
  }

  TempDir dir_;
  FakeSessions sessions_;
  TestKvStore* a_kv_ = nullptr;
  std::unique_ptr<NamespaceStore> a_, b_;
  std::unique_ptr<NamespaceWatch> watch_;  // before a_
  InodeId dir_ino_ = 0;
};

// A commit held after it finished, while a later one of the same host
// commits and returns: the held one must not leave its older attributes
// as the answer.
TEST_F(RecentDirectoryTest, ACommitHeldPastALaterOneIsNotTheAnswer) {
  a_kv_->AfterNextRun([&] { MakeDir(*a_, "later"); });
  MakeDir(*a_, "held");
  EXPECT_EQ(StoredLinks(), 4u);
  EXPECT_EQ(RecentLinks(), 4u);
}

// Another host's commit is not seen in what this host noted until the
// feed tells of it; then it is.
TEST_F(RecentDirectoryTest, TheFeedForgetsWhatAnotherHostChanged) {
  MakeDir(*a_, "mine");
  EXPECT_EQ(RecentLinks(), 3u);
  MakeDir(*b_, "theirs");
  EXPECT_EQ(StoredLinks(), 4u);
  EXPECT_EQ(RecentLinks(), 3u) << "noted from this host's own commit";
  a_kv_->Deliver(8, {{KvSpace::kInodes, InodeKey(dir_ino_)}});
  EXPECT_EQ(RecentLinks(), 4u);
}

}  // namespace
}  // namespace cairn

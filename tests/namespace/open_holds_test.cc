// Open-but-unlinked files on a namespace several hosts share
// (NamespaceStore::HoldOpen and friends): two namespaces over one RocksDB
// store, each reporting its own session (tests/support/test_kv_store.h),
// act as two hosts of one volume, with the live sessions as each test
// sets them.
#include <sys/stat.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/namespace_store.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

constexpr uint64_t kSessionA = 11;
constexpr uint64_t kSessionB = 22;
constexpr uint64_t kSessionC = 33;

class OpenHoldsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RocksKvOptions engine;
    engine.clock = &clock_;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    store_ = std::shared_ptr<KvStore>(std::move(*kv));
    sessions_.Set({kSessionA, kSessionB, kSessionC});
    a_ = Host(kSessionA);
    b_ = Host(kSessionB);
  }
  // A host of the volume: its namespace over the shared store, with every
  // body run twice, as a shared engine may run it.
  std::unique_ptr<NamespaceStore> Host(uint64_t session) {
    TestKvStore::Options options;
    options.session = session;
    options.sessions = &sessions_;
    options.run_twice = true;
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_options.clock = &clock_;
    auto ns = OpenKvNamespace(std::make_unique<TestKvStore>(store_, options), ns_options);
    EXPECT_TRUE(ns.ok()) << ns.status();
    return ns.ok() ? std::move(*ns) : nullptr;
  }
  // A file holding `data` inline.
  InodeId MakeFile(NamespaceStore& ns, const std::string& name, const std::string& data = "data",
                   bool hold_open = false) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    node.hold_open = hold_open;
    auto attr = ns.MakeNode(kRootInode, name, node, Caller{1000, 100});
    EXPECT_TRUE(attr.ok()) << attr.status();
    if (!attr.ok()) return 0;
    Extent e;
    e.length = data.size();
    e.inline_data = data;
    EXPECT_TRUE(ns.CommitWrite(attr->ino, {}, {e}).ok());
    return attr->ino;
  }
  bool Exists(NamespaceStore& ns, InodeId ino) {
    auto attr = ns.GetAttr(ino);
    EXPECT_TRUE(attr.ok() || GetFsErrorKind(attr.status()) == FsErrorKind::kNotFound)
        << attr.status();
    return attr.ok();
  }
  std::string Data(NamespaceStore& ns, InodeId ino) {
    auto extents = ns.GetExtents(ino, 0, 1 << 20);
    EXPECT_TRUE(extents.ok()) << extents.status();
    std::string out;
    if (extents.ok()) {
      for (const Extent& e : *extents) out += e.inline_data;
    }
    return out;
  }
  // The open holds recorded, as (inode, session).
  std::set<std::pair<InodeId, uint64_t>> Holds() {
    std::set<std::pair<InodeId, uint64_t>> holds;
    EXPECT_TRUE(store_->Reader()
                    .Scan(KvSpace::kMeta, "oh:", KvPrefixEnd("oh:"),
                          [&](std::string_view key, std::string_view) {
                            EXPECT_EQ(key.size(), 3u + 16u);
                            holds.emplace(KeyNumber(key, 3), KeyNumber(key, 11));
                            return true;
                          })
                    .ok());
    return holds;
  }
  static uint64_t KeyNumber(std::string_view key, size_t at) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(key[at + i]);
    return v;
  }
  // A release check that says yes and counts the questions.
  NamespaceStore::ReleaseCheck Yes(int* asked) {
    return [asked](InodeId) {
      ++*asked;
      return true;
    };
  }
  void ExpectClean(NamespaceStore& ns) {
    auto report = ns.Check();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->problems.empty()) << report->problems.front();
  }

  TempDir dir_;
  FakeClock clock_;
  FakeSessions sessions_;
  std::shared_ptr<KvStore> store_;
  std::unique_ptr<NamespaceStore> a_, b_;
};

TEST_F(OpenHoldsTest, TheEngineRunsEveryBodyTwice) {
  TestKvStore::Options options;
  options.run_twice = true;
  TestKvStore twice(store_, options);
  int runs = 0;
  ASSERT_TRUE(twice
                  .Run([&](KvTxn& txn) {
                    ++runs;
                    txn.Put(KvSpace::kMeta, "x", std::to_string(runs));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(runs, 2);
  // The first run's write was thrown away: the second run's stands.
  EXPECT_EQ(store_->Reader().Get(KvSpace::kMeta, "x")->value_or(""), "2");
}

TEST_F(OpenHoldsTest, AnUnlinkKeepsAFileAnotherHostHoldsUntilItsLastClose) {
  ASSERT_TRUE(a_->RecordsOpenHolds());
  InodeId f = MakeFile(*a_, "f", "hello");
  ASSERT_TRUE(b_->HoldOpen(f).ok());
  EXPECT_EQ(Holds(), (std::set<std::pair<InodeId, uint64_t>>{{f, kSessionB}}));
  int asked = 0;
  auto gone = a_->Unlink(kRootInode, "f", Yes(&asked));
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->nlink, 0u);
  // A's check is not asked: B's hold decides.
  EXPECT_EQ(asked, 0);
  EXPECT_TRUE(Exists(*a_, f));
  // A's kernel forgetting it frees nothing either.
  ASSERT_TRUE(a_->ReleaseInode(f).ok());
  EXPECT_EQ(Data(*b_, f), "hello");
  ExpectClean(*a_);
  // B's last close frees it, in the hold's removal.
  auto freed = b_->DropOpenHold(f, Yes(&asked));
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_TRUE(freed->has_value());
  EXPECT_FALSE(Exists(*a_, f));
  EXPECT_TRUE(Holds().empty());
  ExpectClean(*a_);
}

TEST_F(OpenHoldsTest, AFileNoHostHoldsIsFreedByTheUnlink) {
  InodeId f = MakeFile(*a_, "f");
  int asked = 0;
  ASSERT_TRUE(a_->Unlink(kRootInode, "f", Yes(&asked)).ok());
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(Exists(*b_, f));
  // An open on B that raced with the unlink finds it gone.
  EXPECT_EQ(GetFsErrorKind(b_->HoldOpen(f)), FsErrorKind::kNotFound);
  EXPECT_TRUE(Holds().empty());
}

TEST_F(OpenHoldsTest, ThisHostsOwnHoldLeavesTheChoiceToItsReleaseCheck) {
  InodeId f = MakeFile(*a_, "f", "x", /*hold_open=*/true);
  EXPECT_EQ(Holds(), (std::set<std::pair<InodeId, uint64_t>>{{f, kSessionA}}));
  // A's kernel has it open: its check says no, and it stays an orphan.
  ASSERT_TRUE(a_->Unlink(kRootInode, "f", [](InodeId) { return false; }).ok());
  EXPECT_TRUE(Exists(*b_, f));
  // A's last close: the check now says yes.
  int asked = 0;
  auto freed = a_->DropOpenHold(f, Yes(&asked));
  ASSERT_TRUE(freed.ok());
  EXPECT_TRUE(freed->has_value());
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(Exists(*b_, f));
}

TEST_F(OpenHoldsTest, AnOrphanStaysUntilTheLastOfSeveralHostsCloses) {
  InodeId f = MakeFile(*a_, "f", "x", /*hold_open=*/true);
  ASSERT_TRUE(b_->HoldOpen(f).ok());
  ASSERT_TRUE(a_->Unlink(kRootInode, "f", [](InodeId) { return false; }).ok());
  int asked = 0;
  auto freed = a_->DropOpenHold(f, Yes(&asked));
  ASSERT_TRUE(freed.ok());
  EXPECT_FALSE(freed->has_value());
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(Data(*b_, f), "x");
  freed = b_->DropOpenHold(f, Yes(&asked));
  ASSERT_TRUE(freed.ok());
  EXPECT_TRUE(freed->has_value());
  EXPECT_FALSE(Exists(*a_, f));
}

TEST_F(OpenHoldsTest, RenameAndPublishOverAHeldFileKeepIt) {
  InodeId old_file = MakeFile(*a_, "target", "old");
  MakeFile(*a_, "new", "new");
  ASSERT_TRUE(b_->HoldOpen(old_file).ok());
  int asked = 0;
  auto replaced = a_->Rename(kRootInode, "new", kRootInode, "target", RenameMode::kReplace,
                             Yes(&asked));
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ((*replaced)->ino, old_file);
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(Data(*b_, old_file), "old");

  // Publish over the file now named "target", which B holds too.
  auto current = a_->Lookup(kRootInode, "target");
  ASSERT_TRUE(current.ok());
  ASSERT_TRUE(b_->HoldOpen(current->ino).ok());
  NewNode node;
  node.mode = S_IFREG | 0644;
  auto nameless = a_->MakeOrphan(kRootInode, node, Caller{});
  ASSERT_TRUE(nameless.ok());
  auto published = a_->Publish(nameless->ino, kRootInode, "target", PublishCondition{},
                               Yes(&asked));
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(Data(*b_, current->ino), "new");
  ASSERT_TRUE(b_->DropOpenHold(old_file, Yes(&asked)).ok());
  ASSERT_TRUE(b_->DropOpenHold(current->ino, Yes(&asked)).ok());
  EXPECT_FALSE(Exists(*a_, old_file));
  EXPECT_FALSE(Exists(*a_, current->ino));
  ExpectClean(*a_);
}

TEST_F(OpenHoldsTest, MountFreesOnlyOrphansNoLiveSessionHolds) {
  InodeId by_b = MakeFile(*a_, "b");
  InodeId by_c = MakeFile(*a_, "c");
  InodeId by_none = MakeFile(*a_, "none");
  ASSERT_TRUE(b_->HoldOpen(by_b).ok());
  std::unique_ptr<NamespaceStore> c = Host(kSessionC);
  ASSERT_TRUE(c->HoldOpen(by_c).ok());
  // A has each open too, so each becomes an orphan; then A dies.
  for (const char* name : {"b", "c", "none"}) {
    ASSERT_TRUE(a_->Unlink(kRootInode, name, [](InodeId) { return false; }).ok());
  }
  // C dies as well; B lives on. A mounts again, with a new session.
  c.reset();
  sessions_.Set({kSessionB, 44});
  a_ = Host(44);
  auto released = a_->ReleaseAllOrphans();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 2u);
  EXPECT_TRUE(Exists(*a_, by_b));
  EXPECT_FALSE(Exists(*a_, by_c));
  EXPECT_FALSE(Exists(*a_, by_none));
  EXPECT_EQ(Holds(), (std::set<std::pair<InodeId, uint64_t>>{{by_b, kSessionB}}));
  ExpectClean(*a_);
}

TEST_F(OpenHoldsTest, TheLeadersPeriodicReleaseFreesWhatDeadHostsHeld) {
  InodeId f = MakeFile(*a_, "f", "x");
  InodeId linked = MakeFile(*a_, "linked", "y");
  InodeId used_here = MakeFile(*a_, "here", "z");
  ASSERT_TRUE(b_->HoldOpen(f).ok());
  ASSERT_TRUE(b_->HoldOpen(linked).ok());
  ASSERT_TRUE(a_->Unlink(kRootInode, "f", [](InodeId) { return true; }).ok());
  ASSERT_TRUE(a_->Unlink(kRootInode, "here", [](InodeId) { return false; }).ok());
  // While B lives, nothing it holds goes.
  auto released = a_->ReleaseUnheldOrphans([&](InodeId ino) { return ino != used_here; });
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 0u);
  EXPECT_TRUE(Exists(*a_, f));
  // B dies (its session expires); A stays up and leads.
  sessions_.Set({kSessionA});
  released = a_->ReleaseUnheldOrphans([&](InodeId ino) { return ino != used_here; });
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1u);
  EXPECT_FALSE(Exists(*a_, f));
  // A's own kernel still uses `used_here`: its check keeps it.
  EXPECT_TRUE(Exists(*a_, used_here));
  // The dead session's hold on a linked file is gone too; the file stays.
  EXPECT_TRUE(Holds().empty());
  EXPECT_TRUE(Exists(*a_, linked));
  ExpectClean(*a_);
}

TEST_F(OpenHoldsTest, ASingleHostNamespaceRecordsNoHolds) {
  TestKvStore::Options options;  // session 0: one host
  options.run_twice = true;
  NamespaceOptions ns_options;
  ns_options.clock = &clock_;
  auto single = OpenKvNamespace(std::make_unique<TestKvStore>(store_, options), ns_options);
  ASSERT_TRUE(single.ok()) << single.status();
  NamespaceStore& ns = **single;
  EXPECT_FALSE(ns.RecordsOpenHolds());
  InodeId f = MakeFile(ns, "f", "x", /*hold_open=*/true);
  ASSERT_TRUE(ns.HoldOpen(f).ok());
  EXPECT_TRUE(Holds().empty());
  // The release check alone decides, as always.
  ASSERT_TRUE(ns.Unlink(kRootInode, "f", [](InodeId) { return false; }).ok());
  EXPECT_TRUE(Exists(ns, f));
  auto dropped = ns.DropOpenHold(f, [](InodeId) { return true; });
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->has_value());
  auto periodic = ns.ReleaseUnheldOrphans();
  ASSERT_TRUE(periodic.ok());
  EXPECT_EQ(*periodic, 0u);
  EXPECT_TRUE(Exists(ns, f));
  // At mount every orphan goes.
  auto released = ns.ReleaseAllOrphans();
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, 1u);
  EXPECT_FALSE(Exists(ns, f));
}

TEST_F(OpenHoldsTest, FsckReportsAHoldOfAMissingInode) {
  ASSERT_TRUE(store_
                  ->Run([](KvTxn& txn) {
                    std::string key = "oh:";
                    for (int i = 0; i < 7; ++i) key.push_back('\0');
                    key.push_back('\x63');  // inode 99
                    for (int i = 0; i < 7; ++i) key.push_back('\0');
                    key.push_back('\x16');  // session 22
                    txn.Put(KvSpace::kMeta, key, "");
                    return absl::OkStatus();
                  })
                  .ok());
  auto report = a_->Check();
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("inode 99"), std::string::npos) << report->problems[0];
}

}  // namespace
}  // namespace cairn

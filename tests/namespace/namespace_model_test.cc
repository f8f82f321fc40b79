// Drives the real namespace and an in-memory model of POSIX semantics
// (tests/support/namespace_model.h) with the same long random sequence of
// operations and compares every result and error kind, then periodically the
// whole state (attributes with times, listings, xattrs, file bytes, blob
// reference counts and GC), also after reopening the database.
//
// It runs over each engine of the namespace: RocksDB, and PostgreSQL (the
// engine of shared volumes) on the test binary's private server.
//
// A failure names the seed, the step and the last operations; the sequence
// depends only on the seed, so rerunning the same test replays it.
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/namespace_store.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/namespace_model.h"
#include "tests/support/pg_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

constexpr int kSteps = 5000;
constexpr int kCheckEvery = 500;
constexpr int64_t kGraceSeconds = 30;

std::string Describe(const Outcome& outcome) {
  return outcome ? absl::StrCat("error kind ", static_cast<int>(*outcome)) : "ok";
}

// The byte at `offset` of blob `id`: blobs are never read here, only their
// layout matters, so any fixed function of both will do.
char BlobByte(BlobId id, uint64_t offset) {
  return static_cast<char>('A' + (id * 7 + offset) % 26);
}

// The engine under the namespace. The model is the same for each.
enum class Engine {
  // RocksDB as a single host opens it.
  kRocksDb,
  // RocksDB as one host of a shared volume (a session, so every removal
  // reads the open holds) with every transaction body run twice.
  kRocksDbSharedRunTwice,
  // PostgreSQL as a mounted host of a shared volume opens it: with a
  // session of its own (a new one at each reopen), SERIALIZABLE
  // transactions, the change feed written in each commit. A database of
  // its own per test.
  kPostgreSql,
};

struct ModelParam {
  uint32_t seed = 0;
  Engine engine = Engine::kRocksDb;
};

class NamespaceModelTest : public ::testing::TestWithParam<ModelParam> {
 protected:
  NamespaceModelTest() : rng_(GetParam().seed), model_(clock_.NowTimespec()) {}

  void Open() {
    store_.reset();
    NamespaceOptions options;
    options.create_if_missing = true;
    options.clock = &clock_;
    options.gc_grace_seconds = kGraceSeconds;
    if (GetParam().engine == Engine::kPostgreSql) {
      OpenPostgreSql(options);
      return;
    }
    if (GetParam().engine == Engine::kRocksDb) {
      auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
      return;
    }
    RocksKvOptions engine;
    engine.clock = &clock_;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    TestKvStore::Options shared;
    shared.run_twice = true;
    shared.session = 7;
    shared.sessions = &sessions_;
    sessions_.Set({7});
    auto store = OpenKvNamespace(
        std::make_unique<TestKvStore>(std::shared_ptr<KvStore>(std::move(*kv)), shared), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Formats the test's database at the first open, opens it after.
  void OpenPostgreSql(const NamespaceOptions& options) {
    PgKvOptions pg;
    PgSessionOptions session;
    session.host = "model";
    session.pid = getpid();
    session.mountpoint = "/mnt/model";
    // Long enough that a loaded machine never fences the session
    // mid-test: fencing has tests of its own (pg_session_test.cc).
    session.expiry_s = 600;
    pg.session = session;
    absl::StatusOr<std::unique_ptr<PgKvStore>> kv;
    if (pg_url_.empty()) {
      pg_url_ = FreshPgDatabase("model");
      if (pg_url_.empty()) return;
      pg.url = pg_url_;
      kv = PgKvStore::Format(pg);
    } else {
      pg.url = pg_url_;
      kv = PgKvStore::Open(pg);
    }
    ASSERT_TRUE(kv.ok()) << kv.status();
    auto store = OpenKvNamespace(std::move(*kv), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  Timespec Tick() {
    Timespec now = clock_.NowTimespec();
    clock_.Set({now.sec + 1, static_cast<uint32_t>(rng_() % 1000000000)});
    return clock_.NowTimespec();
  }
  bool OneIn(uint32_t n) { return rng_() % n == 0; }
  template <typename T>
  T Pick(const std::vector<T>& v) { return v[rng_() % v.size()]; }

  Outcome Actual(const absl::Status& status) {
    if (status.ok()) return std::nullopt;
    std::optional<FsErrorKind> kind = GetFsErrorKind(status);
    EXPECT_TRUE(kind.has_value()) << "error without a kind: " << status;
    return kind.value_or(FsErrorKind::kIo);
  }

  std::vector<InodeId> Inodes(bool (*keep)(const ModelInode&)) const {
    std::vector<InodeId> out;
    for (const auto& [ino, node] : model_.inodes) {
      if (keep(node)) out.push_back(ino);
    }
    return out;
  }
  static bool LiveDir(const ModelInode& n) { return S_ISDIR(n.attr.mode) && n.attr.nlink > 0; }
  static bool RegularFile(const ModelInode& n) { return S_ISREG(n.attr.mode); }
  static bool Linked(const ModelInode& n) { return n.attr.nlink > 0; }
  static bool Any(const ModelInode&) { return true; }

  // Mostly a live directory; sometimes something that is not one.
  InodeId PickParent() {
    uint32_t roll = rng_() % 100;
    if (roll < 4) return 900000 + rng_() % 4;  // never existed
    if (roll < 8) return Pick(Inodes(Any));    // a file, an orphan, ...
    return Pick(Inodes(LiveDir));
  }
  InodeId PickInode() {
    return OneIn(25) ? 900000 + rng_() % 4 : Pick(Inodes(Any));
  }
  // A regular file if there is one (orphans included: they may be open).
  InodeId PickFile() {
    std::vector<InodeId> files = Inodes(RegularFile);
    if (files.empty() || OneIn(30)) return PickInode();
    return Pick(files);
  }
  std::string PickName() {
    static const char* const kNames[] = {"a", "b", "c", "d", "e", "f", "g"};
    if (!OneIn(40)) return kNames[rng_() % 7];
    static const std::string kOdd[] = {"", ".", "..", "x/y", std::string(256, 'n'),
                                       std::string(255, 'n'), std::string("\xff\x01", 2)};
    return kOdd[rng_() % 7];
  }

  // An existing entry (parent, name) most of the time, so that removals
  // and renames reach their deeper rules; otherwise any parent and name.
  struct Entry {
    InodeId parent;
    std::string name;
  };
  Entry PickEntry(bool prefer_dirs) {
    if (OneIn(4)) return {PickParent(), PickName()};
    std::vector<Entry> all, dirs;
    for (const auto& [ino, node] : model_.inodes) {
      for (const auto& [name, child] : node.children) {
        all.push_back({ino, name});
        if (model_.IsDir(child)) dirs.push_back({ino, name});
      }
    }
    if (prefer_dirs && !dirs.empty() && OneIn(2)) return Pick(dirs);
    if (all.empty()) return {PickParent(), PickName()};
    return Pick(all);
  }

  // After an entry went away: an orphan is released now or left open.
  void MaybeRelease(InodeId ino) {
    if (!model_.Exists(ino) || model_.inodes.at(ino).attr.nlink != 0) return;
    if (OneIn(3)) return;  // still open somewhere
    ASSERT_TRUE(store_->ReleaseInode(ino).ok());
    model_.Release(ino);
    gone_.insert(ino);
  }

  void ExpectAttr(const absl::StatusOr<InodeAttr>& got, InodeId ino) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, model_.inodes.at(ino).attr) << "attributes of " << ino;
  }

  void Step();
  void CompareAll(const std::string& when);
  void CheckBlobsAndCollect(const std::map<BlobId, uint64_t>& refs);

  FakeClock clock_;
  std::mt19937 rng_;
  TempDir dir_;
  FakeSessions sessions_;
  std::string pg_url_;  // kPostgreSql: the test's database
  std::unique_ptr<NamespaceStore> store_;
  NamespaceModel model_;
  std::set<BlobId> blobs_;      // registered and not yet forgotten
  std::set<InodeId> gone_;      // released inodes
  std::deque<std::string> history_;
  std::string what_;            // the current operation, for messages
  Outcome expected_, actual_;
};

void NamespaceModelTest::Step() {
  Timespec now = Tick();
  expected_ = actual_ = std::nullopt;
  uint32_t roll = rng_() % 100;
  if (roll < 12) {  // create, mkdir, symlink, fifo, device
    InodeId parent = PickParent();
    std::string name = PickName();
    static const uint32_t kTypes[] = {S_IFREG, S_IFREG, S_IFREG, S_IFDIR, S_IFDIR,
                                      S_IFLNK, S_IFIFO, S_IFCHR};
    static const uint32_t kPerms[] = {0644, 0600, 0755, 0700, 02755, 0777};
    static const Caller kCallers[] = {{0, 0}, {1000, 1000}, {1000, 50}};
    NewNode node;
    node.mode = kTypes[rng_() % 8] | kPerms[rng_() % 6];
    if (S_ISLNK(node.mode)) node.symlink_target = std::string(1 + rng_() % 40, 't');
    if (S_ISCHR(node.mode)) node.rdev = rng_();
    Caller caller = kCallers[rng_() % 3];
    what_ = absl::StrCat("mknod ", parent, "/", name, " mode ", node.mode);
    expected_ = model_.CheckMakeNode(parent, name);
    absl::StatusOr<InodeAttr> made = store_->MakeNode(parent, name, node, caller);
    actual_ = Actual(made.status());
    if (made.ok() && !expected_) {
      model_.MakeNode(parent, name, made->ino, node, caller, now);
      ExpectAttr(made, made->ino);
      ExpectAttr(store_->GetAttr(parent), parent);
    }
  } else if (roll < 18) {
    std::vector<InodeId> linked = Inodes(Linked);
    InodeId target = Pick(linked);
    InodeId parent = PickParent();
    std::string name = PickName();
    what_ = absl::StrCat("link ", target, " as ", parent, "/", name);
    expected_ = model_.Link(target, parent, name, now);
    absl::StatusOr<InodeAttr> linked_attr = store_->Link(target, parent, name);
    actual_ = Actual(linked_attr.status());
    if (linked_attr.ok() && !expected_) ExpectAttr(linked_attr, target);
  } else if (roll < 32) {
    bool dir = OneIn(2);
    auto [parent, name] = PickEntry(dir);
    what_ = absl::StrCat(dir ? "rmdir " : "unlink ", parent, "/", name);
    InodeId removed = 0;
    expected_ = model_.Remove(parent, name, dir, now, &removed);
    absl::StatusOr<InodeAttr> result = dir ? store_->Rmdir(parent, name) : store_->Unlink(parent, name);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) {
      ExpectAttr(result, removed);
      MaybeRelease(removed);
    }
  } else if (roll < 50) {
    auto [old_parent, old_name] = PickEntry(OneIn(2));
    auto [new_parent, new_name] = OneIn(2) ? PickEntry(OneIn(2)) : Entry{PickParent(), PickName()};
    if (OneIn(4)) new_parent = old_parent;
    RenameMode mode = static_cast<RenameMode>(rng_() % 3);
    what_ = absl::StrCat("rename ", old_parent, "/", old_name, " -> ", new_parent, "/",
                         new_name, " mode ", static_cast<int>(mode));
    std::optional<InodeId> replaced;
    expected_ = model_.Rename(old_parent, old_name, new_parent, new_name, mode, now, &replaced);
    absl::StatusOr<std::optional<InodeAttr>> result =
        store_->Rename(old_parent, old_name, new_parent, new_name, mode);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) {
      // The store may report a replaced inode that keeps other names; it
      // must report one that lost its last.
      if (replaced && model_.inodes.at(*replaced).attr.nlink == 0) {
        EXPECT_TRUE(result->has_value()) << what_;
      }
      if (result->has_value()) {
        ASSERT_TRUE(replaced.has_value()) << what_;
        EXPECT_EQ(**result, model_.inodes.at(*replaced).attr) << what_;
      }
      if (replaced) MaybeRelease(*replaced);
    }
  } else if (roll < 55) {
    InodeId parent = PickParent();
    std::string name = PickName();
    what_ = absl::StrCat("lookup ", parent, "/", name);
    InodeId found = 0;
    expected_ = model_.Lookup(parent, name, &found);
    absl::StatusOr<InodeAttr> result = store_->Lookup(parent, name);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) ExpectAttr(result, found);
  } else if (roll < 65) {
    InodeId ino = OneIn(5) ? PickInode() : PickFile();
    SetAttrRequest request;
    if (OneIn(3)) request.mode = rng_() & 07777;
    if (OneIn(6)) request.uid = rng_() % 3;
    if (OneIn(6)) request.gid = rng_() % 3;
    bool sizable = !model_.Exists(ino) || S_ISREG(model_.inodes.at(ino).attr.mode) ||
                   S_ISDIR(model_.inodes.at(ino).attr.mode);
    if (sizable && OneIn(2)) {
      request.size = OneIn(20) ? kMaxFileBytes + 1 : rng_() % 70000;
    }
    if (OneIn(6)) request.atime = Timespec{static_cast<int64_t>(rng_() % 100000), 1};
    if (OneIn(6)) request.mtime = Timespec{static_cast<int64_t>(rng_() % 100000), 2};
    if (OneIn(20)) request.ctime = Timespec{static_cast<int64_t>(rng_() % 100000), 3};
    what_ = absl::StrCat("setattr ", ino, request.size ? " size " : "",
                         request.size ? std::to_string(*request.size) : "");
    expected_ = model_.SetAttr(ino, request, now);
    absl::StatusOr<InodeAttr> result = store_->SetAttr(ino, request);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) ExpectAttr(result, ino);
  } else if (roll < 77) {
    InodeId ino = PickFile();
    std::vector<NewBlob> new_blobs;
    std::vector<Extent> writes;
    std::vector<std::pair<uint64_t, std::string>> model_writes;
    int count = 1 + rng_() % 3;
    for (int i = 0; i < count; ++i) {
      Extent e;
      e.file_offset = rng_() % 65536;
      e.length = 1 + rng_() % 4096;
      std::string bytes(e.length, '\0');
      if (OneIn(2)) {
        for (char& c : bytes) c = static_cast<char>('a' + rng_() % 26);
        e.inline_data = bytes;
      } else {
        absl::StatusOr<BlobId> id = store_->AllocateBlobIds(1);
        ASSERT_TRUE(id.ok());
        e.blob_id = *id;
        e.blob_offset = rng_() % 1000;
        new_blobs.push_back(NewBlob{*id, e.blob_offset + e.length + rng_() % 100, 0});
        for (uint64_t j = 0; j < e.length; ++j) bytes[j] = BlobByte(*id, e.blob_offset + j);
      }
      writes.push_back(e);
      model_writes.emplace_back(e.file_offset, bytes);
    }
    if (OneIn(10)) {  // stored, then superseded before commit: never referenced
      absl::StatusOr<BlobId> id = store_->AllocateBlobIds(1);
      ASSERT_TRUE(id.ok());
      new_blobs.push_back(NewBlob{*id, 10, 0});
    }
    what_ = absl::StrCat("write ", ino, " x", count);
    expected_ = model_.CommitWrite(ino, model_writes);
    absl::StatusOr<InodeAttr> result = store_->CommitWrite(ino, new_blobs, writes);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) {
      ExpectAttr(result, ino);
      for (const NewBlob& blob : new_blobs) blobs_.insert(blob.id);
    }
  } else if (roll < 81) {
    InodeId ino = PickFile();
    uint64_t offset = rng_() % 70000, length = rng_() % 20000;
    what_ = absl::StrCat("punch ", ino, " ", offset, "+", length);
    expected_ = model_.PunchHole(ino, offset, length, now);
    absl::StatusOr<InodeAttr> result = store_->PunchHole(ino, offset, length);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) ExpectAttr(result, ino);
  } else if (roll < 84) {
    InodeId ino = PickFile();
    uint64_t offset = rng_() % 70000, length = rng_() % 10000;
    what_ = "allocate on a non-file: skipped";  // fallocate(2) refuses those itself
    if (model_.Exists(ino) && !S_ISREG(model_.inodes.at(ino).attr.mode)) return;
    what_ = absl::StrCat("allocate ", ino, " ", offset, "+", length);
    expected_ = model_.Allocate(ino, offset, length, now);
    absl::StatusOr<InodeAttr> result = store_->Allocate(ino, offset, length);
    actual_ = Actual(result.status());
    if (result.ok() && !expected_) ExpectAttr(result, ino);
  } else if (roll < 92) {
    InodeId ino = PickInode();
    std::string name = OneIn(50) ? "" : absl::StrCat("user.", PickName());
    if (OneIn(100)) name = "user." + std::string(251, 'x');  // 256 bytes: too long
    std::string value(OneIn(100) ? 65537 : rng_() % 100, 'v');
    XattrMode mode = static_cast<XattrMode>(rng_() % 3);
    what_ = absl::StrCat("setxattr ", ino, " ", name.substr(0, 20), " mode ",
                         static_cast<int>(mode));
    expected_ = model_.SetXattr(ino, name, value, mode, now);
    actual_ = Actual(store_->SetXattr(ino, name, value, mode));
  } else if (roll < 96) {
    std::vector<InodeId> with_xattrs = Inodes(
        [](const ModelInode& n) { return !n.xattrs.empty(); });
    InodeId ino = with_xattrs.empty() || OneIn(4) ? PickInode() : Pick(with_xattrs);
    std::string name = absl::StrCat("user.", PickName());
    if (model_.Exists(ino) && !model_.inodes.at(ino).xattrs.empty() && OneIn(2)) {
      name = model_.inodes.at(ino).xattrs.begin()->first;
    }
    what_ = absl::StrCat("removexattr ", ino, " ", name.substr(0, 20));
    expected_ = model_.RemoveXattr(ino, name, now);
    actual_ = Actual(store_->RemoveXattr(ino, name));
  } else {
    // The last user of an inode goes away; a linked inode stays.
    InodeId ino = PickInode();
    what_ = absl::StrCat("release ", ino);
    ASSERT_TRUE(store_->ReleaseInode(ino).ok());
    if (model_.Exists(ino) && model_.inodes.at(ino).attr.nlink == 0) gone_.insert(ino);
    model_.Release(ino);
  }
}

void NamespaceModelTest::CompareAll(const std::string& when) {
  SCOPED_TRACE(when);
  std::map<BlobId, uint64_t> refs;
  for (const auto& [ino, node] : model_.inodes) {
    absl::StatusOr<InodeAttr> attr = store_->GetAttr(ino);
    ASSERT_TRUE(attr.ok()) << "inode " << ino << ": " << attr.status();
    EXPECT_EQ(*attr, node.attr) << "attributes of " << ino;
    if (S_ISDIR(node.attr.mode)) {
      std::map<std::string, InodeId> listed;
      uint64_t last_cookie = 2;
      ASSERT_TRUE(store_->ReadDir(ino, 0, [&](const DirEntry& e) {
                    EXPECT_GT(e.cookie, last_cookie) << "cookies must increase";
                    last_cookie = e.cookie;
                    listed[e.name] = e.ino;
                    if (model_.Exists(e.ino)) {
                      EXPECT_EQ(e.mode, model_.inodes.at(e.ino).attr.mode & S_IFMT);
                    }
                    return true;
                  }).ok());
      EXPECT_EQ(listed, node.children) << "entries of " << ino;
      // By name (the S3 listing's scan): the same entries, in byte order.
      std::vector<std::pair<std::string, InodeId>> by_name;
      ASSERT_TRUE(store_->ScanDir(ino, "", [&](const DirEntry& e) {
                    by_name.emplace_back(e.name, e.ino);
                    return true;
                  }).ok());
      EXPECT_EQ(by_name, (std::vector<std::pair<std::string, InodeId>>(node.children.begin(),
                                                                       node.children.end())))
          << "entries of " << ino << " by name";
    }
    if (S_ISLNK(node.attr.mode)) {
      EXPECT_EQ(*store_->ReadLink(ino), node.symlink_target);
    }
    if (S_ISREG(node.attr.mode)) {
      absl::StatusOr<std::vector<Extent>> extents = store_->GetExtents(ino, 0, UINT64_MAX);
      ASSERT_TRUE(extents.ok()) << extents.status();
      std::string data(node.attr.size, '\0'), covered(node.attr.size, '0');
      uint64_t next_free = 0;
      for (const Extent& e : *extents) {
        ASSERT_GE(e.file_offset, next_free) << "extents of " << ino << " overlap";
        ASSERT_GT(e.length, 0u);
        ASSERT_LE(e.file_offset + e.length, node.attr.size) << "extent past the end of " << ino;
        next_free = e.file_offset + e.length;
        for (uint64_t i = 0; i < e.length; ++i) {
          data[e.file_offset + i] = e.blob_id == kNoBlob ? e.inline_data[i]
                                                         : BlobByte(e.blob_id, e.blob_offset + i);
        }
        covered.replace(e.file_offset, e.length, e.length, '1');
        if (e.blob_id != kNoBlob) refs[e.blob_id]++;
      }
      EXPECT_TRUE(data == node.data) << "bytes of " << ino;
      EXPECT_TRUE(covered == node.covered) << "stored ranges of " << ino;
    }
    absl::StatusOr<std::vector<std::string>> names = store_->ListXattr(ino);
    ASSERT_TRUE(names.ok());
    std::map<std::string, std::string> xattrs;
    for (const std::string& name : *names) xattrs[name] = *store_->GetXattr(ino, name);
    EXPECT_EQ(xattrs, node.xattrs) << "xattrs of " << ino;
  }
  for (InodeId ino : gone_) {
    EXPECT_EQ(Actual(store_->GetAttr(ino).status()), FsErrorKind::kNotFound) << ino;
  }
  absl::StatusOr<NamespaceStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->inode_count, model_.inodes.size());
  EXPECT_EQ(stats->data_bytes, model_.DataBytes());
  CheckBlobsAndCollect(refs);
}

// Every blob's count is the number of extents naming it; once the grace
// period is over, exactly the unreferenced ones are collectable.
void NamespaceModelTest::CheckBlobsAndCollect(const std::map<BlobId, uint64_t>& refs) {
  std::set<BlobId> unreferenced;
  for (BlobId id : blobs_) {
    absl::StatusOr<BlobRecord> record = store_->GetBlob(id);
    ASSERT_TRUE(record.ok()) << "blob " << id << ": " << record.status();
    auto it = refs.find(id);
    uint64_t expected = it == refs.end() ? 0 : it->second;
    EXPECT_EQ(record->refcount, expected) << "references to blob " << id;
    if (expected == 0) unreferenced.insert(id);
  }
  clock_.Advance(absl::Seconds(kGraceSeconds + 1));
  absl::StatusOr<std::vector<BlobId>> collectable = store_->CollectableBlobs(1 << 20);
  ASSERT_TRUE(collectable.ok());
  EXPECT_EQ(std::set<BlobId>(collectable->begin(), collectable->end()), unreferenced);
  std::vector<BlobId> forget(unreferenced.begin(), unreferenced.end());
  ASSERT_TRUE(store_->ForgetBlobs(forget).ok());
  for (BlobId id : forget) {
    blobs_.erase(id);
    EXPECT_EQ(Actual(store_->GetBlob(id).status()), FsErrorKind::kNotFound);
  }
  EXPECT_TRUE(store_->CollectableBlobs(1 << 20)->empty());
}

TEST_P(NamespaceModelTest, RandomOperationsMatchModel) {
  SCOPED_TRACE(absl::StrCat("seed ", GetParam().seed));
  Open();
  if (HasFatalFailure() || IsSkipped()) return;
  for (int step = 0; step < kSteps; ++step) {
    Step();
    history_.push_back(absl::StrCat(step, ": ", what_, " -> ", Describe(expected_)));
    if (history_.size() > 25) history_.pop_front();
    std::string recent;
    for (const std::string& line : history_) absl::StrAppend(&recent, "\n  ", line);
    ASSERT_EQ(Describe(actual_), Describe(expected_))
        << "step " << step << " (" << what_ << ")\nrecent operations:" << recent;
    ASSERT_FALSE(HasFailure()) << "step " << step << "\nrecent operations:" << recent;
    if (step % kCheckEvery == kCheckEvery - 1) {
      CompareAll(absl::StrCat("step ", step));
      ASSERT_FALSE(HasFailure()) << "recent operations:" << recent;
      // What cairn fsck checks must hold after any sequence of operations.
      absl::StatusOr<NamespaceCheckReport> check = store_->Check();
      ASSERT_TRUE(check.ok()) << check.status();
      std::string problems;
      for (const std::string& p : check->problems) absl::StrAppend(&problems, "\n  ", p);
      ASSERT_TRUE(check->problems.empty())
          << "step " << step << ": fsck problems:" << problems << "\nrecent operations:" << recent;
      ASSERT_NO_FATAL_FAILURE(Open());
      CompareAll(absl::StrCat("after reopen at step ", step));
      ASSERT_FALSE(HasFailure()) << "recent operations:" << recent;
      if (step % (2 * kCheckEvery) == kCheckEvery - 1) {
        // What mount does: nothing is open after a restart.
        std::vector<InodeId> orphans = model_.Orphans();
        absl::StatusOr<uint64_t> released = store_->ReleaseAllOrphans();
        ASSERT_TRUE(released.ok());
        EXPECT_EQ(*released, orphans.size());
        for (InodeId ino : orphans) {
          model_.Release(ino);
          gone_.insert(ino);
        }
      }
    }
  }
  CompareAll("end");
}

INSTANTIATE_TEST_SUITE_P(
    Namespace, NamespaceModelTest,
    ::testing::Values(ModelParam{1}, ModelParam{2}, ModelParam{3}, ModelParam{20261125},
                      ModelParam{1, Engine::kRocksDbSharedRunTwice},
                      ModelParam{20261125, Engine::kRocksDbSharedRunTwice},
                      ModelParam{1, Engine::kPostgreSql}, ModelParam{2, Engine::kPostgreSql},
                      ModelParam{20261125, Engine::kPostgreSql}),
    [](const ::testing::TestParamInfo<ModelParam>& info) {
      const char* engine = info.param.engine == Engine::kRocksDbSharedRunTwice ? "_shared_run_twice"
                           : info.param.engine == Engine::kPostgreSql          ? "_postgresql"
                                                                               : "";
      return absl::StrCat("seed", info.param.seed, engine);
    });

}  // namespace
}  // namespace cairn

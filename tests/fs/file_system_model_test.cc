// The whole stack against a reference model, below FUSE (as mountpoint-s3's
// reference tests drive its filesystem type without FUSE): a seeded random
// sequence of operations runs on a FileSystem over a mounted volume (write
// cache, writeback journal, striped ec:2+1 store on three disks, RocksDB
// namespace, all on a MemEnv; a remote tier in an in-memory bucket) and on a
// small in-memory model of a POSIX tree, and every result is compared. The
// background services are driven by the test with a fake clock: flushes,
// garbage collection past the grace period, compaction, tiering files out
// and back in. The volume also crashes: the daemon dies (nothing is lost:
// every write was in the journal) or the power goes after a sync (nothing
// is lost either); both must come back exactly as the model says.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/file_location.h"
#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "fs/mounted_volume.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/mem_env.h"

namespace cairn {
namespace {

constexpr char kVolumeDir[] = "/vol";
// Sanitizer builds run several times slower: a quarter of the seeds there.
#ifdef CAIRN_SANITIZED
constexpr int kSeeds = 50;
#else
constexpr int kSeeds = 200;
#endif
constexpr int kSteps = 150;

using Outcome = std::optional<FsErrorKind>;  // nullopt: success

Outcome OutcomeOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  return GetFsErrorKind(status).value_or(FsErrorKind::kIo);
}

std::string Describe(const Outcome& outcome) {
  return outcome ? absl::StrCat("error kind ", static_cast<int>(*outcome)) : "ok";
}

// The model: a tree of directories, files and symlinks, by path.
struct ModelNode {
  enum class Kind { kFile, kDir, kSymlink } kind = Kind::kFile;
  std::string data;    // files
  std::string target;  // symlinks
  std::map<std::string, std::string> xattrs;
  std::map<std::string, int> entries;  // directories: name -> node id
  int links = 1;
};

class Model {
 public:
  Model() { nodes_[kRoot].kind = ModelNode::Kind::kDir; }
  static constexpr int kRoot = 0;

  ModelNode& node(int id) { return nodes_.at(id); }
  bool IsDir(int id) const { return nodes_.at(id).kind == ModelNode::Kind::kDir; }
  std::optional<int> Find(int dir, const std::string& name) const {
    const auto& entries = nodes_.at(dir).entries;
    auto it = entries.find(name);
    if (it == entries.end()) return std::nullopt;
    return it->second;
  }
  int Add(int dir, const std::string& name, ModelNode::Kind kind) {
    int id = next_++;
    nodes_[id].kind = kind;
    nodes_[dir].entries[name] = id;
    return id;
  }
  void Link(int dir, const std::string& name, int id) {
    nodes_[dir].entries[name] = id;
    nodes_[id].links++;
  }
  void Remove(int dir, const std::string& name) {
    int id = nodes_[dir].entries.at(name);
    nodes_[dir].entries.erase(name);
    if (--nodes_[id].links == 0) nodes_.erase(id);
  }
  // Every (directory, name) pair, for picking operands.
  std::vector<std::pair<int, std::string>> AllEntries() const {
    std::vector<std::pair<int, std::string>> out;
    for (const auto& [id, node] : nodes_) {
      for (const auto& [name, child] : node.entries) out.emplace_back(id, name);
    }
    return out;
  }
  std::vector<int> Dirs() const {
    std::vector<int> out;
    for (const auto& [id, node] : nodes_) {
      if (node.kind == ModelNode::Kind::kDir) out.push_back(id);
    }
    return out;
  }
  std::vector<int> Files() const {
    std::vector<int> out;
    for (const auto& [id, node] : nodes_) {
      if (node.kind == ModelNode::Kind::kFile) out.push_back(id);
    }
    return out;
  }
  // True if `maybe_descendant` is `dir` or inside it.
  bool Within(int maybe_descendant, int dir) const {
    if (maybe_descendant == dir) return true;
    for (const auto& [name, child] : nodes_.at(dir).entries) {
      if (IsDir(child) && Within(maybe_descendant, child)) return true;
    }
    return false;
  }

 private:
  std::map<int, ModelNode> nodes_;
  int next_ = 1;
};

class FileSystemModelTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    rng_.seed(static_cast<uint32_t>(GetParam()) * 104729u + 17);
    io_ = Io{&env_, &clock_, &buckets_};
    // Room for the test's data; the namespace's reserve (1/64 of it) then
    // costs 4 MiB per open, not 64.
    env_.SetCapacity(256 << 20);
    FormatOptions format;
    format.disks = {"/disk0", "/disk1", "/disk2"};
    absl::StatusOr<VolumeConfig> config = FormatVolume(kVolumeDir, format, io_);
    ASSERT_TRUE(config.ok()) << config.status();
    TierConfig tier;
    tier.endpoint = "http://fake";
    tier.bucket = "tier";
    tier.access_key_id = "AKID";
    tier.secret_access_key = "secret";
    tier.cache_bytes = 8 << 20;
    config->tier = tier;
    config->gc_grace_seconds = 60;
    ASSERT_TRUE(SaveVolumeConfig(kVolumeDir, *config, &env_).ok());
    ASSERT_NO_FATAL_FAILURE(Mount());
    inodes_[Model::kRoot] = kRootInode;
  }

  void TearDown() override {
    if (mounted_) {
      absl::Status closed = mounted_->Close();
      EXPECT_TRUE(closed.ok()) << closed;
    }
    Unmount();
  }

  void Mount() {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(kVolumeDir, "", &env_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(kVolumeDir, *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    MountedVolume::Options options;
    options.background_flush = false;
    absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
        MountedVolume::Open(*volume_, options);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    mounted_ = std::move(*mounted);
    VolumeServices::Options services;
    services.background = false;
    services_ = std::make_unique<VolumeServices>(*volume_, services);
    BlobCollector::Options gc;
    gc.background = false;
    gc.clock = &clock_;
    FileDataCache* cache = &mounted_->cache();
    gc.on_deleted = [cache](BlobId id) { cache->ForgetBlob(id); };
    collector_ = std::make_unique<BlobCollector>(volume_->ns(), volume_->blobs(), gc);
  }

  void Unmount() {
    collector_.reset();
    services_.reset();
    mounted_.reset();
    volume_.reset();
  }

  FileSystem& fs() { return mounted_->fs(); }
  InodeId Ino(int id) { return inodes_.at(id); }

  std::string RandomBytes(size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>('a' + rng_() % 26);
    return out;
  }
  std::string RandomName() { return std::string(1, static_cast<char>('a' + rng_() % 6)); }
  template <typename T>
  const T& Pick(const std::vector<T>& from) {
    return from[rng_() % from.size()];
  }

  void Expect(const char* op, const Outcome& expected, const absl::Status& got) {
    EXPECT_EQ(Describe(OutcomeOf(got)), Describe(expected))
        << op << " at step " << step_ << ": " << got;
  }

  // --- Operations -------------------------------------------------------

  void Create() {
    int dir = Pick(model_.Dirs());
    std::string name = RandomName();
    const bool exists = model_.Find(dir, name).has_value();
    // Without O_EXCL an existing name is the kernel's to open (kStale
    // has it look the name up again).
    const bool exclusive = rng_() % 2 == 0;
    absl::StatusOr<InodeAttr> attr =
        fs().Create(Ino(dir), name, 0644, Caller{}, O_RDWR | (exclusive ? O_EXCL : 0));
    Expect("create",
           exists ? Outcome(exclusive ? FsErrorKind::kExists : FsErrorKind::kStale) : std::nullopt,
           attr.status());
    if (!attr.ok()) return;
    fs().Release(attr->ino, O_RDWR);
    fs().Forget(attr->ino, 1);
    inodes_[model_.Add(dir, name, ModelNode::Kind::kFile)] = attr->ino;
  }

  void Mkdir() {
    int dir = Pick(model_.Dirs());
    std::string name = RandomName();
    const bool exists = model_.Find(dir, name).has_value();
    NewNode node;
    node.mode = S_IFDIR | 0755;
    absl::StatusOr<InodeAttr> attr = fs().MakeNode(Ino(dir), name, node, Caller{});
    Expect("mkdir", exists ? Outcome(FsErrorKind::kExists) : std::nullopt, attr.status());
    if (!attr.ok()) return;
    fs().Forget(attr->ino, 1);
    inodes_[model_.Add(dir, name, ModelNode::Kind::kDir)] = attr->ino;
  }

  void Symlink() {
    int dir = Pick(model_.Dirs());
    std::string name = RandomName();
    const bool exists = model_.Find(dir, name).has_value();
    NewNode node;
    node.mode = S_IFLNK | 0777;
    node.symlink_target = "target-" + RandomBytes(5);
    absl::StatusOr<InodeAttr> attr = fs().MakeNode(Ino(dir), name, node, Caller{});
    Expect("symlink", exists ? Outcome(FsErrorKind::kExists) : std::nullopt, attr.status());
    if (!attr.ok()) return;
    fs().Forget(attr->ino, 1);
    int id = model_.Add(dir, name, ModelNode::Kind::kSymlink);
    model_.node(id).target = node.symlink_target;
    inodes_[id] = attr->ino;
  }

  void Write() {
    std::vector<int> files = model_.Files();
    if (files.empty()) return Create();
    int id = Pick(files);
    std::string& data = model_.node(id).data;
    uint64_t offset = rng_() % 3 == 0 ? data.size() : rng_() % (data.size() + 4096);
    // Mostly small; now and then large enough for a whole blob.
    uint64_t length = rng_() % 8 == 0 ? 1 + rng_() % (3 << 20) : 1 + rng_() % 20000;
    std::string bytes = RandomBytes(length);
    absl::Status s = fs().Write(Ino(id), offset, bytes);
    Expect("write", std::nullopt, s);
    if (!s.ok()) return;
    if (data.size() < offset + length) data.resize(offset + length, '\0');
    data.replace(offset, length, bytes);
  }

  void Truncate() {
    std::vector<int> files = model_.Files();
    if (files.empty()) return;
    int id = Pick(files);
    std::string& data = model_.node(id).data;
    SetAttrRequest request;
    request.size = rng_() % (data.size() + 100000);
    absl::StatusOr<InodeAttr> attr = fs().SetAttr(Ino(id), request);
    Expect("truncate", std::nullopt, attr.status());
    if (attr.ok()) data.resize(*request.size, '\0');
  }

  void Unlink() {
    std::vector<std::pair<int, std::string>> entries = model_.AllEntries();
    if (entries.empty()) return;
    auto [dir, name] = Pick(entries);
    const int id = *model_.Find(dir, name);
    absl::Status s = fs().Unlink(Ino(dir), name);
    const bool dir_target = model_.IsDir(id);
    Expect("unlink", dir_target ? Outcome(FsErrorKind::kIsDirectory) : std::nullopt, s);
    if (s.ok()) model_.Remove(dir, name);
  }

  void Rmdir() {
    std::vector<std::pair<int, std::string>> entries = model_.AllEntries();
    if (entries.empty()) return;
    auto [dir, name] = Pick(entries);
    const int id = *model_.Find(dir, name);
    absl::Status s = fs().Rmdir(Ino(dir), name);
    Outcome expected;
    if (!model_.IsDir(id)) {
      expected = FsErrorKind::kNotDirectory;
    } else if (!model_.node(id).entries.empty()) {
      expected = FsErrorKind::kNotEmpty;
    }
    Expect("rmdir", expected, s);
    if (s.ok()) model_.Remove(dir, name);
  }

  void Link() {
    std::vector<int> files = model_.Files();
    if (files.empty()) return;
    int id = Pick(files);
    int dir = Pick(model_.Dirs());
    std::string name = RandomName();
    const bool exists = model_.Find(dir, name).has_value();
    absl::StatusOr<InodeAttr> attr = fs().Link(Ino(id), Ino(dir), name);
    Expect("link", exists ? Outcome(FsErrorKind::kExists) : std::nullopt, attr.status());
    if (!attr.ok()) return;
    fs().Forget(attr->ino, 1);
    model_.Link(dir, name, id);
  }

  void Rename() {
    std::vector<std::pair<int, std::string>> entries = model_.AllEntries();
    if (entries.empty()) return;
    auto [from_dir, from_name] = Pick(entries);
    int to_dir = Pick(model_.Dirs());
    std::string to_name = RandomName();
    const bool noreplace = rng_() % 4 == 0;
    const int moved = *model_.Find(from_dir, from_name);
    std::optional<int> target = model_.Find(to_dir, to_name);
    // The namespace's order of checks (the kernel refuses some of these
    // before they reach the daemon, but the filesystem answers all).
    Outcome expected;
    if (from_dir == to_dir && from_name == to_name) {
      expected = std::nullopt;
    } else if (target && noreplace) {
      expected = FsErrorKind::kExists;
    } else if (target && *target == moved) {
      expected = std::nullopt;  // two names of one file: nothing happens
    } else if (model_.IsDir(moved) && from_dir != to_dir && model_.Within(to_dir, moved)) {
      expected = FsErrorKind::kInvalid;
    } else if (target && model_.IsDir(moved) && !model_.IsDir(*target)) {
      expected = FsErrorKind::kNotDirectory;
    } else if (target && !model_.IsDir(moved) && model_.IsDir(*target)) {
      expected = FsErrorKind::kIsDirectory;
    } else if (target && model_.IsDir(*target) && !model_.node(*target).entries.empty()) {
      expected = FsErrorKind::kNotEmpty;
    }
    absl::Status s = fs().Rename(Ino(from_dir), from_name, Ino(to_dir), to_name,
                                 noreplace ? RenameMode::kNoReplace : RenameMode::kReplace);
    Expect("rename", expected, s);
    if (!s.ok() || (from_dir == to_dir && from_name == to_name) ||
        (target && *target == moved)) {
      return;
    }
    if (target) model_.Remove(to_dir, to_name);
    model_.Link(to_dir, to_name, moved);
    model_.Remove(from_dir, from_name);
  }

  void Xattr() {
    std::vector<std::pair<int, std::string>> entries = model_.AllEntries();
    if (entries.empty()) return;
    auto [dir, name] = Pick(entries);
    const int id = *model_.Find(dir, name);
    const std::string key = "user.k" + RandomName();
    if (rng_() % 2 == 0) {
      std::string value = RandomBytes(rng_() % 200);
      absl::Status s = fs().SetXattr(Ino(id), key, value, XattrMode::kCreateOrReplace);
      Expect("setxattr", std::nullopt, s);
      if (s.ok()) model_.node(id).xattrs[key] = value;
    } else {
      absl::Status s = fs().RemoveXattr(Ino(id), key);
      const bool present = model_.node(id).xattrs.contains(key);
      Expect("removexattr", present ? std::nullopt : Outcome(FsErrorKind::kNoAttribute), s);
      if (s.ok()) model_.node(id).xattrs.erase(key);
    }
  }

  // Moves a file's blobs to the remote tier or back, as cairn tier out/in
  // does: its written data first goes to the local disks.
  void Tier() {
    std::vector<int> files = model_.Files();
    if (files.empty()) return;
    const int id = Pick(files);
    const InodeId ino = Ino(id);
    ASSERT_TRUE(mounted_->cache().Flush(ino).ok());
    const bool out = rng_() % 2 == 0;
    absl::Status s = out ? services_->tiering()->MoveFilesOut({ino})
                         : services_->tiering()->MoveFilesIn({ino});
    Expect("tier move", std::nullopt, s);
    // A file brought back is pinned, so the policy keeps it local.
    if (s.ok() && !out) model_.node(id).xattrs[kPinXattr] = "1";
  }

  // Garbage past its grace period goes, and mostly-dead blobs are packed.
  void CollectGarbage() {
    clock_.Advance(absl::Seconds(volume_->config().gc_grace_seconds + 1));
    if (rng_() % 2 == 0) {
      absl::StatusOr<uint64_t> compacted = collector_->CompactNow();
      Expect("compaction", std::nullopt, compacted.status());
    }
    Expect("garbage collection", std::nullopt, collector_->CollectNow());
  }

  // The daemon dies: nothing is closed, but every write reached the
  // journal, so nothing is lost.
  void DaemonCrash() {
    Unmount();
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  // Everything is made durable, then the power goes: nothing is lost.
  void PowerCutAfterSync() {
    ASSERT_TRUE(mounted_->cache().FlushAll().ok());
    ASSERT_TRUE(volume_->ns().Sync().ok());
    env_.SetFilesystemActive(false);
    Unmount();
    env_.DropUnsyncedData(static_cast<uint64_t>(GetParam()));
    env_.SetFilesystemActive(true);
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  void CleanRemount() {
    ASSERT_TRUE(mounted_->Close().ok());
    Unmount();
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  // --- Comparison -------------------------------------------------------

  void CompareNode(int id, const std::string& path) {
    const ModelNode& node = model_.node(id);
    absl::StatusOr<InodeAttr> attr = fs().GetAttr(Ino(id));
    ASSERT_TRUE(attr.ok()) << path << ": " << attr.status();
    switch (node.kind) {
      case ModelNode::Kind::kFile: {
        ASSERT_TRUE(S_ISREG(attr->mode)) << path;
        ASSERT_EQ(attr->size, node.data.size()) << path;
        EXPECT_EQ(attr->nlink, static_cast<uint32_t>(node.links)) << path;
        absl::StatusOr<std::string> data = fs().Read(Ino(id), 0, node.data.size() + 1);
        ASSERT_TRUE(data.ok()) << path << ": " << data.status();
        EXPECT_TRUE(*data == node.data) << path << ": the content differs from the model";
        break;
      }
      case ModelNode::Kind::kSymlink: {
        ASSERT_TRUE(S_ISLNK(attr->mode)) << path;
        absl::StatusOr<std::string> target = fs().ReadLink(Ino(id));
        ASSERT_TRUE(target.ok()) << target.status();
        EXPECT_EQ(*target, node.target) << path;
        break;
      }
      case ModelNode::Kind::kDir: {
        ASSERT_TRUE(S_ISDIR(attr->mode)) << path;
        std::map<std::string, InodeId> listed;
        absl::Status s = fs().ReadDir(Ino(id), 0, false,
                                      [&](const DirEntry& entry, const InodeAttr&) {
                                        listed[entry.name] = entry.ino;
                                        return true;
                                      });
        ASSERT_TRUE(s.ok()) << s;
        std::map<std::string, InodeId> expected;
        for (const auto& [name, child] : node.entries) expected[name] = Ino(child);
        EXPECT_EQ(listed, expected) << path << ": the listing differs from the model";
        break;
      }
    }
    absl::StatusOr<std::vector<std::string>> names = fs().ListXattr(Ino(id));
    ASSERT_TRUE(names.ok()) << names.status();
    std::vector<std::string> expected_names;
    for (const auto& [key, value] : node.xattrs) {
      expected_names.push_back(key);
      absl::StatusOr<std::string> got = fs().GetXattr(Ino(id), key);
      ASSERT_TRUE(got.ok()) << path << " " << key << ": " << got.status();
      EXPECT_EQ(*got, value) << path << " " << key;
    }
    std::sort(names->begin(), names->end());
    EXPECT_EQ(*names, expected_names) << path;
  }

  void CompareAll(int dir, const std::string& path) {
    ASSERT_NO_FATAL_FAILURE(CompareNode(dir, path));
    for (const auto& [name, child] : model_.node(dir).entries) {
      const std::string child_path = path + "/" + name;
      if (model_.IsDir(child)) {
        ASSERT_NO_FATAL_FAILURE(CompareAll(child, child_path));
      } else {
        ASSERT_NO_FATAL_FAILURE(CompareNode(child, child_path));
      }
    }
  }

  void Step() {
    const int op = static_cast<int>(rng_() % 100);
    if (op < 10) {
      Create();
    } else if (op < 15) {
      Mkdir();
    } else if (op < 18) {
      Symlink();
    } else if (op < 45) {
      Write();
    } else if (op < 50) {
      Truncate();
    } else if (op < 56) {
      Unlink();
    } else if (op < 59) {
      Rmdir();
    } else if (op < 63) {
      Link();
    } else if (op < 71) {
      Rename();
    } else if (op < 76) {
      Xattr();
    } else if (op < 81) {
      ASSERT_TRUE(mounted_->cache().FlushAll().ok());
    } else if (op < 85) {
      ASSERT_NO_FATAL_FAILURE(Tier());
    } else if (op < 90) {
      ASSERT_NO_FATAL_FAILURE(CollectGarbage());
    } else if (op < 93) {
      ASSERT_NO_FATAL_FAILURE(DaemonCrash());
      ASSERT_NO_FATAL_FAILURE(CompareAll(Model::kRoot, ""));
    } else if (op < 96) {
      ASSERT_NO_FATAL_FAILURE(PowerCutAfterSync());
      ASSERT_NO_FATAL_FAILURE(CompareAll(Model::kRoot, ""));
    } else if (op < 98) {
      ASSERT_NO_FATAL_FAILURE(CleanRemount());
    } else {
      clock_.Advance(absl::Seconds(rng_() % 100));
    }
  }

  MemEnv env_;
  FakeClock clock_;
  FakeObjectStoreFactory buckets_{&clock_};
  Io io_;
  std::mt19937 rng_;
  Model model_;
  std::map<int, InodeId> inodes_;  // model node -> the volume's inode
  int step_ = 0;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<MountedVolume> mounted_;
  std::unique_ptr<VolumeServices> services_;
  std::unique_ptr<BlobCollector> collector_;
};

TEST_P(FileSystemModelTest, RandomOperationsMatchTheModelThroughCrashesAndMoves) {
  for (step_ = 0; step_ < kSteps; ++step_) {
    ASSERT_NO_FATAL_FAILURE(Step());
    if (step_ % 25 == 24) {
      ASSERT_NO_FATAL_FAILURE(CompareAll(Model::kRoot, ""));
    }
    if (HasFailure()) return;
  }
  ASSERT_NO_FATAL_FAILURE(CleanRemount());
  ASSERT_NO_FATAL_FAILURE(CompareAll(Model::kRoot, ""));
  absl::StatusOr<NamespaceCheckReport> check = volume_->ns().Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->problems.empty()) << check->problems.front();
}

INSTANTIATE_TEST_SUITE_P(Seeds, FileSystemModelTest, ::testing::Range(1, kSeeds + 1));

}  // namespace
}  // namespace cairn

// Drives the real namespace and a small in-memory model of POSIX directory
// semantics with the same long random sequence of operations and compares
// every result, then the whole tree, also after reopening the database.
#include <sys/stat.h>

#include <map>
#include <random>
#include <set>

#include "backend/fs_error.h"
#include "backend/namespace_store.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

// kOk stands for success in the comparisons.
constexpr int kOk = -1;

int KindOf(const absl::Status& status) {
  if (status.ok()) return kOk;
  std::optional<FsErrorKind> kind = GetFsErrorKind(status);
  return kind ? static_cast<int>(*kind) : 1000 + static_cast<int>(status.code());
}

int K(FsErrorKind kind) { return static_cast<int>(kind); }

struct ModelNode {
  bool dir = false;
  uint32_t nlink = 1;
  uint64_t size = 0;
  InodeId parent = 0;
  std::map<std::string, InodeId> children;
  std::map<std::string, std::string> xattrs;
};

class Model {
 public:
  Model() {
    ModelNode root;
    root.dir = true;
    root.nlink = 2;
    root.parent = kRootInode;
    nodes[kRootInode] = root;
  }

  std::map<InodeId, ModelNode> nodes;

  const InodeId* Child(InodeId dir, const std::string& name) const {
    auto it = nodes.at(dir).children.find(name);
    return it == nodes.at(dir).children.end() ? nullptr : &it->second;
  }

  bool Inside(InodeId start, InodeId dir) const {
    for (InodeId p = start;; p = nodes.at(p).parent) {
      if (p == dir) return true;
      if (p == kRootInode) return false;
    }
  }

  int Make(InodeId parent, const std::string& name, bool dir) {
    if (Child(parent, name)) return K(FsErrorKind::kExists);
    return kOk;
  }
  void Made(InodeId parent, const std::string& name, bool dir, InodeId ino) {
    ModelNode node;
    node.dir = dir;
    node.nlink = dir ? 2 : 1;
    node.parent = dir ? parent : 0;
    nodes[ino] = node;
    nodes[parent].children[name] = ino;
    if (dir) nodes[parent].nlink++;
  }

  int Link(InodeId ino, InodeId parent, const std::string& name) {
    if (nodes.at(ino).dir) return K(FsErrorKind::kNotPermitted);
    if (Child(parent, name)) return K(FsErrorKind::kExists);
    nodes[parent].children[name] = ino;
    nodes[ino].nlink++;
    return kOk;
  }

  int Remove(InodeId parent, const std::string& name, bool want_dir) {
    const InodeId* child = Child(parent, name);
    if (!child) return K(FsErrorKind::kNotFound);
    InodeId ino = *child;
    ModelNode& node = nodes[ino];
    if (want_dir && !node.dir) return K(FsErrorKind::kNotDirectory);
    if (!want_dir && node.dir) return K(FsErrorKind::kIsDirectory);
    if (want_dir && !node.children.empty()) return K(FsErrorKind::kNotEmpty);
    nodes[parent].children.erase(name);
    DropLink(ino);
    if (want_dir) nodes[parent].nlink--;
    return kOk;
  }

  int Rename(InodeId op, const std::string& on, InodeId np, const std::string& nn,
             RenameMode mode) {
    const InodeId* src_ptr = Child(op, on);
    if (!src_ptr) return K(FsErrorKind::kNotFound);
    InodeId src = *src_ptr;
    if (op == np && on == nn) return kOk;
    const InodeId* dst_ptr = Child(np, nn);
    if (mode == RenameMode::kNoReplace && dst_ptr) return K(FsErrorKind::kExists);
    if (mode == RenameMode::kExchange && !dst_ptr) return K(FsErrorKind::kNotFound);
    if (dst_ptr && *dst_ptr == src) return kOk;
    bool src_dir = nodes[src].dir;
    if (src_dir && op != np && Inside(np, src)) return K(FsErrorKind::kInvalid);
    if (mode == RenameMode::kExchange) {
      InodeId dst = *dst_ptr;
      bool dst_dir = nodes[dst].dir;
      if (dst_dir && op != np && Inside(op, dst)) return K(FsErrorKind::kInvalid);
      nodes[op].children[on] = dst;
      nodes[np].children[nn] = src;
      if (op != np) {
        if (src_dir) {
          nodes[src].parent = np;
          nodes[op].nlink--;
          nodes[np].nlink++;
        }
        if (dst_dir) {
          nodes[dst].parent = op;
          nodes[np].nlink--;
          nodes[op].nlink++;
        }
      }
      return kOk;
    }
    if (dst_ptr) {
      InodeId dst = *dst_ptr;
      bool dst_dir = nodes[dst].dir;
      if (src_dir && !dst_dir) return K(FsErrorKind::kNotDirectory);
      if (!src_dir && dst_dir) return K(FsErrorKind::kIsDirectory);
      if (dst_dir && !nodes[dst].children.empty()) return K(FsErrorKind::kNotEmpty);
      nodes[np].children.erase(nn);
      if (dst_dir) nodes[np].nlink--;
      DropLink(dst);
    }
    nodes[op].children.erase(on);
    nodes[np].children[nn] = src;
    if (src_dir && op != np) {
      nodes[src].parent = np;
      nodes[op].nlink--;
      nodes[np].nlink++;
    }
    return kOk;
  }

  void DropLink(InodeId ino) {
    ModelNode& node = nodes[ino];
    node.nlink = node.dir ? 0 : node.nlink - 1;
    if (node.nlink == 0) nodes.erase(ino);
  }
};

class NamespaceModelTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void Open() {
    store_.reset();
    NamespaceOptions options;
    options.create_if_missing = true;
    auto store = NamespaceStore::Open(dir_.path() + "/ns", options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Every live directory of the model, found by walking it from the root.
  std::vector<InodeId> Dirs() const {
    std::vector<InodeId> dirs;
    for (const auto& [ino, node] : model_.nodes) {
      if (node.dir) dirs.push_back(ino);
    }
    return dirs;
  }

  std::vector<InodeId> Files() const {
    std::vector<InodeId> files;
    for (const auto& [ino, node] : model_.nodes) {
      if (!node.dir) files.push_back(ino);
    }
    return files;
  }

  void CompareTree(const std::string& when) {
    for (const auto& [ino, node] : model_.nodes) {
      absl::StatusOr<InodeAttr> attr = store_->GetAttr(ino);
      ASSERT_TRUE(attr.ok()) << when << ": inode " << ino << " " << attr.status();
      EXPECT_EQ(attr->nlink, node.nlink) << when << ": nlink of " << ino;
      EXPECT_EQ(S_ISDIR(attr->mode), node.dir) << when << ": type of " << ino;
      if (!node.dir) EXPECT_EQ(attr->size, node.size) << when << ": size of " << ino;
      if (node.dir) {
        EXPECT_EQ(attr->parent, node.parent) << when << ": parent of " << ino;
        std::map<std::string, InodeId> listed;
        std::set<uint64_t> cookies;
        ASSERT_TRUE(store_->ReadDir(ino, 0, [&](const DirEntry& e) {
                      listed[e.name] = e.ino;
                      EXPECT_TRUE(cookies.insert(e.cookie).second) << "duplicate cookie";
                      return true;
                    }).ok());
        EXPECT_EQ(listed, node.children) << when << ": entries of " << ino;
      }
      absl::StatusOr<std::vector<std::string>> names = store_->ListXattr(ino);
      ASSERT_TRUE(names.ok());
      std::map<std::string, std::string> xattrs;
      for (const std::string& name : *names) xattrs[name] = *store_->GetXattr(ino, name);
      EXPECT_EQ(xattrs, node.xattrs) << when << ": xattrs of " << ino;
    }
  }

  TempDir dir_;
  std::unique_ptr<NamespaceStore> store_;
  Model model_;
};

TEST_P(NamespaceModelTest, RandomOperationsMatchModel) {
  const uint32_t seed = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  Open();
  const char* names[] = {"a", "b", "c", "d", "e", "f"};
  auto pick_name = [&] { return std::string(names[rng() % 6]); };
  auto pick = [&](const std::vector<InodeId>& v) { return v[rng() % v.size()]; };
  Caller caller{1000, 1000};

  for (int step = 0; step < 4000; ++step) {
    std::string what;
    int expected = kOk, actual = kOk;
    std::vector<InodeId> dirs = Dirs();
    InodeId parent = pick(dirs);
    std::string name = pick_name();
    switch (rng() % 11) {
      case 0:
      case 1: {
        bool dir = rng() % 2;
        what = std::string(dir ? "mkdir " : "create ") + name;
        expected = model_.Make(parent, name, dir);
        NewNode node;
        node.mode = dir ? S_IFDIR | 0755 : S_IFREG | 0644;
        absl::StatusOr<InodeAttr> made = store_->MakeNode(parent, name, node, caller);
        actual = KindOf(made.status());
        if (made.ok() && expected == kOk) model_.Made(parent, name, dir, made->ino);
        break;
      }
      case 2: {
        std::vector<InodeId> files = Files();
        InodeId target = files.empty() || rng() % 5 == 0 ? pick(dirs) : pick(files);
        what = "link " + name;
        expected = model_.Link(target, parent, name);
        actual = KindOf(store_->Link(target, parent, name).status());
        break;
      }
      case 3:
      case 4: {
        bool dir = rng() % 2;
        what = std::string(dir ? "rmdir " : "unlink ") + name;
        const InodeId* child = model_.Child(parent, name);
        InodeId ino = child ? *child : 0;
        expected = model_.Remove(parent, name, dir);
        absl::StatusOr<InodeAttr> removed =
            dir ? store_->Rmdir(parent, name) : store_->Unlink(parent, name);
        actual = KindOf(removed.status());
        if (removed.ok() && removed->nlink == 0) {
          ASSERT_TRUE(store_->ReleaseInode(ino).ok());
        }
        break;
      }
      case 5:
      case 6:
      case 7: {
        InodeId new_parent = pick(dirs);
        std::string new_name = pick_name();
        RenameMode mode = static_cast<RenameMode>(rng() % 3);
        what = "rename " + name + " -> " + new_name + " mode " +
               std::to_string(static_cast<int>(mode));
        const InodeId* victim = model_.Child(new_parent, new_name);
        InodeId victim_ino = victim ? *victim : 0;
        expected = model_.Rename(parent, name, new_parent, new_name, mode);
        absl::StatusOr<std::optional<InodeAttr>> replaced =
            store_->Rename(parent, name, new_parent, new_name, mode);
        actual = KindOf(replaced.status());
        if (replaced.ok() && replaced->has_value()) {
          EXPECT_EQ((*replaced)->ino, victim_ino);
          if ((*replaced)->nlink == 0) ASSERT_TRUE(store_->ReleaseInode(victim_ino).ok());
        }
        break;
      }
      case 8: {
        std::vector<InodeId> files = Files();
        if (files.empty()) continue;
        InodeId file = pick(files);
        uint64_t size = rng() % 100000;
        what = "truncate to " + std::to_string(size);
        SetAttrRequest request;
        request.size = size;
        actual = KindOf(store_->SetAttr(file, request).status());
        model_.nodes[file].size = size;
        break;
      }
      case 9: {
        InodeId target = pick(dirs);
        if (rng() % 2) {
          std::vector<InodeId> files = Files();
          if (!files.empty()) target = pick(files);
        }
        std::string xname = "user." + pick_name();
        XattrMode mode = static_cast<XattrMode>(rng() % 3);
        std::string value(rng() % 50, 'v');
        what = "setxattr " + xname;
        auto& xattrs = model_.nodes[target].xattrs;
        bool exists = xattrs.contains(xname);
        if (mode == XattrMode::kCreateOnly && exists) {
          expected = K(FsErrorKind::kExists);
        } else if (mode == XattrMode::kReplaceOnly && !exists) {
          expected = K(FsErrorKind::kNoAttribute);
        } else {
          xattrs[xname] = value;
        }
        actual = KindOf(store_->SetXattr(target, xname, value, mode));
        break;
      }
      case 10: {
        InodeId target = pick(dirs);
        std::string xname = "user." + pick_name();
        what = "removexattr " + xname;
        expected = model_.nodes[target].xattrs.erase(xname) ? kOk
                                                            : K(FsErrorKind::kNoAttribute);
        actual = KindOf(store_->RemoveXattr(target, xname));
        break;
      }
    }
    ASSERT_EQ(actual, expected) << "step " << step << ": " << what;
    if (step % 500 == 499) {
      CompareTree("step " + std::to_string(step));
      if (HasFatalFailure()) return;
      Open();
      CompareTree("after reopen at step " + std::to_string(step));
      if (HasFatalFailure()) return;
    }
  }
  absl::StatusOr<NamespaceStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->inode_count, model_.nodes.size());
}

INSTANTIATE_TEST_SUITE_P(Seeds, NamespaceModelTest,
                         ::testing::Values(1u, 2u, 3u, 20261125u));

}  // namespace
}  // namespace cairn

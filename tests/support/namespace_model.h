// An in-memory model of the namespace's POSIX semantics, for the
// reference-model test (tests/namespace_model_test.cc): a tree of inodes with
// link counts, entries, xattrs, file bytes and the attributes a NamespaceStore
// must report. Each mutation returns the error kind the store must return in
// that state, checked in the same order the store checks them, or applies
// the change. Deliberately naive (whole files as strings): it has to be
// obviously right, not fast.
#pragma once

#include <sys/stat.h>

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/base/fs_error.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

// Readable values in test failures (gtest finds these by argument lookup).
inline void PrintTo(const Timespec& t, std::ostream* os) { *os << t.sec << "." << t.nsec; }
inline void PrintTo(const InodeAttr& a, std::ostream* os) {
  *os << "{ino " << a.ino << " mode 0" << std::oct << a.mode << std::dec << " uid " << a.uid
      << " gid " << a.gid << " nlink " << a.nlink << " size " << a.size << " rdev " << a.rdev
      << " allocated " << a.allocated_bytes << " parent " << a.parent << " atime ";
  PrintTo(a.atime, os);
  *os << " mtime ";
  PrintTo(a.mtime, os);
  *os << " ctime ";
  PrintTo(a.ctime, os);
  *os << " btime ";
  PrintTo(a.btime, os);
  *os << "}";
}
inline void PrintTo(const Extent& e, std::ostream* os) {
  *os << "{[" << e.file_offset << ", +" << e.length << ") blob " << e.blob_id << " at "
      << e.blob_offset << " inline \"" << e.inline_data.substr(0, 32) << "\"}";
}

// nullopt: the operation succeeds.
using Outcome = std::optional<FsErrorKind>;

struct ModelInode {
  InodeAttr attr;  // exactly what GetAttr must return
  std::map<std::string, InodeId> children;  // directories
  std::map<std::string, std::string> xattrs;
  std::string data;     // regular files: the bytes; holes are '\0'
  std::string covered;  // regular files: '1' where an extent holds the byte
  std::string symlink_target;
};

class NamespaceModel {
 public:
  explicit NamespaceModel(Timespec now) {
    ModelInode root;
    root.attr.ino = kRootInode;
    root.attr.mode = S_IFDIR | 0755;
    root.attr.nlink = 2;
    root.attr.parent = kRootInode;
    root.attr.atime = root.attr.mtime = root.attr.ctime = root.attr.btime = now;
    inodes[kRootInode] = root;
  }

  // Every inode the store must know: linked ones and orphans.
  std::map<InodeId, ModelInode> inodes;

  bool Exists(InodeId ino) const { return inodes.contains(ino); }
  bool IsDir(InodeId ino) const { return S_ISDIR(inodes.at(ino).attr.mode); }

  static Outcome CheckName(std::string_view name) {
    if (name.empty() || name == "." || name == ".." ||
        name.find('/') != std::string_view::npos) {
      return FsErrorKind::kInvalid;
    }
    if (name.size() > kMaxNameBytes) return FsErrorKind::kNameTooLong;
    return std::nullopt;
  }

  // A directory that can take entries.
  Outcome CheckDir(InodeId ino) const {
    auto it = inodes.find(ino);
    if (it == inodes.end()) return FsErrorKind::kNotFound;
    if (!S_ISDIR(it->second.attr.mode)) return FsErrorKind::kNotDirectory;
    if (it->second.attr.nlink == 0) return FsErrorKind::kNotFound;
    return std::nullopt;
  }

  std::optional<InodeId> Child(InodeId dir, const std::string& name) const {
    const auto& children = inodes.at(dir).children;
    auto it = children.find(name);
    if (it == children.end()) return std::nullopt;
    return it->second;
  }

  // Whether `dir` is `start` or one of its ancestors.
  bool Inside(InodeId start, InodeId dir) const {
    for (InodeId p = start;; p = inodes.at(p).attr.parent) {
      if (p == dir) return true;
      if (p == kRootInode) return false;
    }
  }

  Outcome Lookup(InodeId parent, const std::string& name, InodeId* found) const {
    if (Outcome bad = CheckName(name)) return bad;
    auto dir = inodes.find(parent);
    if (dir == inodes.end()) return FsErrorKind::kNotFound;
    if (!S_ISDIR(dir->second.attr.mode)) return FsErrorKind::kNotDirectory;
    std::optional<InodeId> child = Child(parent, name);
    if (!child) return FsErrorKind::kNotFound;
    *found = *child;
    return std::nullopt;
  }

  // MakeNode in two halves: the store picks the inode number.
  Outcome CheckMakeNode(InodeId parent, const std::string& name) const {
    if (Outcome bad = CheckName(name)) return bad;
    if (Outcome bad = CheckDir(parent)) return bad;
    if (Child(parent, name)) return FsErrorKind::kExists;
    return std::nullopt;
  }
  void MakeNode(InodeId parent, const std::string& name, InodeId ino,
                const NewNode& node, const Caller& caller, Timespec now) {
    ModelInode& dir = inodes.at(parent);
    ModelInode made;
    InodeAttr& a = made.attr;
    a.ino = ino;
    a.mode = node.mode;
    a.uid = caller.uid;
    a.gid = caller.gid;
    a.rdev = node.rdev;
    a.atime = a.mtime = a.ctime = a.btime = now;
    if (dir.attr.mode & S_ISGID) {
      a.gid = dir.attr.gid;
      if (S_ISDIR(node.mode)) a.mode |= S_ISGID;
    }
    if (S_ISDIR(node.mode)) {
      a.nlink = 2;
      a.parent = parent;
      dir.attr.nlink++;
    } else {
      a.nlink = 1;
    }
    if (S_ISLNK(node.mode)) {
      made.symlink_target = node.symlink_target;
      a.size = node.symlink_target.size();
    }
    dir.children[name] = ino;
    Touch(dir, now);
    inodes[ino] = std::move(made);
  }

  Outcome Link(InodeId ino, InodeId parent, const std::string& name, Timespec now) {
    if (Outcome bad = CheckName(name)) return bad;
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    if (IsDir(ino)) return FsErrorKind::kNotPermitted;
    if (Outcome bad = CheckDir(parent)) return bad;
    if (Child(parent, name)) return FsErrorKind::kExists;
    ModelInode& target = inodes.at(ino);
    target.attr.nlink++;
    target.attr.ctime = now;
    inodes.at(parent).children[name] = ino;
    Touch(inodes.at(parent), now);
    return std::nullopt;
  }

  // Unlink (want_dir false) or Rmdir; *removed is the inode that lost a link.
  Outcome Remove(InodeId parent, const std::string& name, bool want_dir,
                 Timespec now, InodeId* removed) {
    if (Outcome bad = CheckName(name)) return bad;
    if (Outcome bad = CheckDir(parent)) return bad;
    std::optional<InodeId> child = Child(parent, name);
    if (!child) return FsErrorKind::kNotFound;
    bool is_dir = IsDir(*child);
    if (want_dir && !is_dir) return FsErrorKind::kNotDirectory;
    if (!want_dir && is_dir) return FsErrorKind::kIsDirectory;
    if (is_dir && !inodes.at(*child).children.empty()) return FsErrorKind::kNotEmpty;
    ModelInode& dir = inodes.at(parent);
    if (is_dir) dir.attr.nlink--;
    dir.children.erase(name);
    DropLink(*child, now);
    Touch(dir, now);
    *removed = *child;
    return std::nullopt;
  }

  // *replaced: the inode whose entry the rename removed, if any.
  Outcome Rename(InodeId op, const std::string& on, InodeId np, const std::string& nn,
                 RenameMode mode, Timespec now, std::optional<InodeId>* replaced) {
    if (Outcome bad = CheckName(on)) return bad;
    if (Outcome bad = CheckName(nn)) return bad;
    if (Outcome bad = CheckDir(op)) return bad;
    std::optional<InodeId> src = Child(op, on);
    if (!src) return FsErrorKind::kNotFound;
    if (Outcome bad = CheckDir(np)) return bad;
    if (op == np && on == nn) return std::nullopt;
    std::optional<InodeId> dst = Child(np, nn);
    if (mode == RenameMode::kNoReplace && dst) return FsErrorKind::kExists;
    if (mode == RenameMode::kExchange && !dst) return FsErrorKind::kNotFound;
    if (dst == src) return std::nullopt;  // two names of one inode
    const bool src_dir = IsDir(*src);
    if (src_dir && op != np && Inside(np, *src)) return FsErrorKind::kInvalid;
    if (mode == RenameMode::kExchange) {
      const bool dst_dir = IsDir(*dst);
      if (dst_dir && op != np && Inside(op, *dst)) return FsErrorKind::kInvalid;
      inodes.at(op).children[on] = *dst;
      inodes.at(np).children[nn] = *src;
      if (op != np) {
        if (src_dir) MoveDir(*src, op, np);
        if (dst_dir) MoveDir(*dst, np, op);
      }
      inodes.at(*src).attr.ctime = now;
      inodes.at(*dst).attr.ctime = now;
      Touch(inodes.at(op), now);
      Touch(inodes.at(np), now);
      return std::nullopt;
    }
    if (dst) {
      const bool dst_dir = IsDir(*dst);
      if (src_dir && !dst_dir) return FsErrorKind::kNotDirectory;
      if (!src_dir && dst_dir) return FsErrorKind::kIsDirectory;
      if (dst_dir && !inodes.at(*dst).children.empty()) return FsErrorKind::kNotEmpty;
      if (dst_dir) inodes.at(np).attr.nlink--;
      inodes.at(np).children.erase(nn);
      DropLink(*dst, now);
      *replaced = *dst;
    }
    inodes.at(op).children.erase(on);
    inodes.at(np).children[nn] = *src;
    if (src_dir && op != np) MoveDir(*src, op, np);
    inodes.at(*src).attr.ctime = now;
    Touch(inodes.at(op), now);
    Touch(inodes.at(np), now);
    return std::nullopt;
  }

  Outcome SetAttr(InodeId ino, const SetAttrRequest& request, Timespec now) {
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode changed = inodes.at(ino);
    InodeAttr& a = changed.attr;
    if (request.mode) a.mode = (a.mode & S_IFMT) | (*request.mode & 07777);
    if (request.uid) a.uid = *request.uid;
    if (request.gid) a.gid = *request.gid;
    if (request.size) {
      if (S_ISDIR(a.mode)) return FsErrorKind::kIsDirectory;
      if (*request.size > kMaxFileBytes) return FsErrorKind::kFileTooBig;
      if (*request.size != a.size) a.mtime = now;
      Resize(changed, *request.size);
    }
    if (request.atime) a.atime = *request.atime;
    if (request.mtime) a.mtime = *request.mtime;
    a.ctime = request.ctime ? *request.ctime : now;
    inodes.at(ino) = std::move(changed);
    return std::nullopt;
  }

  // One CommitWrite: `writes` (offset, bytes) apply in order. Times stay.
  Outcome CommitWrite(InodeId ino,
                      const std::vector<std::pair<uint64_t, std::string>>& writes) {
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode& file = inodes.at(ino);
    if (!S_ISREG(file.attr.mode)) return FsErrorKind::kInvalid;
    for (const auto& [offset, bytes] : writes) {
      if (bytes.empty()) continue;
      if (offset + bytes.size() > file.data.size()) Resize(file, offset + bytes.size());
      file.data.replace(offset, bytes.size(), bytes);
      file.covered.replace(offset, bytes.size(), bytes.size(), '1');
    }
    file.attr.allocated_bytes = Allocated(file);
    return std::nullopt;
  }

  Outcome PunchHole(InodeId ino, uint64_t offset, uint64_t length, Timespec now) {
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode& file = inodes.at(ino);
    file.attr.mtime = file.attr.ctime = now;
    uint64_t end = std::min<uint64_t>(offset + length, file.data.size());
    if (offset < end) {
      file.data.replace(offset, end - offset, end - offset, '\0');
      file.covered.replace(offset, end - offset, end - offset, '0');
      file.attr.allocated_bytes = Allocated(file);
    }
    return std::nullopt;
  }

  Outcome Allocate(InodeId ino, uint64_t offset, uint64_t length, Timespec now) {
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode& file = inodes.at(ino);
    if (offset + length > kMaxFileBytes) return FsErrorKind::kFileTooBig;
    if (offset + length > file.attr.size) {
      Resize(file, offset + length);
      file.attr.mtime = file.attr.ctime = now;
    }
    return std::nullopt;
  }

  Outcome SetXattr(InodeId ino, const std::string& name, const std::string& value,
                   XattrMode mode, Timespec now) {
    if (name.empty()) return FsErrorKind::kInvalid;
    if (name.size() > kMaxNameBytes || value.size() > (64u << 10)) {
      return FsErrorKind::kRange;
    }
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode& node = inodes.at(ino);
    bool exists = node.xattrs.contains(name);
    if (mode == XattrMode::kCreateOnly && exists) return FsErrorKind::kExists;
    if (mode == XattrMode::kReplaceOnly && !exists) return FsErrorKind::kNoAttribute;
    node.xattrs[name] = value;
    node.attr.ctime = now;
    return std::nullopt;
  }

  Outcome RemoveXattr(InodeId ino, const std::string& name, Timespec now) {
    if (!Exists(ino)) return FsErrorKind::kNotFound;
    ModelInode& node = inodes.at(ino);
    if (node.xattrs.erase(name) == 0) return FsErrorKind::kNoAttribute;
    node.attr.ctime = now;
    return std::nullopt;
  }

  // ReleaseInode: only an orphan goes.
  void Release(InodeId ino) {
    auto it = inodes.find(ino);
    if (it != inodes.end() && it->second.attr.nlink == 0) inodes.erase(it);
  }

  std::vector<InodeId> Orphans() const {
    std::vector<InodeId> out;
    for (const auto& [ino, node] : inodes) {
      if (node.attr.nlink == 0) out.push_back(ino);
    }
    return out;
  }

  uint64_t DataBytes() const {
    uint64_t total = 0;
    for (const auto& [ino, node] : inodes) total += node.attr.allocated_bytes;
    return total;
  }

 private:
  static void Touch(ModelInode& dir, Timespec now) {
    dir.attr.mtime = dir.attr.ctime = now;
  }

  void DropLink(InodeId ino, Timespec now) {
    InodeAttr& a = inodes.at(ino).attr;
    a.nlink = S_ISDIR(a.mode) ? 0 : a.nlink - 1;
    a.ctime = now;
  }

  void MoveDir(InodeId dir, InodeId from, InodeId to) {
    inodes.at(dir).attr.parent = to;
    inodes.at(from).attr.nlink--;
    inodes.at(to).attr.nlink++;
  }

  static void Resize(ModelInode& file, uint64_t size) {
    file.data.resize(size, '\0');
    file.covered.resize(size, '0');
    file.attr.size = size;
    file.attr.allocated_bytes = Allocated(file);
  }

  static uint64_t Allocated(const ModelInode& file) {
    uint64_t n = 0;
    for (char c : file.covered) n += c == '1';
    return n;
  }
};

}  // namespace cairn

#include "tests/support/mem_env.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace mem_env_internal {

// A file or a directory: what a name leads to, shared by hard links and by
// the handles open on it. Every field that changes is guarded by State::mu
// (not annotated: the analysis cannot name another object's mutex).
struct Node {
  Node(uint64_t inode, bool is_directory, uint32_t permissions, int64_t modified_sec)
      : inode(inode),
        is_directory(is_directory),
        permissions(permissions),
        modified_sec(modified_sec) {}

  const uint64_t inode;
  const bool is_directory;
  uint32_t permissions;
  int64_t modified_sec;

  // A file's bytes now, and as of its last Sync (what a power cut leaves).
  std::string data;
  std::string synced_data;
  // Names in the tree and open Files of this power-on: the data takes space
  // while either is non-zero, as an unlinked file still open does.
  int links = 0;
  int open_files = 0;
  uint64_t lock_holder = 0;  // the id of the File holding the lock; 0: none

  // A directory's entries now, and as of its last SyncDir.
  std::map<std::string, std::shared_ptr<Node>> entries;
  std::map<std::string, std::shared_ptr<Node>> synced_entries;
  // Removed while held open: nothing may be created in it any more.
  bool removed = false;
};

// Where a path leads: the directory holding its last component and what
// that name leads to now.
struct Location {
  std::shared_ptr<Node> parent;  // null for a root: "/" or a held directory
  std::string name;
  std::shared_ptr<Node> node;  // null when nothing has that name
};

// Everything a MemEnv holds, shared with the handles so that they may
// outlive it, and the operations on the tree that every call is made of.
class State {
 public:
  explicit State(Clock* clock) : clock(clock) {}

  absl::Mutex mu;
  Clock* const clock;
  std::shared_ptr<Node> root ABSL_GUARDED_BY(mu);
  uint64_t next_inode ABSL_GUARDED_BY(mu) = 1;
  // Ids of File handles (lock holders) and held directories.
  uint64_t next_handle ABSL_GUARDED_BY(mu) = 1;
  // One more after each power cut: handles of an older generation belong
  // to a process that died with it.
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool active ABSL_GUARDED_BY(mu) = true;
  // Changing calls still allowed before the filesystem turns inactive.
  std::optional<uint64_t> mutations_left ABSL_GUARDED_BY(mu);
  uint64_t capacity_bytes ABSL_GUARDED_BY(mu) = uint64_t{1} << 40;
  // File data of live nodes (see Node::links).
  uint64_t used_bytes ABSL_GUARDED_BY(mu) = 0;

  struct HeldDirectory {
    std::shared_ptr<Node> node;
    uint64_t generation;
  };
  std::map<uint64_t, HeldDirectory> held_directories ABSL_GUARDED_BY(mu);

  uint64_t file_syncs ABSL_GUARDED_BY(mu) = 0;
  uint64_t directory_syncs ABSL_GUARDED_BY(mu) = 0;
  uint64_t bytes_written ABSL_GUARDED_BY(mu) = 0;

  std::shared_ptr<Node> NewNode(bool is_directory, uint32_t permissions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  int64_t Now() { return clock->NowSeconds(); }

  // The gate of every changing call: kIo while the power is (or has just
  // gone) out, and the countdown of DeactivateAfterMutations.
  absl::Status BeginChange(const std::string& what, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  absl::StatusOr<Location> Locate(const std::string& path, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // What `path` leads to; kNotFound when nothing.
  absl::StatusOr<std::shared_ptr<Node>> Find(const std::string& path, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  uint64_t Available() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Space accounting follows liveness: a file's data counts from its first
  // name or open handle to the last one going.
  void AddLink(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void DropLink(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void AddOpen(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void DropOpen(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Resizes a live file's data.
  void ResizeData(Node& node, uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Makes `name` in `dir` lead to `node`; what it led to loses that name.
  void Attach(Node& dir, const std::string& name, std::shared_ptr<Node> node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Takes `name` out of `dir`. `gone`: the node leaves the tree (not a
  // rename).
  void Detach(Node& dir, const std::string& name, bool gone) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
};

}  // namespace mem_env_internal

namespace {

using mem_env_internal::Location;
using mem_env_internal::Node;
using mem_env_internal::State;
using NodePtr = std::shared_ptr<Node>;

constexpr uint64_t kDevice = 1;
// env.h's promise for kCreateExclusiveDirect, which Linux enforces with
// EINVAL where O_DIRECT is taken.
constexpr uint64_t kDirectAlignment = 4096;
// Paths through a held directory look like posix_env's, so messages and
// code that strips them behave alike.
constexpr char kHeldDirectoryPrefix[] = "/proc/self/fd/";

absl::Status PathError(FsErrorKind kind, const std::string& what, const std::string& path,
                       const std::string& reason) {
  return FsError(kind, absl::StrCat(what, " ", path, ": ", reason));
}

absl::Status NotFound(const std::string& what, const std::string& path) {
  return PathError(FsErrorKind::kNotFound, what, path, "no such file or directory");
}

absl::Status NotFoundIsOk(const absl::Status& status) {
  return GetFsErrorKind(status) == FsErrorKind::kNotFound ? absl::OkStatus() : status;
}

FileInfo InfoOf(const Node& node) {
  FileInfo info;
  info.is_directory = node.is_directory;
  info.is_regular = !node.is_directory;
  info.size = node.is_directory ? 0 : node.data.size();
  info.permissions = node.permissions;
  info.uid = 0;
  info.gid = 0;
  info.device = kDevice;
  info.inode = node.inode;
  info.modified_sec = node.modified_sec;
  return info;
}

bool Live(const Node& node) { return node.links > 0 || node.open_files > 0; }

// Whether `target` is `dir` or below it (a rename must not move a
// directory under itself).
bool Contains(const Node& dir, const Node* target) {
  if (&dir == target) return true;
  for (const auto& [name, child] : dir.entries) {
    if (child->is_directory && Contains(*child, target)) return true;
  }
  return false;
}

// A path's components with "." and ".." resolved; relative paths start at
// "/".
std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return parts;
}

// A seeded choice that depends on the file, not on the order files are
// visited in, so the same seed tears the same way whatever else exists.
uint64_t TornLength(uint64_t seed, uint64_t inode, uint64_t tail) {
  uint64_t x = seed ^ (inode * 0x9E3779B97F4A7C15ull);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x % (tail + 1);
}

}  // namespace

namespace mem_env_internal {

NodePtr State::NewNode(bool is_directory, uint32_t permissions) {
  return std::make_shared<Node>(next_inode++, is_directory, permissions & 07777, Now());
}

absl::Status State::BeginChange(const std::string& what, const std::string& path) {
  if (active && mutations_left.has_value()) {
    if (*mutations_left == 0) {
      active = false;
      mutations_left.reset();
    } else {
      --*mutations_left;
    }
  }
  if (!active) {
    return PathError(FsErrorKind::kIo, what, path, "the filesystem is inactive (power cut)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Location> State::Locate(const std::string& path, const std::string& what) {
  if (path.empty()) return NotFound(what, path);
  std::vector<std::string> parts = Components(path);
  NodePtr dir = root;
  size_t first = 0;
  uint64_t id = 0;
  if (parts.size() >= 4 && parts[0] == "proc" && parts[1] == "self" && parts[2] == "fd" &&
      absl::SimpleAtoi(parts[3], &id)) {
    auto held = held_directories.find(id);
    if (held != held_directories.end()) {
      if (held->second.generation != generation) {
        return PathError(FsErrorKind::kIo, what, path,
                         "the directory handle was lost in a power cut");
      }
      dir = held->second.node;
      first = 4;
    }
  }
  if (first == parts.size()) return Location{nullptr, "", dir};
  for (size_t i = first; i + 1 < parts.size(); ++i) {
    auto it = dir->entries.find(parts[i]);
    if (it == dir->entries.end()) return NotFound(what, path);
    if (!it->second->is_directory) {
      return PathError(FsErrorKind::kNotDirectory, what, path, "not a directory");
    }
    dir = it->second;
  }
  Location location{dir, parts.back(), nullptr};
  auto it = dir->entries.find(location.name);
  if (it != dir->entries.end()) location.node = it->second;
  return location;
}

absl::StatusOr<NodePtr> State::Find(const std::string& path, const std::string& what) {
  absl::StatusOr<Location> location = Locate(path, what);
  if (!location.ok()) return location.status();
  if (location->node == nullptr) return NotFound(what, path);
  return location->node;
}

uint64_t State::Available() const {
  return capacity_bytes > used_bytes ? capacity_bytes - used_bytes : 0;
}

void State::AddLink(Node& node) {
  if (node.is_directory) return;
  if (!Live(node)) used_bytes += node.data.size();
  ++node.links;
}

void State::DropLink(Node& node) {
  if (node.is_directory) return;
  --node.links;
  if (!Live(node)) used_bytes -= node.data.size();
}

void State::AddOpen(Node& node) {
  if (!Live(node)) used_bytes += node.data.size();
  ++node.open_files;
}

void State::DropOpen(Node& node) {
  --node.open_files;
  if (!Live(node)) used_bytes -= node.data.size();
}

void State::ResizeData(Node& node, uint64_t size) {
  used_bytes -= node.data.size();
  node.data.resize(size, '\0');
  used_bytes += node.data.size();
}

void State::Attach(Node& dir, const std::string& name, NodePtr node) {
  AddLink(*node);
  NodePtr& slot = dir.entries[name];
  if (slot != nullptr) {
    DropLink(*slot);
    if (slot->is_directory) slot->removed = true;
  }
  slot = std::move(node);
  dir.modified_sec = Now();
}

void State::Detach(Node& dir, const std::string& name, bool gone) {
  auto it = dir.entries.find(name);
  if (it == dir.entries.end()) return;
  DropLink(*it->second);
  if (gone && it->second->is_directory) it->second->removed = true;
  dir.entries.erase(it);
  dir.modified_sec = Now();
}

}  // namespace mem_env_internal

namespace {

class MemFile final : public File {
 public:
  MemFile(std::shared_ptr<State> state, NodePtr node, std::string path, bool readable,
          bool writable, bool direct, uint64_t id, uint64_t generation)
      : state_(std::move(state)),
        node_(std::move(node)),
        path_(std::move(path)),
        readable_(readable),
        writable_(writable),
        direct_(direct),
        id_(id),
        generation_(generation) {}
  ~MemFile() override { Close().IgnoreError(); }

  uint64_t id() const { return id_; }
  Node& node() const { return *node_; }

  absl::Status PWrite(uint64_t offset, std::string_view data) override {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status s = Usable("write"); !s.ok()) return s;
    if (!writable_) return PathError(FsErrorKind::kIo, "write", path_, "not open for writing");
    if (direct_ && (offset % kDirectAlignment != 0 || data.size() % kDirectAlignment != 0 ||
                    reinterpret_cast<uintptr_t>(data.data()) % kDirectAlignment != 0)) {
      return PathError(FsErrorKind::kInvalid, "write", path_,
                       "direct I/O needs a 4096-aligned buffer, offset and length");
    }
    if (data.empty()) return absl::OkStatus();
    if (absl::Status s = state_->BeginChange("write", path_); !s.ok()) return s;
    // The file may grow by what is available and no more, as on a disk
    // that fills up in the middle of a write.
    const uint64_t limit = node_->data.size() + state_->Available();
    const uint64_t fits = offset >= limit ? 0 : std::min<uint64_t>(data.size(), limit - offset);
    if (fits > 0) {
      if (offset + fits > node_->data.size()) state_->ResizeData(*node_, offset + fits);
      node_->data.replace(offset, fits, data.data(), fits);
      node_->modified_sec = state_->Now();
      state_->bytes_written += fits;
    }
    if (fits < data.size()) {
      return PathError(FsErrorKind::kNoSpace, "write", path_,
                       absl::StrCat("no space left on device (", fits, " of ", data.size(),
                                    " bytes written)"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> PRead(uint64_t offset, uint64_t length) override {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status s = Usable("read"); !s.ok()) return s;
    if (!readable_) return PathError(FsErrorKind::kIo, "read", path_, "not open for reading");
    const std::string& data = node_->data;
    if (offset >= data.size()) return std::string();
    return data.substr(offset, length);
  }

  absl::Status Sync() override {
    absl::MutexLock lock(&state_->mu);
    ++state_->file_syncs;
    if (absl::Status s = Usable("fdatasync"); !s.ok()) return s;
    if (absl::Status s = state_->BeginChange("fdatasync", path_); !s.ok()) return s;
    node_->synced_data = node_->data;
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status s = Usable("truncate"); !s.ok()) return s;
    if (!writable_) {
      return PathError(FsErrorKind::kInvalid, "truncate", path_, "not open for writing");
    }
    if (absl::Status s = state_->BeginChange("truncate", path_); !s.ok()) return s;
    const uint64_t old_size = node_->data.size();
    if (size > old_size && size - old_size > state_->Available()) {
      return PathError(FsErrorKind::kNoSpace, "truncate", path_, "no space left on device");
    }
    state_->ResizeData(*node_, size);
    node_->modified_sec = state_->Now();
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Size() override {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status s = Usable("stat"); !s.ok()) return s;
    return node_->data.size();
  }

  absl::Status Close() override {
    absl::MutexLock lock(&state_->mu);
    if (closed_) return absl::OkStatus();
    closed_ = true;
    // A power cut already took the handle out of the accounting and the
    // locks; only a handle of this power-on has anything to give back.
    if (generation_ != state_->generation) return absl::OkStatus();
    // As closing an flock'ed descriptor does.
    if (node_->lock_holder == id_) node_->lock_holder = 0;
    state_->DropOpen(*node_);
    return absl::OkStatus();
  }

 private:
  absl::Status Usable(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (closed_) return PathError(FsErrorKind::kIo, what, path_, "the file is closed");
    if (generation_ != state_->generation) {
      return PathError(FsErrorKind::kIo, what, path_, "the file was lost in a power cut");
    }
    return absl::OkStatus();
  }

  const std::shared_ptr<State> state_;
  const NodePtr node_;
  const std::string path_;
  const bool readable_;
  const bool writable_;
  const bool direct_;
  const uint64_t id_;
  const uint64_t generation_;
  bool closed_ ABSL_GUARDED_BY(state_->mu) = false;
};

class MemFileLock final : public FileLock {
 public:
  explicit MemFileLock(std::unique_ptr<MemFile> file) : file_(std::move(file)) {}
  // Destroying the file closes it, which releases the lock.
  File& file() override { return *file_; }

 private:
  std::unique_ptr<MemFile> file_;
};

class MemDirectory final : public Directory {
 public:
  MemDirectory(std::shared_ptr<State> state, uint64_t id, const FileInfo& info)
      : state_(std::move(state)),
        id_(id),
        path_(absl::StrCat(kHeldDirectoryPrefix, id)),
        info_(info) {}
  ~MemDirectory() override {
    absl::MutexLock lock(&state_->mu);
    state_->held_directories.erase(id_);
  }
  const std::string& path() const override { return path_; }
  const FileInfo& info() const override { return info_; }

 private:
  const std::shared_ptr<State> state_;
  const uint64_t id_;
  const std::string path_;
  const FileInfo info_;
};

// Open without taking the mutex, for LockFile. The caller must destroy a
// file it gives up on only after releasing the mutex: closing takes it.
absl::StatusOr<std::unique_ptr<MemFile>> OpenLocked(const std::shared_ptr<State>& state,
                                                    const std::string& path, OpenMode mode,
                                                    uint32_t permissions)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
  const bool creates = mode != OpenMode::kRead && mode != OpenMode::kWriteExisting;
  const bool exclusive =
      mode == OpenMode::kCreateExclusive || mode == OpenMode::kCreateExclusiveDirect;
  absl::StatusOr<Location> location = state->Locate(path, "open");
  if (!location.ok()) return location.status();
  NodePtr node = location->node;
  if (node != nullptr) {
    if (exclusive) return PathError(FsErrorKind::kExists, "open", path, "file exists");
    if (node->is_directory) {
      return PathError(FsErrorKind::kIsDirectory, "open", path, "is a directory");
    }
    if (mode == OpenMode::kCreateOrTruncate) {
      if (absl::Status s = state->BeginChange("open", path); !s.ok()) return s;
      state->ResizeData(*node, 0);
      node->modified_sec = state->Now();
    }
  } else {
    if (!creates || location->parent->removed) return NotFound("open", path);
    if (absl::Status s = state->BeginChange("open", path); !s.ok()) return s;
    node = state->NewNode(/*is_directory=*/false, permissions);
    state->Attach(*location->parent, location->name, node);
  }
  state->AddOpen(*node);
  return std::make_unique<MemFile>(state, std::move(node), path,
                                   /*readable=*/mode != OpenMode::kWriteExisting,
                                   /*writable=*/mode != OpenMode::kRead,
                                   /*direct=*/mode == OpenMode::kCreateExclusiveDirect,
                                   state->next_handle++, state->generation);
}

}  // namespace

MemEnv::MemEnv(Clock* clock) : state_(std::make_shared<State>(clock)) {
  absl::MutexLock lock(&state_->mu);
  state_->root = state_->NewNode(/*is_directory=*/true, 0755);
}

MemEnv::~MemEnv() = default;

absl::StatusOr<std::unique_ptr<File>> MemEnv::Open(const std::string& path, OpenMode mode,
                                                   uint32_t permissions) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<std::unique_ptr<MemFile>> file = OpenLocked(state_, path, mode, permissions);
  if (!file.ok()) return file.status();
  return std::unique_ptr<File>(std::move(*file));
}

absl::Status MemEnv::Rename(const std::string& from, const std::string& to) {
  absl::MutexLock lock(&state_->mu);
  const std::string what = "rename to " + to + " of";
  absl::StatusOr<Location> source = state_->Locate(from, what);
  if (!source.ok()) return source.status();
  absl::StatusOr<Location> target = state_->Locate(to, what);
  if (!target.ok()) return target.status();
  const NodePtr node = source->node;
  if (node == nullptr) return NotFound(what, from);
  if (source->parent == nullptr || target->parent == nullptr) {
    return PathError(FsErrorKind::kBusy, what, from, "device or resource busy");
  }
  if (target->parent->removed) return NotFound(what, from);
  // Two names of one file: rename(2) does nothing and succeeds.
  if (target->node == node) return absl::OkStatus();
  if (node->is_directory) {
    if (target->node != nullptr && !target->node->is_directory) {
      return PathError(FsErrorKind::kNotDirectory, what, from, "not a directory");
    }
    if (target->node != nullptr && !target->node->entries.empty()) {
      return PathError(FsErrorKind::kNotEmpty, what, from, "directory not empty");
    }
    if (Contains(*node, target->parent.get())) {
      return PathError(FsErrorKind::kInvalid, what, from, "invalid argument");
    }
  } else if (target->node != nullptr && target->node->is_directory) {
    return PathError(FsErrorKind::kIsDirectory, what, from, "is a directory");
  }
  if (absl::Status s = state_->BeginChange(what, from); !s.ok()) return s;
  state_->Attach(*target->parent, target->name, node);
  state_->Detach(*source->parent, source->name, /*gone=*/false);
  return absl::OkStatus();
}

absl::Status MemEnv::Link(const std::string& existing, const std::string& new_path) {
  absl::MutexLock lock(&state_->mu);
  const std::string what = "link to " + new_path + " of";
  absl::StatusOr<Location> source = state_->Locate(existing, what);
  if (!source.ok()) return source.status();
  absl::StatusOr<Location> target = state_->Locate(new_path, what);
  if (!target.ok()) return target.status();
  if (source->node == nullptr) return NotFound(what, existing);
  if (source->node->is_directory) {
    return PathError(FsErrorKind::kNotPermitted, what, existing, "operation not permitted");
  }
  if (target->node != nullptr) {
    return PathError(FsErrorKind::kExists, what, existing, "file exists");
  }
  if (target->parent->removed) return NotFound(what, existing);
  if (absl::Status s = state_->BeginChange(what, existing); !s.ok()) return s;
  state_->Attach(*target->parent, target->name, source->node);
  return absl::OkStatus();
}

absl::Status MemEnv::Remove(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<Location> location = state_->Locate(path, "remove");
  if (!location.ok()) return NotFoundIsOk(location.status());
  if (location->node == nullptr) return absl::OkStatus();
  if (location->node->is_directory) {
    return PathError(FsErrorKind::kIsDirectory, "remove", path, "is a directory");
  }
  if (absl::Status s = state_->BeginChange("remove", path); !s.ok()) return s;
  state_->Detach(*location->parent, location->name, /*gone=*/true);
  return absl::OkStatus();
}

absl::Status MemEnv::SetPermissions(const std::string& path, uint32_t permissions) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "chmod");
  if (!node.ok()) return node.status();
  if (absl::Status s = state_->BeginChange("chmod", path); !s.ok()) return s;
  (*node)->permissions = permissions & 07777;
  return absl::OkStatus();
}

absl::Status MemEnv::SetModifiedTime(const std::string& path, int64_t unix_seconds) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "utimensat");
  if (!node.ok()) return node.status();
  if (absl::Status s = state_->BeginChange("utimensat", path); !s.ok()) return s;
  (*node)->modified_sec = unix_seconds;
  return absl::OkStatus();
}

absl::Status MemEnv::CreateDir(const std::string& path, uint32_t permissions) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<Location> location = state_->Locate(path, "mkdir");
  if (!location.ok()) return location.status();
  // posix_env ignores EEXIST whatever holds the name, and so does this.
  if (location->node != nullptr) return absl::OkStatus();
  if (location->parent->removed) return NotFound("mkdir", path);
  if (absl::Status s = state_->BeginChange("mkdir", path); !s.ok()) return s;
  state_->Attach(*location->parent, location->name,
                 state_->NewNode(/*is_directory=*/true, permissions));
  return absl::OkStatus();
}

absl::Status MemEnv::RemoveDir(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<Location> location = state_->Locate(path, "rmdir");
  if (!location.ok()) return NotFoundIsOk(location.status());
  const NodePtr& node = location->node;
  if (node == nullptr) return absl::OkStatus();
  if (!node->is_directory) {
    return PathError(FsErrorKind::kNotDirectory, "rmdir", path, "not a directory");
  }
  if (location->parent == nullptr) {
    return PathError(FsErrorKind::kBusy, "rmdir", path, "device or resource busy");
  }
  if (!node->entries.empty()) {
    return PathError(FsErrorKind::kNotEmpty, "rmdir", path, "directory not empty");
  }
  if (absl::Status s = state_->BeginChange("rmdir", path); !s.ok()) return s;
  state_->Detach(*location->parent, location->name, /*gone=*/true);
  return absl::OkStatus();
}

absl::Status MemEnv::SyncDir(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  ++state_->directory_syncs;
  absl::StatusOr<NodePtr> node = state_->Find(path, "open directory");
  if (!node.ok()) return node.status();
  if (!(*node)->is_directory) {
    return PathError(FsErrorKind::kNotDirectory, "open directory", path, "not a directory");
  }
  if (absl::Status s = state_->BeginChange("fsync directory", path); !s.ok()) return s;
  (*node)->synced_entries = (*node)->entries;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemEnv::ListDir(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "list");
  if (!node.ok()) return node.status();
  if (!(*node)->is_directory) {
    return PathError(FsErrorKind::kNotDirectory, "list", path, "not a directory");
  }
  std::vector<std::string> names;
  names.reserve((*node)->entries.size());
  for (const auto& [name, child] : (*node)->entries) names.push_back(name);
  return names;
}

absl::StatusOr<std::unique_ptr<Directory>> MemEnv::OpenDirectory(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "open directory");
  if (!node.ok()) return node.status();
  if (!(*node)->is_directory) {
    return PathError(FsErrorKind::kNotDirectory, "open directory", path, "not a directory");
  }
  const uint64_t id = state_->next_handle++;
  state_->held_directories[id] = State::HeldDirectory{*node, state_->generation};
  return std::unique_ptr<Directory>(new MemDirectory(state_, id, InfoOf(**node)));
}

absl::StatusOr<FileInfo> MemEnv::Stat(const std::string& path, bool follow_symlinks) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "stat");
  if (!node.ok()) return node.status();
  return InfoOf(**node);
}

bool MemEnv::Exists(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  return state_->Find(path, "access").ok();
}

absl::StatusOr<SpaceInfo> MemEnv::StatFs(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "statvfs");
  if (!node.ok()) return node.status();
  SpaceInfo space;
  space.capacity_bytes = state_->capacity_bytes;
  space.available_bytes = state_->Available();
  return space;
}

absl::Status MemEnv::SyncFilesystem(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "open");
  if (!node.ok()) return node.status();
  if (absl::Status s = state_->BeginChange("syncfs", path); !s.ok()) return s;
  // Unlinked files still open have no name to come back under, so the
  // tree from "/" is all there is to make durable.
  std::deque<Node*> queue = {state_->root.get()};
  while (!queue.empty()) {
    Node* dir = queue.front();
    queue.pop_front();
    dir->synced_entries = dir->entries;
    for (const auto& [name, child] : dir->entries) {
      if (child->is_directory) {
        queue.push_back(child.get());
      } else {
        child->synced_data = child->data;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileLock>> MemEnv::LockFile(const std::string& path,
                                                           uint32_t permissions) {
  // Declared before the lock so that a file given up on (busy) is closed
  // after the mutex is released: closing takes it.
  absl::StatusOr<std::unique_ptr<MemFile>> file;
  absl::MutexLock lock(&state_->mu);
  file = OpenLocked(state_, path, OpenMode::kReadWrite, permissions);
  if (!file.ok()) return file.status();
  Node& node = (*file)->node();
  if (node.lock_holder != 0) {
    return PathError(FsErrorKind::kBusy, "lock", path, "resource temporarily unavailable");
  }
  node.lock_holder = (*file)->id();
  return std::unique_ptr<FileLock>(new MemFileLock(std::move(*file)));
}

absl::StatusOr<bool> MemEnv::IsLocked(const std::string& path) {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<NodePtr> node = state_->Find(path, "open");
  if (!node.ok()) {
    if (GetFsErrorKind(node.status()) == FsErrorKind::kNotFound) return false;
    return node.status();
  }
  return (*node)->lock_holder != 0;
}

void MemEnv::DropUnsyncedData(uint64_t seed) {
  absl::MutexLock lock(&state_->mu);
  ++state_->generation;
  state_->used_bytes = 0;
  // Breadth-first from "/" in name order, so which name a directory keeps
  // when the synced entries show it twice is the same every run.
  std::set<const Node*> directories_seen = {state_->root.get()};
  std::set<const Node*> files_seen;
  std::deque<Node*> queue = {state_->root.get()};
  while (!queue.empty()) {
    Node* dir = queue.front();
    queue.pop_front();
    dir->entries = dir->synced_entries;
    dir->removed = false;
    for (auto it = dir->entries.begin(); it != dir->entries.end();) {
      Node& child = *it->second;
      if (child.is_directory) {
        if (!directories_seen.insert(&child).second) {
          it = dir->entries.erase(it);
          continue;
        }
        queue.push_back(&child);
      } else {
        if (files_seen.insert(&child).second) {
          std::string kept = child.synced_data;
          if (seed != 0 && child.data.size() > kept.size()) {
            const uint64_t tail = child.data.size() - kept.size();
            kept.append(child.data, kept.size(), TornLength(seed, child.inode, tail));
          }
          child.data = kept;
          child.synced_data = std::move(kept);
          // The handles and locks of before the cut count no more.
          child.links = 0;
          child.open_files = 0;
          child.lock_holder = 0;
          state_->used_bytes += child.data.size();
        }
        ++child.links;
      }
      ++it;
    }
    // After the restart, what is there is what is on disk.
    dir->synced_entries = dir->entries;
  }
}

void MemEnv::SetFilesystemActive(bool active) {
  absl::MutexLock lock(&state_->mu);
  state_->active = active;
  state_->mutations_left.reset();
}

void MemEnv::DeactivateAfterMutations(uint64_t count) {
  absl::MutexLock lock(&state_->mu);
  state_->mutations_left = count;
}

void MemEnv::SetCapacity(uint64_t bytes) {
  absl::MutexLock lock(&state_->mu);
  state_->capacity_bytes = bytes;
}

uint64_t MemEnv::file_syncs() const {
  absl::MutexLock lock(&state_->mu);
  return state_->file_syncs;
}

uint64_t MemEnv::directory_syncs() const {
  absl::MutexLock lock(&state_->mu);
  return state_->directory_syncs;
}

uint64_t MemEnv::bytes_written() const {
  absl::MutexLock lock(&state_->mu);
  return state_->bytes_written;
}

}  // namespace cairn

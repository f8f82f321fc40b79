// NamespaceStore on RocksDB (rocksdb_namespace.h). Record formats:
// records.h; extent editing: extent_editor.h.
#include "backend/namespace/rocksdb_namespace.h"

#include <sys/stat.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/base/coding.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/namespace/extent_editor.h"
#include "backend/namespace/namespace_check.h"
#include "backend/namespace/records.h"
#include "backend/namespace/namespace_store.h"
#include "backend/namespace/rocksdb_env.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_buffer_manager.h"

namespace cairn {
namespace {

enum Cf {
  kInodes,
  kDentries,
  kCookies,
  kXattrs,
  kExtents,
  kBlobs,
  kGc,
  kOrphans,
  kMeta,
  kCfCount,
};
const char* const kCfNames[kCfCount] = {
    "inodes", "dentries", "dircookies", "xattrs", "extents",
    "blobs",  "gc",       "orphans",    "meta"};
// The default column family is unused but RocksDB requires it.

constexpr char kNextInodeKey[] = "c:next_ino";
constexpr char kNextBlobKey[] = "c:next_blob";
constexpr char kInodeCountKey[] = "c:inode_count";
constexpr char kDataBytesKey[] = "c:data_bytes";
constexpr char kVolumeMetaPrefix[] = "v:";
constexpr char kRepairPrefix[] = "r:";
// Files that lost a write to damage: "d:" + inode key -> why.
constexpr char kDamagePrefix[] = "d:";
// Replication queue: "p:" + blob key -> queued time (fixed64) + length (fixed64).
constexpr char kReplicationPrefix[] = "p:";
// S3 multipart uploads (MultipartUploadRecord): "mu:" + id -> the upload;
// "mp:" + id + "/" + big-endian number -> a part; "mh:" + inode key -> the
// id of the upload holding that part inode, which keeps the orphan from
// being freed.
constexpr char kUploadPrefix[] = "mu:";
constexpr char kUploadPartPrefix[] = "mp:";
constexpr char kHeldPartPrefix[] = "mh:";
// The replica target whose existing blobs have all been queued.
constexpr char kReplicaTargetKey[] = "c:replica_target";
constexpr size_t kMaxXattrValueBytes = 64 << 10;
// Per file, as ext4 bounds them by its block: the names (each with its
// NUL) fit the 64 KiB listxattr(2) can return (XATTR_LIST_MAX), so every
// stored xattr can be listed and copied (cp -a silently dropped 20,000 of
// them), and names and values together stay small enough to copy whole.
constexpr size_t kMaxXattrListBytes = 64 << 10;
constexpr size_t kMaxXattrBytesPerFile = 4 << 20;

rocksdb::Slice S(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view V(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  FsErrorKind kind = s.IsNoSpace() ? FsErrorKind::kNoSpace : FsErrorKind::kIo;
  return FsError(kind, absl::StrCat("namespace database: ",
                                    absl::string_view(what.data(), what.size()),
                                    ": ", s.ToString()));
}

absl::Status NotFound(std::string_view what) {
  return FsError(FsErrorKind::kNotFound, what);
}

bool IsDir(uint32_t mode) { return S_ISDIR(mode); }

absl::Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return FsError(FsErrorKind::kInvalid, "invalid name");
  }
  if (name.size() > kMaxNameBytes) {
    return FsError(FsErrorKind::kNameTooLong, "name longer than 255 bytes");
  }
  return absl::OkStatus();
}

// One mutation: everything it reads and changes, committed as one batch.
// Inodes are cached so an operation that touches an inode twice (a rename
// within one directory) sees its own changes.
struct Txn {
  rocksdb::WriteBatch batch;
  std::map<InodeId, InodeRecord> inodes;
  std::set<InodeId> dirty;
  ExtentChanges extent_changes;
  int64_t inode_count_delta = 0;
  int64_t data_bytes_delta = 0;
  bool next_inode_changed = false;
};

class RocksNamespace final : public NamespaceStore {
 public:
  RocksNamespace(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
                 std::vector<rocksdb::ColumnFamilyHandle*> handles,
                 const NamespaceOptions& options)
      : env_(std::move(env)),
        db_(std::move(db)),
        handles_(std::move(handles)),
        options_(options) {}

  ~RocksNamespace() override {
    // Everything into tables, so that the log a clean stop leaves behind is
    // empty: a log is only replayed after a crash, and what replay cannot
    // read is lost (tables carry block checksums that every read checks).
    if (!options_.read_only) {
      rocksdb::Status flushed = db_->Flush(rocksdb::FlushOptions(), handles_);
      if (!flushed.ok()) {
        LogWarning("namespace: writing the log into tables at close failed (%s); the log "
                   "keeps the changes and the next open replays it",
                   flushed.ToString());
      }
    }
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close().PermitUncheckedError();
  }

  absl::Status Init() {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = LoadCounter(kNextInodeKey, 2, &next_inode_); !s.ok()) return s;
    if (absl::Status s = LoadCounter(kNextBlobKey, 1, &next_blob_); !s.ok()) return s;
    if (absl::Status s = LoadCounter(kInodeCountKey, 0, &inode_count_); !s.ok()) return s;
    if (absl::Status s = LoadCounter(kDataBytesKey, 0, &data_bytes_); !s.ok()) return s;
    absl::StatusOr<std::optional<InodeRecord>> root = ReadInode(kRootInode);
    if (!root.ok()) return root.status();
    if (root->has_value()) return absl::OkStatus();
    if (!options_.create_if_missing) {
      return FsError(FsErrorKind::kIo,
                     "namespace database has no root directory; run cairn fsck");
    }
    Txn txn;
    InodeRecord record;
    record.attr.ino = kRootInode;
    record.attr.mode = S_IFDIR | 0755;
    record.attr.nlink = 2;
    record.attr.parent = kRootInode;
    Timespec now = options_.clock->NowTimespec();
    record.attr.atime = record.attr.mtime = record.attr.ctime =
        record.attr.btime = now;
    txn.inodes[kRootInode] = record;
    txn.dirty.insert(kRootInode);
    txn.inode_count_delta = 1;
    return Commit(txn);
  }

  // --- Lookups ---------------------------------------------------------

  absl::StatusOr<InodeAttr> Lookup(InodeId parent,
                                   std::string_view name) override {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    absl::StatusOr<std::optional<DentryValue>> entry = ReadDentry(parent, name);
    if (!entry.ok()) return entry.status();
    if (!entry->has_value()) {
      absl::StatusOr<InodeRecord> dir = MustReadInode(parent);
      if (!dir.ok()) return dir.status();
      if (!IsDir(dir->attr.mode)) {
        return FsError(FsErrorKind::kNotDirectory, "not a directory");
      }
      return NotFound("no such entry");
    }
    return GetAttr((*entry)->ino);
  }

  absl::StatusOr<InodeAttr> GetAttr(InodeId ino) override {
    absl::StatusOr<InodeRecord> record = MustReadInode(ino);
    if (!record.ok()) return record.status();
    return record->attr;
  }

  absl::StatusOr<std::string> ReadLink(InodeId ino) override {
    absl::StatusOr<InodeRecord> record = MustReadInode(ino);
    if (!record.ok()) return record.status();
    if (!S_ISLNK(record->attr.mode)) {
      return FsError(FsErrorKind::kInvalid, "not a symlink");
    }
    return record->symlink_target;
  }

  absl::Status ReadDir(InodeId dir, uint64_t after_cookie,
                       const std::function<bool(const DirEntry&)>& fn) override {
    std::string prefix = DentryPrefix(dir);
    InodeScope scope(dir);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(scope.options(), handles_[kCookies]));
    for (it->Seek(S(CookieKey(dir, after_cookie + 1))); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 8) != prefix) break;
      absl::StatusOr<DirEntry> entry =
          DecodeCookieEntry(KeyNumberAt(key, 8), V(it->value()));
      if (!entry.ok()) return entry.status();
      if (!fn(*entry)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "listing a directory");
  }

  absl::Status ScanDir(InodeId dir, std::string_view start,
                       const std::function<bool(const DirEntry&)>& fn) override {
    // Entries are keyed by parent and name: in name order already.
    InodeScope scope(dir);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(scope.options(), handles_[kDentries]));
    for (it->Seek(S(DentryKey(dir, start))); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      absl::StatusOr<DentryValue> value = DecodeDentry(V(it->value()));
      if (!value.ok()) return value.status();
      DirEntry entry;
      entry.name = std::string(key.substr(DentryPrefix(dir).size()));
      entry.ino = value->ino;
      entry.mode = value->mode;
      entry.cookie = value->cookie;
      if (!fn(entry)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "scanning a directory");
  }

  // --- Namespace mutations --------------------------------------------

  absl::StatusOr<InodeAttr> MakeNode(InodeId parent, std::string_view name,
                                     const NewNode& node,
                                     const Caller& caller) override {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    if (S_ISLNK(node.mode) &&
        (node.symlink_target.empty() || node.symlink_target.size() > 4095)) {
      return FsError(FsErrorKind::kNameTooLong, "symlink target length");
    }
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> dir = LoadDir(txn, parent);
    if (!dir.ok()) return dir.status();
    if (absl::Status s = MustBeAbsent(parent, name); !s.ok()) return s;
    Timespec now = options_.clock->NowTimespec();
    InodeRecord record;
    record.attr.ino = next_inode_++;
    txn.next_inode_changed = true;
    record.attr.mode = node.mode;
    record.attr.uid = caller.uid;
    record.attr.gid = caller.gid;
    record.attr.rdev = node.rdev;
    record.attr.atime = record.attr.mtime = record.attr.ctime =
        record.attr.btime = now;
    if ((*dir)->attr.mode & S_ISGID) {
      record.attr.gid = (*dir)->attr.gid;
      if (IsDir(node.mode)) record.attr.mode |= S_ISGID;
    }
    if (IsDir(node.mode)) {
      record.attr.nlink = 2;
      record.attr.parent = parent;
      (*dir)->attr.nlink++;
    } else {
      record.attr.nlink = 1;
    }
    if (S_ISLNK(node.mode)) {
      record.symlink_target = node.symlink_target;
      record.attr.size = node.symlink_target.size();
    }
    AddEntry(txn, **dir, name, record.attr.ino, record.attr.mode);
    Touch(**dir, now, /*modified=*/true);
    InodeId ino = record.attr.ino;
    txn.inodes[ino] = std::move(record);
    txn.dirty.insert(ino);
    txn.inode_count_delta = 1;
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[ino].attr;
  }

  absl::StatusOr<InodeAttr> MakeOrphan(InodeId parent, const NewNode& node,
                                       const Caller& caller) override {
    if (!S_ISREG(node.mode)) {
      return FsError(FsErrorKind::kInvalid, "only a regular file can be made without a name");
    }
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> dir = LoadDir(txn, parent);
    if (!dir.ok()) return dir.status();
    Timespec now = options_.clock->NowTimespec();
    InodeRecord record;
    record.attr.ino = next_inode_++;
    txn.next_inode_changed = true;
    record.attr.mode = node.mode;
    record.attr.uid = caller.uid;
    record.attr.gid = ((*dir)->attr.mode & S_ISGID) ? (*dir)->attr.gid : caller.gid;
    record.attr.atime = record.attr.mtime = record.attr.ctime = record.attr.btime = now;
    record.attr.nlink = 0;
    InodeId ino = record.attr.ino;
    txn.batch.Put(handles_[kOrphans], S(InodeKey(ino)), "");
    txn.inodes[ino] = std::move(record);
    txn.dirty.insert(ino);
    txn.inode_count_delta = 1;
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[ino].attr;
  }

  absl::StatusOr<std::optional<InodeAttr>> Publish(InodeId ino, InodeId parent,
                                                   std::string_view name,
                                                   const PublishCondition& condition,
                                                   const ReleaseCheck& release_now) override {
    return PublishWith(ino, parent, name, condition, release_now, {});
  }

  // Publish, with `also` staging more into its commit.
  absl::StatusOr<std::optional<InodeAttr>> PublishWith(
      InodeId ino, InodeId parent, std::string_view name, const PublishCondition& condition,
      const ReleaseCheck& release_now, const std::function<absl::Status(Txn&)>& also) {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> file = Load(txn, ino);
    if (!file.ok()) return file.status();
    if (!S_ISREG((*file)->attr.mode) || (*file)->attr.nlink != 0) {
      return FsError(FsErrorKind::kInvalid, "only a nameless regular file can be published");
    }
    absl::StatusOr<InodeRecord*> dir = LoadDir(txn, parent);
    if (!dir.ok()) return dir.status();
    absl::StatusOr<std::optional<DentryValue>> existing = ReadDentry(parent, name);
    if (!existing.ok()) return existing.status();
    if (existing->has_value() && IsDir((*existing)->mode)) {
      return FsError(FsErrorKind::kIsDirectory, "a directory has that name");
    }
    if (existing->has_value() && !S_ISREG((*existing)->mode)) {
      return FsError(FsErrorKind::kExists, "a name that is not a regular file is there");
    }
    Timespec now = options_.clock->NowTimespec();
    std::optional<InodeId> replaced;
    switch (condition.kind) {
      case PublishCondition::Kind::kAny:
        break;
      case PublishCondition::Kind::kMustBeAbsent:
        if (existing->has_value()) return FsError(FsErrorKind::kExists, "the name is taken");
        break;
      case PublishCondition::Kind::kMustBe:
        if (!existing->has_value()) return NotFound("no file has that name");
        if ((*existing)->ino != condition.ino) {
          return FsError(FsErrorKind::kStale, "another file has that name");
        }
        break;
    }
    if (existing->has_value()) {
      const DentryValue target = **existing;
      absl::StatusOr<InodeRecord*> victim = Load(txn, target.ino);
      if (!victim.ok()) return victim.status();
      if (condition.kind == PublishCondition::Kind::kMustBe &&
          !((*victim)->attr.ctime == condition.ctime)) {
        return FsError(FsErrorKind::kStale, "the file changed since it was read");
      }
      DeleteEntry(txn, parent, name, target.cookie);
      DropLink(txn, **victim, now);
      if (absl::Status s = FreeIfReleasable(txn, **victim, release_now); !s.ok()) return s;
      replaced = target.ino;
    }
    txn.batch.Delete(handles_[kOrphans], S(InodeKey(ino)));
    (*file)->attr.nlink = 1;
    (*file)->attr.ctime = now;
    AddEntry(txn, **dir, name, ino, (*file)->attr.mode);
    Touch(**dir, now, true);
    if (also) {
      if (absl::Status s = also(txn); !s.ok()) return s;
    }
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    if (replaced) return std::optional<InodeAttr>(txn.inodes[*replaced].attr);
    return std::optional<InodeAttr>();
  }

  absl::StatusOr<InodeAttr> Concatenate(InodeId target,
                                        absl::Span<const InodeId> sources) override {
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> file = Load(txn, target);
    if (!file.ok()) return file.status();
    InodeAttr& attr = (*file)->attr;
    if (!S_ISREG(attr.mode) || attr.size != 0) {
      return FsError(FsErrorKind::kInvalid, "only an empty regular file can be filled");
    }
    uint64_t size = 0;
    std::vector<Extent> shifted;
    for (InodeId source : sources) {
      if (source == target) return FsError(FsErrorKind::kInvalid, "a file into itself");
      absl::StatusOr<InodeRecord> part = MustReadInode(source);  // read, not changed
      if (!part.ok()) return part.status();
      const InodeAttr& from = part->attr;
      if (!S_ISREG(from.mode)) return FsError(FsErrorKind::kInvalid, "a part is not a file");
      if (SaturatingAdd(size, from.size) > kMaxFileBytes) {
        return FsError(FsErrorKind::kFileTooBig, "file size limit");
      }
      absl::StatusOr<std::vector<Extent>> extents =
          ReadExtents(db_.get(), handles_[kExtents], source, 0, from.size, /*clip=*/true);
      if (!extents.ok()) return extents.status();
      for (Extent& extent : *extents) {
        extent.file_offset += size;
        shifted.push_back(std::move(extent));
      }
      size += from.size;
    }
    absl::Status edited = EditExtents(txn, attr, 0, size, [&](ExtentEditor& editor) {
      for (const Extent& extent : shifted) editor.Insert(extent);
    });
    if (!edited.ok()) return edited;
    attr.size = size;
    attr.mtime = attr.ctime = options_.clock->NowTimespec();
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[target].attr;
  }

  absl::StatusOr<InodeAttr> Link(InodeId ino, InodeId new_parent,
                                 std::string_view new_name) override {
    if (absl::Status s = CheckName(new_name); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> target = Load(txn, ino);
    if (!target.ok()) return target.status();
    if (IsDir((*target)->attr.mode)) {
      return FsError(FsErrorKind::kNotPermitted, "hard link to a directory");
    }
    absl::StatusOr<InodeRecord*> dir = LoadDir(txn, new_parent);
    if (!dir.ok()) return dir.status();
    if (absl::Status s = MustBeAbsent(new_parent, new_name); !s.ok()) return s;
    if ((*target)->attr.nlink >= kMaxLinks) {
      return FsError(FsErrorKind::kTooManyLinks, "too many links");
    }
    Timespec now = options_.clock->NowTimespec();
    if ((*target)->attr.nlink == 0) {
      txn.batch.Delete(handles_[kOrphans], S(InodeKey(ino)));
    }
    (*target)->attr.nlink++;
    (*target)->attr.ctime = now;
    AddEntry(txn, **dir, new_name, ino, (*target)->attr.mode);
    Touch(**dir, now, true);
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[ino].attr;
  }

  absl::StatusOr<InodeAttr> Unlink(InodeId parent, std::string_view name,
                                   const ReleaseCheck& release_now) override {
    return RemoveEntry(parent, name, /*want_dir=*/false, release_now);
  }

  absl::StatusOr<InodeAttr> Rmdir(InodeId parent, std::string_view name,
                                  const ReleaseCheck& release_now) override {
    return RemoveEntry(parent, name, /*want_dir=*/true, release_now);
  }

  absl::StatusOr<std::optional<InodeAttr>> Rename(
      InodeId old_parent, std::string_view old_name, InodeId new_parent,
      std::string_view new_name, RenameMode mode, const ReleaseCheck& release_now) override;

  absl::StatusOr<InodeAttr> SetAttr(InodeId ino,
                                    const SetAttrRequest& request) override {
    bool echo = false;
    return MutateInode(ino, [&](Txn& txn, InodeAttr& attr) -> absl::Status {
      if ((echo = IsCtimeEcho(attr, request))) return absl::OkStatus();
      Timespec now = options_.clock->NowTimespec();
      if (request.mode) attr.mode = (attr.mode & S_IFMT) | (*request.mode & 07777);
      if (request.uid) attr.uid = *request.uid;
      if (request.gid) attr.gid = *request.gid;
      if (request.size) {
        if (IsDir(attr.mode)) {
          return FsError(FsErrorKind::kIsDirectory, "truncate of a directory");
        }
        if (*request.size > kMaxFileBytes) {
          return FsError(FsErrorKind::kFileTooBig, "file size limit");
        }
        if (*request.size < attr.size) {
          absl::Status s = EditExtents(txn, attr, *request.size, UINT64_MAX,
                                       [&](ExtentEditor& editor) {
                                         editor.Cut(*request.size, UINT64_MAX);
                                       });
          if (!s.ok()) return s;
        }
        if (*request.size != attr.size) attr.mtime = now;
        attr.size = *request.size;
        if (request.journal_mark) {
          InodeRecord& record = txn.inodes[ino];
          record.journal_mark = std::max(record.journal_mark, *request.journal_mark);
        }
      }
      if (request.atime) attr.atime = *request.atime;
      if (request.mtime) attr.mtime = *request.mtime;
      attr.ctime = request.ctime ? *request.ctime : now;
      return absl::OkStatus();
    }, &echo);
  }

  // With the writeback cache the kernel keeps ctime itself: after a rename
  // or unlink it sets its own (coarse) clock's time and sends it back in a
  // SETATTR of mtime and ctime, the mtime unchanged. The commit that made
  // the change already set ctime to within a tick of that; storing the
  // kernel's copy would cost a commit per rename and unlink for a
  // difference of milliseconds.
  static bool IsCtimeEcho(const InodeAttr& stored, const SetAttrRequest& request) {
    if (request.mode || request.uid || request.gid || request.size || !request.ctime) {
      return false;
    }
    if (request.atime && !(*request.atime == stored.atime)) return false;
    if (request.mtime && !(*request.mtime == stored.mtime)) return false;
    const int64_t kWindowNs = 1'000'000'000;
    int64_t delta = (request.ctime->sec - stored.ctime.sec) * 1'000'000'000 +
                    (static_cast<int64_t>(request.ctime->nsec) - stored.ctime.nsec);
    return delta > -kWindowNs && delta < kWindowNs;
  }

  absl::StatusOr<uint64_t> JournalMark(InodeId ino) override {
    absl::StatusOr<std::optional<InodeRecord>> record = ReadInode(ino);
    if (!record.ok()) return record.status();
    if (!record->has_value()) return NotFound("no such inode");
    return (*record)->journal_mark;
  }

  absl::Status ReleaseInode(InodeId ino) override {
    absl::MutexLock lock(&mu_);
    return ReleaseLocked(ino);
  }

  absl::StatusOr<uint64_t> ReleaseAllOrphans() override {
    std::vector<InodeId> orphans;
    {
      std::unique_ptr<rocksdb::Iterator> it(
          db_->NewIterator(rocksdb::ReadOptions(), handles_[kOrphans]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        orphans.push_back(KeyNumberAt(V(it->key()), 0));
      }
      if (absl::Status s = FromRocks(it->status(), "listing orphans"); !s.ok()) {
        return s;
      }
    }
    absl::MutexLock lock(&mu_);
    uint64_t released = 0;
    for (InodeId ino : orphans) {
      // Parts of S3 uploads under way stay for the upload to finish.
      absl::StatusOr<bool> held = HeldByUpload(ino);
      if (!held.ok()) return held.status();
      if (*held) continue;
      if (absl::Status s = ReleaseLocked(ino); !s.ok()) return s;
      ++released;
    }
    return released;
  }

  // --- Extended attributes --------------------------------------------

  absl::Status SetXattr(InodeId ino, std::string_view name,
                        std::string_view value, XattrMode mode) override {
    if (name.empty()) return FsError(FsErrorKind::kInvalid, "empty xattr name");
    if (name.size() > kMaxNameBytes || value.size() > kMaxXattrValueBytes) {
      return FsError(FsErrorKind::kRange, "xattr name or value too long");
    }
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> record = Load(txn, ino);
    if (!record.ok()) return record.status();
    std::string existing;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kXattrs],
                                   S(XattrKey(ino, name)), &existing);
    if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading an xattr");
    if (mode == XattrMode::kCreateOnly && got.ok()) {
      return FsError(FsErrorKind::kExists, "xattr exists");
    }
    if (mode == XattrMode::kReplaceOnly && got.IsNotFound()) {
      return FsError(FsErrorKind::kNoAttribute, "no such xattr");
    }
    const bool new_name = got.IsNotFound();
    const size_t growth = (new_name ? name.size() : 0) +
                          (value.size() > existing.size() ? value.size() - existing.size() : 0);
    if (growth > 0) {
      const size_t list_growth = new_name ? name.size() + 1 : 0;
      if (absl::Status s = CheckXattrRoom(ino, list_growth, growth); !s.ok()) return s;
    }
    txn.batch.Put(handles_[kXattrs], S(XattrKey(ino, name)), S(value));
    (*record)->attr.ctime = options_.clock->NowTimespec();
    return Commit(txn);
  }

  absl::StatusOr<std::string> GetXattr(InodeId ino,
                                       std::string_view name) override {
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kXattrs],
                                   S(XattrKey(ino, name)), &value);
    if (got.IsNotFound()) {
      absl::StatusOr<InodeRecord> record = MustReadInode(ino);
      if (!record.ok()) return record.status();
      return FsError(FsErrorKind::kNoAttribute, "no such xattr");
    }
    if (absl::Status s = FromRocks(got, "reading an xattr"); !s.ok()) return s;
    return value;
  }

  // ENOSPC when `ino`'s xattrs cannot take `list_growth` more bytes of the
  // name list and `growth` more of names and values.
  absl::Status CheckXattrRoom(InodeId ino, size_t list_growth, size_t growth) {
    size_t list_bytes = 0, total_bytes = 0;
    std::string prefix = InodeKey(ino);
    InodeScope scope(ino);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scope.options(), handles_[kXattrs]));
    for (it->Seek(S(prefix)); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 8) != prefix) break;
      list_bytes += key.size() - 8 + 1;
      total_bytes += key.size() - 8 + it->value().size();
    }
    if (absl::Status s = FromRocks(it->status(), "listing xattrs"); !s.ok()) return s;
    if (list_bytes + list_growth > kMaxXattrListBytes ||
        total_bytes + growth > kMaxXattrBytesPerFile) {
      return FsError(FsErrorKind::kNoSpace,
                     absl::StrCat("the file's extended attributes are full (names ", list_bytes,
                                  " of ", kMaxXattrListBytes, " bytes, names and values ",
                                  total_bytes, " of ", kMaxXattrBytesPerFile, ")"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListXattr(InodeId ino) override {
    absl::StatusOr<InodeRecord> record = MustReadInode(ino);
    if (!record.ok()) return record.status();
    std::vector<std::string> names;
    std::string prefix = InodeKey(ino);
    InodeScope scope(ino);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(scope.options(), handles_[kXattrs]));
    for (it->Seek(S(prefix)); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 8) != prefix) break;
      names.emplace_back(key.substr(8));
    }
    if (absl::Status s = FromRocks(it->status(), "listing xattrs"); !s.ok()) return s;
    return names;
  }

  absl::Status RemoveXattr(InodeId ino, std::string_view name) override {
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> record = Load(txn, ino);
    if (!record.ok()) return record.status();
    std::string existing;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kXattrs],
                                   S(XattrKey(ino, name)), &existing);
    if (got.IsNotFound()) return FsError(FsErrorKind::kNoAttribute, "no such xattr");
    if (absl::Status s = FromRocks(got, "reading an xattr"); !s.ok()) return s;
    txn.batch.Delete(handles_[kXattrs], S(XattrKey(ino, name)));
    (*record)->attr.ctime = options_.clock->NowTimespec();
    return Commit(txn);
  }

  // --- File data layout ------------------------------------------------

  absl::StatusOr<std::vector<Extent>> GetExtents(InodeId ino, uint64_t offset,
                                                 uint64_t length) override {
    return ReadExtents(db_.get(), handles_[kExtents], ino, offset,
                       length == 0 ? offset : SaturatingAdd(offset, length),
                       /*clip=*/true);
  }

  using NamespaceStore::CommitWrite;
  absl::StatusOr<InodeAttr> CommitWrite(InodeId ino,
                                        absl::Span<const NewBlob> new_blobs,
                                        absl::Span<const Extent> writes,
                                        uint64_t journal_mark) override {
    return MutateInode(ino, [&](Txn& txn, InodeAttr& attr) -> absl::Status {
      if (!S_ISREG(attr.mode)) {
        return FsError(FsErrorKind::kInvalid, "data written to a non-file");
      }
      InodeRecord& record = txn.inodes[ino];
      record.journal_mark = std::max(record.journal_mark, journal_mark);
      StageNewBlobs(txn, ino, new_blobs);
      uint64_t lo = UINT64_MAX, hi = 0;
      for (const Extent& w : writes) {
        if (w.length == 0) continue;
        if (SaturatingAdd(w.file_offset, w.length) > kMaxFileBytes) {
          return FsError(FsErrorKind::kFileTooBig, "file size limit");
        }
        lo = std::min(lo, w.file_offset);
        hi = std::max(hi, w.file_offset + w.length);
      }
      if (lo >= hi) return absl::OkStatus();
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      for (const Extent& w : writes) ranges.emplace_back(w.file_offset, w.length);
      absl::StatusOr<std::vector<Extent>> original = ExtentsUnder(ino, ranges);
      if (!original.ok()) return original.status();
      ExtentEditor editor(std::move(*original));
      for (const Extent& w : writes) {
        if (w.length > 0) editor.Insert(w);
      }
      int64_t delta = editor.Stage(ino, &txn.batch, handles_[kExtents], &txn.extent_changes);
      attr.allocated_bytes =
          static_cast<uint64_t>(static_cast<int64_t>(attr.allocated_bytes) + delta);
      txn.data_bytes_delta += delta;
      absl::Status s = absl::OkStatus();
      // Times are not touched: data is committed long after write(2), and
      // the write's own time reaches us through setattr (see fs/).
      attr.size = std::max(attr.size, hi);
      return s;
    });
  }

  absl::StatusOr<InodeAttr> PunchHole(InodeId ino, uint64_t offset,
                                      uint64_t length) override {
    return MutateInode(ino, [&](Txn& txn, InodeAttr& attr) -> absl::Status {
      uint64_t end = std::min(SaturatingAdd(offset, length), attr.size);
      attr.mtime = attr.ctime = options_.clock->NowTimespec();
      if (offset >= end) return absl::OkStatus();
      return EditExtents(txn, attr, offset, end,
                         [&](ExtentEditor& e) { e.Cut(offset, end); });
    });
  }

  absl::StatusOr<InodeAttr> Allocate(InodeId ino, uint64_t offset,
                                     uint64_t length) override {
    return MutateInode(ino, [&](Txn&, InodeAttr& attr) -> absl::Status {
      uint64_t end = SaturatingAdd(offset, length);
      if (end > kMaxFileBytes) return FsError(FsErrorKind::kFileTooBig, "file size limit");
      if (end > attr.size) {
        attr.size = end;
        attr.mtime = attr.ctime = options_.clock->NowTimespec();
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<BlobRecord> GetBlob(BlobId id) override {
    absl::StatusOr<StoredBlob> blob = ReadStoredBlob(id);
    if (!blob.ok()) return blob.status();
    return blob->record;
  }

  // The stored record of blob `id`; NotFound if it has none.
  absl::StatusOr<StoredBlob> ReadStoredBlob(BlobId id) {
    std::string value;
    rocksdb::Status got =
        db_->Get(rocksdb::ReadOptions(), handles_[kBlobs], S(BlobKey(id)), &value);
    if (got.IsNotFound()) return NotFound(absl::StrCat("no blob ", id));
    if (absl::Status s = FromRocks(got, "reading a blob record"); !s.ok()) return s;
    return DecodeBlob(value);
  }

  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> CompactionCandidates(
      size_t max, double max_live_ratio) override {
    std::vector<std::pair<BlobId, BlobRecord>> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlobs]));
    for (it->SeekToFirst(); it->Valid() && out.size() < max; it->Next()) {
      absl::StatusOr<StoredBlob> blob = DecodeBlob(V(it->value()));
      if (!blob.ok()) return blob.status();
      const BlobRecord& r = blob->record;
      // Remote-only blobs stay out: compacting them would fetch cold data
      // back to the local disks.
      if (r.owner == 0 || r.refcount == 0 || r.length == 0 ||
          InRemoteTierOnly(r.location)) {
        continue;
      }
      if (static_cast<double>(r.live_bytes) > max_live_ratio * static_cast<double>(r.length)) {
        continue;
      }
      out.emplace_back(KeyNumberAt(V(it->key()), 0), r);
    }
    if (absl::Status s = FromRocks(it->status(), "listing blobs"); !s.ok()) return s;
    return out;
  }

  absl::Status RelocateExtents(InodeId ino, absl::Span<const NewBlob> new_blobs,
                               absl::Span<const Relocation> moves) override {
    return MutateInode(ino, [&](Txn& txn, InodeAttr& attr) -> absl::Status {
      if (!S_ISREG(attr.mode)) return FsError(FsErrorKind::kInvalid, "not a file");
      StageNewBlobs(txn, ino, new_blobs);
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      for (const Relocation& move : moves) ranges.emplace_back(move.file_offset, move.length);
      absl::StatusOr<std::vector<Extent>> original = ExtentsUnder(ino, ranges);
      if (!original.ok()) return original.status();
      ExtentEditor editor(*original);
      for (const Relocation& move : moves) {
        uint64_t move_end = move.file_offset + move.length;
        for (const Extent& e : *original) {
          uint64_t lo = std::max(e.file_offset, move.file_offset);
          uint64_t hi = std::min(e.file_offset + e.length, move_end);
          if (lo >= hi || e.blob_id != move.old_blob) continue;
          // Still the same bytes of the old blob at this place?
          if (e.blob_offset + (lo - e.file_offset) !=
              move.old_blob_offset + (lo - move.file_offset)) {
            continue;
          }
          Extent moved;
          moved.file_offset = lo;
          moved.length = hi - lo;
          moved.blob_id = move.new_blob;
          moved.blob_offset = move.new_blob_offset + (lo - move.file_offset);
          editor.Insert(moved);
        }
      }
      int64_t delta = editor.Stage(ino, &txn.batch, handles_[kExtents], &txn.extent_changes);
      if (delta != 0) {
        return FsError(FsErrorKind::kIo, "relocation changed the amount of file data");
      }
      // Insert() of a moved piece over its own old piece splits neighbours
      // but keeps every byte: nothing else about the file changes.
      return absl::OkStatus();
    }).status();
  }

  absl::StatusOr<BlobId> AllocateBlobIds(uint64_t count) override {
    absl::MutexLock lock(&mu_);
    BlobId first = next_blob_;
    rocksdb::WriteBatch batch;
    std::string value;
    PutFixed64(&value, first + count);
    batch.Put(handles_[kMeta], kNextBlobKey, S(value));
    absl::Status s = WriteToLog(&batch, "allocating blob ids");
    if (!s.ok()) return s;
    next_blob_ = first + count;
    return first;
  }

  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> ListBlobs(BlobId from,
                                                                      size_t max) override {
    std::vector<std::pair<BlobId, BlobRecord>> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlobs]));
    for (it->Seek(S(BlobKey(from))); it->Valid() && out.size() < max; it->Next()) {
      absl::StatusOr<StoredBlob> blob = DecodeBlob(V(it->value()));
      if (!blob.ok()) return blob.status();
      out.emplace_back(KeyNumberAt(V(it->key()), 0), blob->record);
    }
    if (absl::Status s = FromRocks(it->status(), "listing blobs"); !s.ok()) return s;
    return out;
  }

  absl::Status SetBlobLocation(BlobId id, BlobLocation location) override {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<StoredBlob> blob = ReadStoredBlob(id);
    if (!blob.ok()) return blob.status();
    blob->record.location = location;
    return PutOne(kBlobs, S(BlobKey(id)), S(EncodeBlob(*blob)), "recording a blob's location");
  }

  absl::Status QueueRepair(BlobId id) override {
    std::string key = kRepairPrefix + BlobKey(id);
    return PutOne(kMeta, S(key), "", "queuing a repair");
  }

  absl::StatusOr<std::vector<BlobId>> PendingRepairs(BlobId from, size_t max) override {
    std::vector<BlobId> ids;
    std::string start = kRepairPrefix + BlobKey(from);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(S(start)); it->Valid() && ids.size() < max; it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 2) != kRepairPrefix || key.size() != 10) break;
      ids.push_back(KeyNumberAt(key.substr(2), 0));
    }
    if (absl::Status s = FromRocks(it->status(), "listing repairs"); !s.ok()) return s;
    return ids;
  }

  absl::Status ClearRepair(BlobId id) override {
    std::string key = kRepairPrefix + BlobKey(id);
    return DeleteOne(kMeta, S(key), "clearing a repair");
  }

  static std::string ReplicationValue(uint64_t queued_sec, uint64_t length) {
    std::string value;
    PutFixed64(&value, queued_sec);
    PutFixed64(&value, length);
    return value;
  }

  absl::StatusOr<std::vector<QueuedReplication>> PendingReplications(BlobId from,
                                                                     size_t max) override {
    std::vector<QueuedReplication> queued;
    std::string start = kReplicationPrefix + BlobKey(from);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(S(start)); it->Valid() && queued.size() < max; it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 2) != kReplicationPrefix || key.size() != 10) break;
      std::string_view value = V(it->value());
      QueuedReplication entry;
      entry.id = KeyNumberAt(key.substr(2), 0);
      if (value.size() >= 16) {
        entry.queued_sec = static_cast<int64_t>(DecodeFixed64(value.data()));
        entry.length = DecodeFixed64(value.data() + 8);
      }
      queued.push_back(entry);
    }
    if (absl::Status s = FromRocks(it->status(), "listing the replication queue"); !s.ok()) {
      return s;
    }
    return queued;
  }

  absl::Status ClearReplication(BlobId id) override {
    return DeleteOne(kMeta, S(kReplicationPrefix + BlobKey(id)), "clearing a replication entry");
  }

  absl::StatusOr<uint64_t> QueueExistingBlobsForReplica(const std::string& target) override {
    std::string done;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kReplicaTargetKey, &done);
    if (got.ok() && done == target) return 0;
    if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the replica target");
    const uint64_t now = static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    uint64_t queued = 0;
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlobs]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      absl::StatusOr<StoredBlob> blob = DecodeBlob(V(it->value()));
      if (!blob.ok()) return blob.status();
      if (blob->record.refcount == 0) continue;  // garbage collection's, not the replica's
      batch.Put(handles_[kMeta], S(kReplicationPrefix + std::string(key)),
                S(ReplicationValue(now, blob->record.length)));
      if (++queued % 4096 == 0) {
        if (absl::Status s = WriteToLog(&batch, "queuing blobs for the replica");
            !s.ok()) {
          return s;
        }
        batch.Clear();
      }
    }
    if (absl::Status s = FromRocks(it->status(), "listing blobs"); !s.ok()) return s;
    // The target is recorded last: a crash before it queues them all again.
    batch.Put(handles_[kMeta], kReplicaTargetKey, S(target));
    if (absl::Status s = WriteToLog(&batch, "queuing blobs for the replica");
        !s.ok()) {
      return s;
    }
    return queued;
  }

  absl::StatusOr<ReplicationBacklog> GetReplicationBacklog(size_t max_count) override {
    ReplicationBacklog backlog;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(kReplicationPrefix); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 2) != kReplicationPrefix) break;
      if (backlog.blobs == max_count) {
        backlog.counted_all = false;
        break;
      }
      std::string_view value = V(it->value());
      if (value.size() >= 16) {
        int64_t queued = static_cast<int64_t>(DecodeFixed64(value.data()));
        if (backlog.oldest_sec == 0 || queued < backlog.oldest_sec) backlog.oldest_sec = queued;
        backlog.bytes += DecodeFixed64(value.data() + 8);
      }
      backlog.blobs++;
    }
    if (absl::Status s = FromRocks(it->status(), "reading the replication queue"); !s.ok()) {
      return s;
    }
    return backlog;
  }

  absl::StatusOr<std::vector<BlobId>> CollectableBlobs(size_t max) override {
    uint64_t now = static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    std::vector<BlobId> ids;
    // Only keys that are due: the scan never walks the rest of the queue.
    std::string due = GcKey(now + 1, 0);
    rocksdb::Slice due_slice(due);
    rocksdb::ReadOptions options;
    options.iterate_upper_bound = &due_slice;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(options, handles_[kGc]));
    for (it->SeekToFirst(); it->Valid() && ids.size() < max; it->Next()) {
      std::string_view key = V(it->key());
      if (KeyNumberAt(key, 0) > now) break;
      BlobId id = KeyNumberAt(key, 8);
      if (options_.queue_replication) {
        std::string ignored;
        rocksdb::Status queued = db_->Get(rocksdb::ReadOptions(), handles_[kMeta],
                                          S(kReplicationPrefix + BlobKey(id)), &ignored);
        if (queued.ok()) continue;  // the replicator copies it first
        if (!queued.IsNotFound()) return FromRocks(queued, "reading the replication queue");
      }
      ids.push_back(id);
    }
    if (absl::Status s = FromRocks(it->status(), "listing garbage"); !s.ok()) return s;
    return ids;
  }

  absl::Status ForgetBlobs(absl::Span<const BlobId> ids) override {
    absl::MutexLock lock(&mu_);
    rocksdb::WriteBatch batch;
    for (BlobId id : ids) {
      std::string value;
      rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kBlobs],
                                     S(BlobKey(id)), &value);
      if (got.IsNotFound()) continue;
      if (absl::Status s = FromRocks(got, "reading a blob record"); !s.ok()) return s;
      absl::StatusOr<StoredBlob> blob = DecodeBlob(value);
      if (!blob.ok()) return blob.status();
      if (blob->record.refcount != 0) continue;  // referenced again: keep
      batch.Delete(handles_[kGc], S(GcKey(blob->gc_ready_sec, id)));
      batch.Delete(handles_[kBlobs], S(BlobKey(id)));
    }
    return WriteToLog(&batch, "forgetting blobs");
  }

  // --- Volume -----------------------------------------------------------

  absl::StatusOr<NamespaceStats> Stats() override {
    absl::MutexLock lock(&mu_);
    NamespaceStats stats;
    stats.inode_count = inode_count_;
    stats.data_bytes = data_bytes_;
    stats.log_writes = log_writes_.load(std::memory_order_relaxed);
    stats.log_syncs = log_syncs_.load(std::memory_order_relaxed);
    return stats;
  }

  absl::Status SetVolumeMeta(std::string_view key,
                             std::string_view value) override {
    absl::MutexLock lock(&mu_);
    std::string full = kVolumeMetaPrefix;
    full.append(key);
    return PutOne(kMeta, S(full), S(value), "writing volume metadata");
  }

  absl::Status MarkDamaged(InodeId ino, std::string_view why) override {
    absl::MutexLock lock(&mu_);
    return PutOne(kMeta, S(kDamagePrefix + InodeKey(ino)), S(why), "marking a file damaged");
  }

  absl::Status ClearDamage(InodeId ino) override {
    absl::MutexLock lock(&mu_);
    return DeleteOne(kMeta, S(kDamagePrefix + InodeKey(ino)), "clearing a file's damage");
  }

  absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> DamagedFiles() override {
    std::vector<std::pair<InodeId, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(kDamagePrefix); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (key.substr(0, 2) != kDamagePrefix || key.size() != 10) break;
      out.emplace_back(KeyNumberAt(key.substr(2), 0), std::string(V(it->value())));
    }
    if (absl::Status s = FromRocks(it->status(), "listing damaged files"); !s.ok()) return s;
    return out;
  }

  absl::StatusOr<std::optional<std::string>> GetVolumeMeta(
      std::string_view key) override {
    std::string full = kVolumeMetaPrefix;
    full.append(key);
    std::string value;
    rocksdb::Status got =
        db_->Get(rocksdb::ReadOptions(), handles_[kMeta], S(full), &value);
    if (got.IsNotFound()) return std::optional<std::string>();
    if (absl::Status s = FromRocks(got, "reading volume metadata"); !s.ok()) return s;
    return std::optional<std::string>(std::move(value));
  }

  absl::Status CreateCheckpoint(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    if (absl::Status s = FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw),
                                   "starting a checkpoint");
        !s.ok()) {
      return s;
    }
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // 0: always flush the memtables, so the copy is table files plus a
    // short log rather than a long one.
    return FromRocks(checkpoint->CreateCheckpoint(dir, 0), "writing a checkpoint");
  }

  absl::Status RecordReplicaTarget(const std::string& target) override {
    return PutOne(kMeta, kReplicaTargetKey, S(target), "recording the replica target");
  }

  absl::Status SkipBlobIdsBelow(BlobId first_free) override {
    absl::MutexLock lock(&mu_);
    if (first_free <= next_blob_) return absl::OkStatus();
    std::string value;
    PutFixed64(&value, first_free);
    if (absl::Status s = PutOne(kMeta, kNextBlobKey, S(value), "skipping blob ids");
        !s.ok()) {
      return s;
    }
    next_blob_ = first_free;
    return absl::OkStatus();
  }

  absl::StatusOr<NamespaceCheckReport> Check() override {
    NamespaceFamilies families;
    families.inodes = handles_[kInodes];
    families.dentries = handles_[kDentries];
    families.cookies = handles_[kCookies];
    families.xattrs = handles_[kXattrs];
    families.extents = handles_[kExtents];
    families.blobs = handles_[kBlobs];
    families.gc = handles_[kGc];
    families.orphans = handles_[kOrphans];
    families.meta = handles_[kMeta];
    NamespaceCounters counters;
    {
      absl::MutexLock lock(&mu_);
      counters.next_inode = next_inode_;
      counters.next_blob = next_blob_;
      counters.inode_count = inode_count_;
      counters.data_bytes = data_bytes_;
    }
    return CheckNamespace(db_.get(), families, counters);
  }

  // --- S3 multipart uploads -------------------------------------------

  absl::Status PutMultipartUpload(std::string_view id,
                                  const MultipartUploadRecord& upload) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::optional<MultipartUploadRecord>> existing = ReadUpload(id);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) return FsError(FsErrorKind::kExists, "the upload id is taken");
    return PutOne(kMeta, S(UploadKey(id)), S(EncodeMultipartUpload(upload)),
                  "recording a multipart upload");
  }

  absl::StatusOr<std::optional<MultipartUploadRecord>> GetMultipartUpload(
      std::string_view id) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    return ReadUpload(id);
  }

  absl::Status ListMultipartUploads(
      std::string_view after_id,
      const std::function<bool(const std::string&, const MultipartUploadRecord&)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    const std::string prefix = kUploadPrefix;
    std::string start = prefix + std::string(after_id);
    for (it->Seek(S(start)); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (!key.starts_with(prefix)) break;
      std::string id(key.substr(prefix.size()));
      if (id == after_id) continue;
      absl::StatusOr<MultipartUploadRecord> upload = DecodeMultipartUpload(V(it->value()));
      if (!upload.ok()) return upload.status();
      if (!fn(id, *upload)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "listing multipart uploads");
  }

  absl::Status ListMultipartParts(
      std::string_view id, uint32_t after_number,
      const std::function<bool(const MultipartPartRecord&)>& fn) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    const std::string prefix = PartPrefix(id);
    for (it->Seek(S(PartKey(id, uint64_t{after_number} + 1))); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (!key.starts_with(prefix) || key.size() != prefix.size() + 8) break;
      absl::StatusOr<MultipartPartRecord> part = DecodeMultipartPart(
          static_cast<uint32_t>(KeyNumberAt(key, prefix.size())), V(it->value()));
      if (!part.ok()) return part.status();
      if (!fn(*part)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "listing the parts of a multipart upload");
  }

  absl::StatusOr<std::optional<MultipartPartRecord>> PutMultipartPart(
      std::string_view id, const MultipartPartRecord& part,
      const ReleaseCheck& release_now) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::optional<MultipartUploadRecord>> upload = ReadUpload(id);
    if (!upload.ok()) return upload.status();
    if (!upload->has_value()) return NotFound("no such multipart upload");
    absl::StatusOr<InodeRecord> file = MustReadInode(part.ino);
    if (!file.ok()) return file.status();
    if (!S_ISREG(file->attr.mode) || file->attr.nlink != 0) {
      return FsError(FsErrorKind::kInvalid, "only a nameless regular file can be a part");
    }
    Txn txn;
    const std::string key = PartKey(id, part.number);
    std::optional<MultipartPartRecord> replaced;
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], S(key), &value);
    if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading a multipart part");
    if (got.ok()) {
      absl::StatusOr<MultipartPartRecord> old = DecodeMultipartPart(part.number, value);
      if (!old.ok()) return old.status();
      replaced = *old;
      if (old->ino != part.ino) {
        if (absl::Status s = StageUnholdPart(txn, old->ino, release_now); !s.ok()) return s;
      }
    }
    txn.batch.Put(handles_[kMeta], S(key), S(EncodeMultipartPart(part)));
    txn.batch.Put(handles_[kMeta], S(kHeldPartPrefix + InodeKey(part.ino)), S(id));
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return replaced;
  }

  absl::Status DeleteMultipartUpload(std::string_view id,
                                     const ReleaseCheck& release_now) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    Txn txn;
    if (absl::Status s = StageDropUpload(txn, id, release_now); !s.ok()) return s;
    return Commit(txn);
  }

  absl::StatusOr<std::optional<InodeAttr>> PublishMultipartUpload(
      std::string_view id, InodeId ino, InodeId parent, std::string_view name,
      const PublishCondition& condition, const ReleaseCheck& release_now) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    return PublishWith(ino, parent, name, condition, release_now,
                       [&](Txn& txn) {
                         return StageDropUpload(txn, id, release_now);
                       });
  }

  absl::Status Sync() override {
    // fsync calls this for every file; most find nothing new since the last
    // sync (or one that ran while they waited) and return at once.
    uint64_t target = db_->GetLatestSequenceNumber();
    absl::MutexLock lock(&sync_mu_);
    if (synced_seq_ >= target) return absl::OkStatus();
    // After a failed append RocksDB must not be asked to sync that log (it
    // aborts the process); it must recover onto a new one first.
    if (absl::Status recovered = RecoverLog(); !recovered.ok()) return recovered;
    target = db_->GetLatestSequenceNumber();
    log_syncs_.fetch_add(1, std::memory_order_relaxed);
    absl::Status s = FromRocks(db_->SyncWAL(), "syncing the log");
    if (s.ok()) synced_seq_ = target;
    if (!s.ok()) log_failed_ = true;
    return s;
  }

 private:
  static absl::Status CheckUploadId(std::string_view id) {
    bool ok = !id.empty() && id.size() <= 128;
    for (char c : id) {
      ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                  c == '-');
    }
    if (!ok) return FsError(FsErrorKind::kInvalid, "not a multipart upload id");
    return absl::OkStatus();
  }
  static std::string UploadKey(std::string_view id) {
    return absl::StrCat(kUploadPrefix, Absl(id));
  }
  static std::string PartPrefix(std::string_view id) {
    return absl::StrCat(kUploadPartPrefix, Absl(id), "/");
  }
  static std::string PartKey(std::string_view id, uint64_t number) {
    std::string key = PartPrefix(id);
    PutBigEndian64(&key, number);
    return key;
  }
  static absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

  absl::StatusOr<std::optional<MultipartUploadRecord>> ReadUpload(std::string_view id) {
    std::string value;
    rocksdb::Status got =
        db_->Get(rocksdb::ReadOptions(), handles_[kMeta], S(UploadKey(id)), &value);
    if (got.IsNotFound()) return std::optional<MultipartUploadRecord>();
    if (absl::Status s = FromRocks(got, "reading a multipart upload"); !s.ok()) return s;
    absl::StatusOr<MultipartUploadRecord> upload = DecodeMultipartUpload(value);
    if (!upload.ok()) return upload.status();
    return std::optional<MultipartUploadRecord>(std::move(*upload));
  }

  // Whether an upload's record holds the (orphan) inode as a part.
  absl::StatusOr<bool> HeldByUpload(InodeId ino) {
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kMeta],
                                   S(kHeldPartPrefix + InodeKey(ino)), &value);
    if (got.IsNotFound()) return false;
    if (absl::Status s = FromRocks(got, "reading a part's upload"); !s.ok()) return s;
    return true;
  }

  // Stages the end of the upload's hold on a part inode: freed in the
  // commit when `release_now` agrees, else left an orphan for its last
  // user, or the next mount, to free.
  absl::Status StageUnholdPart(Txn& txn, InodeId ino, const ReleaseCheck& release_now) {
    txn.batch.Delete(handles_[kMeta], S(kHeldPartPrefix + InodeKey(ino)));
    absl::StatusOr<std::optional<InodeRecord>> existing = ReadInode(ino);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value() || (*existing)->attr.nlink != 0) return absl::OkStatus();
    if (txn.inodes.count(ino)) return absl::OkStatus();  // staged already
    txn.inodes[ino] = std::move(**existing);
    if (!release_now || !release_now(ino)) {
      txn.inodes.erase(ino);
      return absl::OkStatus();
    }
    return StageFree(txn, ino);
  }

  // Stages the deletion of the upload and its parts.
  absl::Status StageDropUpload(Txn& txn, std::string_view id, const ReleaseCheck& release_now) {
    absl::StatusOr<std::optional<MultipartUploadRecord>> upload = ReadUpload(id);
    if (!upload.ok()) return upload.status();
    if (!upload->has_value()) return NotFound("no such multipart upload");
    const std::string prefix = PartPrefix(id);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(S(prefix)); it->Valid(); it->Next()) {
      std::string_view key = V(it->key());
      if (!key.starts_with(prefix)) break;
      txn.batch.Delete(handles_[kMeta], it->key());
      absl::StatusOr<MultipartPartRecord> part = DecodeMultipartPart(0, V(it->value()));
      if (!part.ok()) return part.status();
      if (absl::Status s = StageUnholdPart(txn, part->ino, release_now); !s.ok()) return s;
    }
    if (absl::Status s = FromRocks(it->status(), "listing a multipart upload's parts"); !s.ok()) {
      return s;
    }
    txn.batch.Delete(handles_[kMeta], S(UploadKey(id)));
    return absl::OkStatus();
  }

  // Every change goes through here (PutOne and DeleteOne too). A failed
  // append (a full disk, say) leaves RocksDB's log writer unusable; later
  // writes and syncs recover first (Resume: a new log, once there is room)
  // or fail.
  absl::Status WriteToLog(rocksdb::WriteBatch* batch, const char* what) {
    if (absl::Status recovered = RecoverLog(); !recovered.ok()) return recovered;
    log_writes_.fetch_add(1, std::memory_order_relaxed);
    rocksdb::Status written = db_->Write(rocksdb::WriteOptions(), batch);
    if (written.IsNoSpace() && options_.make_room && options_.make_room()) {
      // Writing the same batch again is safe even if the failed write left
      // it whole in the old log: every batch holds absolute values, and
      // nothing is written between the two.
      log_failed_ = true;
      log_failed_no_space_ = true;
      if (RecoverLog(/*wait=*/true).ok()) written = db_->Write(rocksdb::WriteOptions(), batch);
    }
    if (written.IsIOError() || written.IsNoSpace()) {
      log_failed_no_space_ = written.IsNoSpace();
      log_failed_ = true;
    }
    return FromRocks(written, what);
  }

  // `wait`: room was just made, so RocksDB's own recovery is about to run;
  // else a change fails at once while the disk stays full (waiting at
  // every change would make each of them take seconds to fail).
  absl::Status RecoverLog(bool wait = false) {
    if (!log_failed_.load()) return absl::OkStatus();
    absl::MutexLock lock(&recover_mu_);
    if (!log_failed_.load()) return absl::OkStatus();
    rocksdb::Status resumed = db_->Resume();
    // After a full disk RocksDB recovers by itself, in a thread of its own
    // that starts once the disk has room (its SstFileManager looks), and
    // Resume answers Busy until it is done: wait a little for that thread
    // (in real time, as it does) before failing the change.
    for (int waited_ms = 0; wait && resumed.IsBusy() && waited_ms < kRecoveryWaitMs;
         waited_ms += 50) {
      absl::SleepFor(absl::Milliseconds(50));
      resumed = db_->Resume();
    }
    if (!resumed.ok()) {
      if (log_failed_no_space_.load()) {
        // The disk is still full: say so (ENOSPC), not EIO. Writes go on
        // once room is made, without a remount.
        return FsError(FsErrorKind::kNoSpace,
                       absl::StrCat("namespace database: the disk is full (",
                                    resumed.ToString(), "); free space on it and changes "
                                    "go on"));
      }
      return FromRocks(resumed, "recovering from a failed write of the log");
    }
    log_failed_ = false;
    log_failed_no_space_ = false;
    LogInfo("namespace: writes go on after a failed write of the log");
    return absl::OkStatus();
  }
  static constexpr int kRecoveryWaitMs = 2000;

  absl::Status PutOne(Cf cf, const rocksdb::Slice& key, const rocksdb::Slice& value,
                      const char* what) {
    rocksdb::WriteBatch batch;
    batch.Put(handles_[cf], key, value);
    return WriteToLog(&batch, what);
  }
  absl::Status DeleteOne(Cf cf, const rocksdb::Slice& key, const char* what) {
    rocksdb::WriteBatch batch;
    batch.Delete(handles_[cf], key);
    return WriteToLog(&batch, what);
  }

  std::atomic<bool> log_failed_{false};
  std::atomic<bool> log_failed_no_space_{false};  // the failure was a full disk
  std::atomic<uint64_t> log_writes_{0};
  std::atomic<uint64_t> log_syncs_{0};
  absl::Mutex recover_mu_;

  static uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
  }

  absl::Status LoadCounter(const char* key, uint64_t initial, uint64_t* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string value;
    rocksdb::Status got =
        db_->Get(rocksdb::ReadOptions(), handles_[kMeta], key, &value);
    if (got.IsNotFound()) {
      *out = initial;
      return absl::OkStatus();
    }
    if (absl::Status s = FromRocks(got, "reading counters"); !s.ok()) return s;
    if (value.size() != 8) return FsError(FsErrorKind::kIo, "counter is corrupt");
    *out = DecodeFixed64(value.data());
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<InodeRecord>> ReadInode(InodeId ino) {
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kInodes],
                                   S(InodeKey(ino)), &value);
    if (got.IsNotFound()) return std::optional<InodeRecord>();
    if (absl::Status s = FromRocks(got, "reading an inode"); !s.ok()) return s;
    absl::StatusOr<InodeRecord> record = DecodeInode(ino, value);
    if (!record.ok()) return record.status();
    return std::optional<InodeRecord>(std::move(*record));
  }

  absl::StatusOr<InodeRecord> MustReadInode(InodeId ino) {
    absl::StatusOr<std::optional<InodeRecord>> record = ReadInode(ino);
    if (!record.ok()) return record.status();
    if (!record->has_value()) return NotFound(absl::StrCat("no inode ", ino));
    return std::move(**record);
  }

  absl::StatusOr<std::optional<DentryValue>> ReadDentry(InodeId parent,
                                                        std::string_view name) {
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[kDentries],
                                   S(DentryKey(parent, name)), &value);
    if (got.IsNotFound()) return std::optional<DentryValue>();
    if (absl::Status s = FromRocks(got, "reading an entry"); !s.ok()) return s;
    absl::StatusOr<DentryValue> entry = DecodeDentry(value);
    if (!entry.ok()) return entry.status();
    return std::optional<DentryValue>(*entry);
  }

  absl::StatusOr<InodeRecord*> Load(Txn& txn, InodeId ino) {
    auto it = txn.inodes.find(ino);
    if (it == txn.inodes.end()) {
      absl::StatusOr<InodeRecord> record = MustReadInode(ino);
      if (!record.ok()) return record.status();
      it = txn.inodes.emplace(ino, std::move(*record)).first;
    }
    txn.dirty.insert(ino);
    return &it->second;
  }

  absl::StatusOr<InodeRecord*> LoadDir(Txn& txn, InodeId ino) {
    absl::StatusOr<InodeRecord*> record = Load(txn, ino);
    if (!record.ok()) return record.status();
    if (!IsDir((*record)->attr.mode)) {
      return FsError(FsErrorKind::kNotDirectory, "not a directory");
    }
    if ((*record)->attr.nlink == 0) {
      return NotFound("directory was removed");
    }
    return record;
  }

  absl::Status MustBeAbsent(InodeId parent, std::string_view name) {
    absl::StatusOr<std::optional<DentryValue>> entry = ReadDentry(parent, name);
    if (!entry.ok()) return entry.status();
    if (entry->has_value()) return FsError(FsErrorKind::kExists, "entry exists");
    return absl::OkStatus();
  }

  absl::StatusOr<bool> DirIsEmpty(InodeId dir) {
    std::string prefix = DentryPrefix(dir);
    InodeScope scope(dir);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(scope.options(), handles_[kCookies]));
    it->Seek(S(prefix));
    bool empty = !(it->Valid() && V(it->key()).substr(0, 8) == prefix);
    if (absl::Status s = FromRocks(it->status(), "listing a directory"); !s.ok()) {
      return s;
    }
    return empty;
  }

  void PutEntry(Txn& txn, InodeId parent, std::string_view name,
                const DentryValue& value) {
    txn.batch.Put(handles_[kDentries], S(DentryKey(parent, name)),
                  S(EncodeDentry(value)));
    txn.batch.Put(handles_[kCookies], S(CookieKey(parent, value.cookie)),
                  S(EncodeCookieEntry(name, value)));
  }

  void AddEntry(Txn& txn, InodeRecord& dir, std::string_view name,
                InodeId child, uint32_t mode) {
    PutEntry(txn, dir.attr.ino, name,
             DentryValue{child, mode & S_IFMT, dir.next_cookie++});
  }

  void DeleteEntry(Txn& txn, InodeId parent, std::string_view name,
                   uint64_t cookie) {
    txn.batch.Delete(handles_[kDentries], S(DentryKey(parent, name)));
    txn.batch.Delete(handles_[kCookies], S(CookieKey(parent, cookie)));
  }

  static void Touch(InodeRecord& dir, Timespec now, bool modified) {
    if (modified) dir.attr.mtime = now;
    dir.attr.ctime = now;
  }

  // Drops one link; an inode left with none becomes an orphan.
  void DropLink(Txn& txn, InodeRecord& record, Timespec now) {
    if (IsDir(record.attr.mode)) {
      record.attr.nlink = 0;
    } else if (record.attr.nlink > 0) {
      record.attr.nlink--;
    }
    record.attr.ctime = now;
    if (record.attr.nlink == 0) {
      txn.batch.Put(handles_[kOrphans], S(InodeKey(record.attr.ino)), "");
    }
  }

  absl::StatusOr<InodeAttr> RemoveEntry(InodeId parent, std::string_view name,
                                        bool want_dir, const ReleaseCheck& release_now) {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> dir = LoadDir(txn, parent);
    if (!dir.ok()) return dir.status();
    absl::StatusOr<std::optional<DentryValue>> entry = ReadDentry(parent, name);
    if (!entry.ok()) return entry.status();
    if (!entry->has_value()) return NotFound("no such entry");
    const DentryValue& found = **entry;
    if (want_dir && !IsDir(found.mode)) {
      return FsError(FsErrorKind::kNotDirectory, "not a directory");
    }
    if (!want_dir && IsDir(found.mode)) {
      return FsError(FsErrorKind::kIsDirectory, "is a directory");
    }
    if (want_dir) {
      absl::StatusOr<bool> empty = DirIsEmpty(found.ino);
      if (!empty.ok()) return empty.status();
      if (!*empty) return FsError(FsErrorKind::kNotEmpty, "directory not empty");
      (*dir)->attr.nlink--;
    }
    absl::StatusOr<InodeRecord*> child = Load(txn, found.ino);
    if (!child.ok()) return child.status();
    Timespec now = options_.clock->NowTimespec();
    DeleteEntry(txn, parent, name, found.cookie);
    DropLink(txn, **child, now);
    Touch(**dir, now, true);
    if (absl::Status s = FreeIfReleasable(txn, **child, release_now); !s.ok()) return s;
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[found.ino].attr;
  }

  absl::Status ReleaseLocked(InodeId ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<std::optional<InodeRecord>> existing = ReadInode(ino);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value() || (*existing)->attr.nlink != 0) {
      return absl::OkStatus();
    }
    absl::StatusOr<bool> held = HeldByUpload(ino);
    if (!held.ok()) return held.status();
    if (*held) return absl::OkStatus();  // the upload's commits free it
    Txn txn;
    txn.inodes[ino] = std::move(**existing);
    if (absl::Status s = StageFree(txn, ino); !s.ok()) return s;
    return Commit(txn);
  }

  // Stages the deletion of `ino` (loaded in `txn`, no links left) and all
  // it holds: extents (their blobs go to GC), xattrs, damage mark. Its
  // record stays in txn.inodes, as it was, for the caller's answer.
  absl::Status StageFree(Txn& txn, InodeId ino) {
    InodeAttr& attr = txn.inodes[ino].attr;
    if (S_ISREG(attr.mode)) {
      absl::Status s = EditExtents(txn, attr, 0, UINT64_MAX,
                                   [](ExtentEditor& e) { e.Cut(0, UINT64_MAX); });
      if (!s.ok()) return s;
    }
    std::string prefix = InodeKey(ino);
    std::string end = InodeKey(ino + 1);
    txn.batch.DeleteRange(handles_[kXattrs], S(prefix), S(end));
    txn.batch.Delete(handles_[kInodes], S(prefix));
    txn.batch.Delete(handles_[kOrphans], S(prefix));
    txn.batch.Delete(handles_[kMeta], S(kDamagePrefix + prefix));
    txn.dirty.erase(ino);
    txn.inode_count_delta -= 1;
    return absl::OkStatus();
  }

  // An inode that just lost its last link in `txn`: freed in the same
  // commit if `release_now` agrees, else left an orphan (DropLink).
  absl::Status FreeIfReleasable(Txn& txn, const InodeRecord& record,
                                const ReleaseCheck& release_now) {
    if (record.attr.nlink != 0 || !release_now || !release_now(record.attr.ino)) {
      return absl::OkStatus();
    }
    return StageFree(txn, record.attr.ino);
  }

  // Registers blobs a commit brings, owned by `owner`.
  static void StageNewBlobs(Txn& txn, InodeId owner, absl::Span<const NewBlob> blobs) {
    for (const NewBlob& blob : blobs) {
      StoredBlob stored;
      stored.record.length = blob.length;
      stored.record.crc32c = blob.crc32c;
      stored.record.owner = owner;
      txn.extent_changes.new_blobs[blob.id] = stored;
    }
  }

  // The file's extents overlapping any of the (offset, length) ranges, once
  // each, in file order: a commit of scattered ranges reads only what lies
  // under them, not every extent in between.
  absl::StatusOr<std::vector<Extent>> ExtentsUnder(
      InodeId ino, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    std::map<uint64_t, Extent> found;
    for (const auto& [offset, length] : ranges) {
      if (length == 0) continue;
      absl::StatusOr<std::vector<Extent>> under = ReadExtents(
          db_.get(), handles_[kExtents], ino, offset, offset + length, /*clip=*/false);
      if (!under.ok()) return under.status();
      for (Extent& e : *under) found.emplace(e.file_offset, std::move(e));
    }
    std::vector<Extent> out;
    out.reserve(found.size());
    for (auto& [offset, e] : found) out.push_back(std::move(e));
    return out;
  }

  // The shape of every single-inode mutation: load the inode, let `change`
  // edit it (and stage more in the transaction), commit, return the result.
  // `unchanged`, when `change` sets it, skips the commit.
  template <typename ChangeFn>
  absl::StatusOr<InodeAttr> MutateInode(InodeId ino, ChangeFn change,
                                        const bool* unchanged = nullptr) {
    absl::MutexLock lock(&mu_);
    Txn txn;
    absl::StatusOr<InodeRecord*> loaded = Load(txn, ino);
    if (!loaded.ok()) return loaded.status();
    if (absl::Status s = change(txn, (*loaded)->attr); !s.ok()) return s;
    if (unchanged != nullptr && *unchanged) return txn.inodes[ino].attr;
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return txn.inodes[ino].attr;
  }

  // Loads the extents of `attr`'s inode overlapping [lo, hi), lets `edit`
  // change them, and stages the result in the transaction.
  template <typename EditFn>
  absl::Status EditExtents(Txn& txn, InodeAttr& attr, uint64_t lo, uint64_t hi,
                           EditFn edit) {
    absl::StatusOr<std::vector<Extent>> existing = ReadExtents(
        db_.get(), handles_[kExtents], attr.ino, lo, hi, /*clip=*/false);
    if (!existing.ok()) return existing.status();
    ExtentEditor editor(std::move(*existing));
    edit(editor);
    int64_t delta = editor.Stage(attr.ino, &txn.batch, handles_[kExtents],
                                 &txn.extent_changes);
    attr.allocated_bytes = static_cast<uint64_t>(
        static_cast<int64_t>(attr.allocated_bytes) + delta);
    txn.data_bytes_delta += delta;
    return absl::OkStatus();
  }

  absl::Status Commit(Txn& txn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    uint64_t now = static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    absl::Status blobs = ApplyBlobChanges(
        db_.get(), handles_[kBlobs], handles_[kGc], txn.extent_changes,
        now + static_cast<uint64_t>(std::max<int64_t>(0, options_.gc_grace_seconds)),
        &txn.batch);
    if (!blobs.ok()) return blobs;
    if (options_.queue_replication) {
      // In the same batch: no blob is ever committed without its queue entry.
      for (const auto& [id, blob] : txn.extent_changes.new_blobs) {
        txn.batch.Put(handles_[kMeta], S(kReplicationPrefix + BlobKey(id)),
                      S(ReplicationValue(now, blob.record.length)));
      }
    }
    for (InodeId ino : txn.dirty) {
      txn.batch.Put(handles_[kInodes], S(InodeKey(ino)),
                    S(EncodeInode(txn.inodes[ino])));
    }
    uint64_t inode_count = inode_count_ + txn.inode_count_delta;
    uint64_t data_bytes = static_cast<uint64_t>(
        std::max<int64_t>(0, static_cast<int64_t>(data_bytes_) + txn.data_bytes_delta));
    auto put_counter = [&](const char* key, uint64_t v) {
      std::string value;
      PutFixed64(&value, v);
      txn.batch.Put(handles_[kMeta], key, S(value));
    };
    if (txn.inode_count_delta != 0) put_counter(kInodeCountKey, inode_count);
    if (txn.data_bytes_delta != 0) put_counter(kDataBytesKey, data_bytes);
    if (txn.next_inode_changed) put_counter(kNextInodeKey, next_inode_);
    absl::Status s = WriteToLog(&txn.batch, "committing a change");
    if (!s.ok()) {
      // The in-memory inode counter may have advanced; a skipped number is
      // harmless, a reused one would not be.
      return s;
    }
    inode_count_ = inode_count;
    data_bytes_ = data_bytes;
    return absl::OkStatus();
  }

  // Declared before db_ so that it is destroyed after it: the database
  // calls it until it is closed.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  NamespaceOptions options_;

  // Serialises mutations: each reads, decides and writes one batch.
  absl::Mutex mu_;
  uint64_t next_inode_ ABSL_GUARDED_BY(mu_) = 2;
  uint64_t next_blob_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t inode_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t data_bytes_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex sync_mu_;
  uint64_t synced_seq_ ABSL_GUARDED_BY(sync_mu_) = 0;
};

absl::StatusOr<std::optional<InodeAttr>> RocksNamespace::Rename(
    InodeId old_parent, std::string_view old_name, InodeId new_parent,
    std::string_view new_name, RenameMode mode, const ReleaseCheck& release_now) {
  if (absl::Status s = CheckName(old_name); !s.ok()) return s;
  if (absl::Status s = CheckName(new_name); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Txn txn;
  absl::StatusOr<InodeRecord*> from_dir = LoadDir(txn, old_parent);
  if (!from_dir.ok()) return from_dir.status();
  absl::StatusOr<std::optional<DentryValue>> src = ReadDentry(old_parent, old_name);
  if (!src.ok()) return src.status();
  if (!src->has_value()) return NotFound("no such entry");
  absl::StatusOr<InodeRecord*> to_dir = LoadDir(txn, new_parent);
  if (!to_dir.ok()) return to_dir.status();
  if (old_parent == new_parent && old_name == new_name) {
    return std::optional<InodeAttr>();
  }
  absl::StatusOr<std::optional<DentryValue>> dst = ReadDentry(new_parent, new_name);
  if (!dst.ok()) return dst.status();
  if (mode == RenameMode::kNoReplace && dst->has_value()) {
    return FsError(FsErrorKind::kExists, "target exists");
  }
  if (mode == RenameMode::kExchange && !dst->has_value()) {
    return NotFound("exchange target missing");
  }
  const DentryValue source = **src;
  const bool source_is_dir = IsDir(source.mode);
  if (dst->has_value() && (*dst)->ino == source.ino) {
    return std::optional<InodeAttr>();  // two names of one inode: no-op
  }
  // A directory may not move below itself.
  auto inside = [&](InodeId start, InodeId dir) -> absl::StatusOr<bool> {
    for (InodeId p = start;;) {
      if (p == dir) return true;
      if (p == kRootInode) return false;
      absl::StatusOr<InodeRecord*> record = Load(txn, p);
      if (!record.ok()) return record.status();
      p = (*record)->attr.parent;
    }
  };
  if (source_is_dir && old_parent != new_parent) {
    absl::StatusOr<bool> bad = inside(new_parent, source.ino);
    if (!bad.ok()) return bad.status();
    if (*bad) return FsError(FsErrorKind::kInvalid, "directory into itself");
  }
  Timespec now = options_.clock->NowTimespec();
  absl::StatusOr<InodeRecord*> moved = Load(txn, source.ino);
  if (!moved.ok()) return moved.status();

  if (mode == RenameMode::kExchange) {
    const DentryValue target = **dst;
    const bool target_is_dir = IsDir(target.mode);
    if (target_is_dir && old_parent != new_parent) {
      absl::StatusOr<bool> bad = inside(old_parent, target.ino);
      if (!bad.ok()) return bad.status();
      if (*bad) return FsError(FsErrorKind::kInvalid, "directory into itself");
    }
    absl::StatusOr<InodeRecord*> other = Load(txn, target.ino);
    if (!other.ok()) return other.status();
    PutEntry(txn, old_parent, old_name,
             DentryValue{target.ino, target.mode, source.cookie});
    PutEntry(txn, new_parent, new_name,
             DentryValue{source.ino, source.mode, target.cookie});
    if (old_parent != new_parent) {
      if (source_is_dir) {
        (*moved)->attr.parent = new_parent;
        txn.inodes[old_parent].attr.nlink--;
        txn.inodes[new_parent].attr.nlink++;
      }
      if (target_is_dir) {
        (*other)->attr.parent = old_parent;
        txn.inodes[new_parent].attr.nlink--;
        txn.inodes[old_parent].attr.nlink++;
      }
    }
    (*moved)->attr.ctime = now;
    (*other)->attr.ctime = now;
    Touch(txn.inodes[old_parent], now, true);
    Touch(txn.inodes[new_parent], now, true);
    if (absl::Status s = Commit(txn); !s.ok()) return s;
    return std::optional<InodeAttr>();
  }

  std::optional<InodeId> replaced;
  if (dst->has_value()) {
    const DentryValue target = **dst;
    const bool target_is_dir = IsDir(target.mode);
    if (source_is_dir && !target_is_dir) {
      return FsError(FsErrorKind::kNotDirectory, "target is not a directory");
    }
    if (!source_is_dir && target_is_dir) {
      return FsError(FsErrorKind::kIsDirectory, "target is a directory");
    }
    if (target_is_dir) {
      absl::StatusOr<bool> empty = DirIsEmpty(target.ino);
      if (!empty.ok()) return empty.status();
      if (!*empty) return FsError(FsErrorKind::kNotEmpty, "target not empty");
      txn.inodes[new_parent].attr.nlink--;
    }
    absl::StatusOr<InodeRecord*> victim = Load(txn, target.ino);
    if (!victim.ok()) return victim.status();
    DeleteEntry(txn, new_parent, new_name, target.cookie);
    DropLink(txn, **victim, now);
    if (absl::Status s = FreeIfReleasable(txn, **victim, release_now); !s.ok()) return s;
    replaced = target.ino;
  }
  DeleteEntry(txn, old_parent, old_name, source.cookie);
  AddEntry(txn, txn.inodes[new_parent], new_name, source.ino, source.mode);
  if (source_is_dir && old_parent != new_parent) {
    (*moved)->attr.parent = new_parent;
    txn.inodes[old_parent].attr.nlink--;
    txn.inodes[new_parent].attr.nlink++;
  }
  (*moved)->attr.ctime = now;
  Touch(txn.inodes[old_parent], now, true);
  Touch(txn.inodes[new_parent], now, true);
  if (absl::Status s = Commit(txn); !s.ok()) return s;
  if (replaced) return std::optional<InodeAttr>(txn.inodes[*replaced].attr);
  return std::optional<InodeAttr>();
}

// Collects what log replay reports as dropped when it skips damaged
// records (RocksDB says so through its info log, "...: dropping N bytes;
// Corruption: ...").
class SalvageLogger final : public rocksdb::Logger {
 public:
  explicit SalvageLogger(std::vector<std::string>* dropped)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), dropped_(dropped) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    vsnprintf(line, sizeof(line), format, ap);
    if (strstr(line, "dropping") == nullptr) return;
    // "[WARN] [db/...cc:982] (ignoring error) FILE: dropping N bytes; WHY"
    const char* what = strstr(line, "(ignoring error) ");
    what = what != nullptr ? what + strlen("(ignoring error) ") : line;
    absl::MutexLock lock(&mu_);
    dropped_->push_back(what);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string>* dropped_ ABSL_GUARDED_BY(mu_);
};

// A read-only open must not write the database directory, not even
// RocksDB's own LOG file: its warnings go to cairn's log instead.
class ForwardingLogger final : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    vsnprintf(line, sizeof(line), format, ap);
    LogWarning("namespace: %s", line);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenRocksNamespace(
    const std::string& db_dir, const NamespaceOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = options.create_if_missing;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  // Lookups are point reads of keys that often do not exist (negative
  // lookups, absent xattrs): bloom filters answer those without a disk read.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = rocksdb::NewLRUCache(options.cache_bytes);
  // Each column family may hold write_buffer_size in memtables before it
  // flushes, ten times that over ten: under a metadata loop beside 8
  // writers they held 47 MiB and kept growing. One manager over all of
  // them, charging what they hold to the block cache, keeps the namespace's
  // memory at cache_bytes.
  db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
      options.write_buffer_bytes, table.block_cache);
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // A record torn at the end of the log by a crash was never acknowledged
  // (a commit counts once the log is synced past it) and is dropped; any
  // other damaged record fails the open instead of silently ending replay
  // there, which lost every later change.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  std::vector<std::string> dropped;
  if (options.read_only) db_options.info_log = std::make_shared<ForwardingLogger>();
  // A log replayed after a crash stays in memory (and in the log) until the
  // next flush instead of being written into tables during the open: on a
  // full disk the open would need tens of MiB it does not have. A salvage
  // must write what it kept, or the damaged log would be replayed again.
  db_options.avoid_flush_during_recovery = options.salvaged_log == nullptr;
  if (options.salvaged_log != nullptr) {
    db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    db_options.info_log = std::make_shared<SalvageLogger>(&dropped);
  }
  // Always through cairn's Env, Env::Default() included: one code path, and
  // it costs nothing measurable. NamespaceStore with RocksDB's own Env
  // against the adapter over Env::Default() (10,000 MakeNode, Rename,
  // Lookup after reopen, Unlink; Sync every 100; 12 alternating rounds;
  // medians, adapter/default): create 1.02, rename 1.02, lookup 1.17,
  // unlink 0.98, reopen 1.11; without Sync 1.13, 0.93, 0.96, 0.95, 0.95.
  // Every range overlaps the other variant's (+-20% on a loaded machine).
  std::unique_ptr<rocksdb::Env> env = NewRocksDbEnv(options.env, options.clock);
  db_options.env = env.get();

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.write_buffer_size = options.write_buffer_bytes;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (const char* name : kCfNames) descriptors.emplace_back(name, cf_options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, db_dir, descriptors, &handles, &raw)
          : rocksdb::DB::Open(db_options, db_dir, descriptors, &handles, &raw);
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrCat("the namespace database ", db_dir,
                                            " is damaged: ", s.ToString()));
  }
  if (!s.ok()) {
    // A full disk is the volume's to handle (it keeps room for this).
    return FsError(s.IsNoSpace() ? FsErrorKind::kNoSpace : FsErrorKind::kIo,
                   absl::StrCat("cannot open the namespace database ", db_dir,
                                ": ", s.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  if (options.salvaged_log != nullptr) {
    // Retire the damaged log: what replay kept goes into tables now.
    rocksdb::Status flushed = db->Flush(rocksdb::FlushOptions(), handles);
    if (!flushed.ok()) {
      for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
      return FsError(FsErrorKind::kIo, absl::StrCat("writing the salvaged namespace log of ",
                                                    db_dir, " into tables: ",
                                                    flushed.ToString()));
    }
    for (std::string& line : dropped) options.salvaged_log->push_back(std::move(line));
  }
  db->DestroyColumnFamilyHandle(handles[0]);  // the unused default family
  handles.erase(handles.begin());
  auto store = std::make_unique<RocksNamespace>(std::move(env), std::move(db),
                                                std::move(handles), options);
  if (absl::Status init = store->Init(); !init.ok()) return init;
  return std::unique_ptr<NamespaceStore>(std::move(store));
}

}  // namespace cairn

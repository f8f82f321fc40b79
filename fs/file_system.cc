#include "fs/file_system.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/namespace/file_location.h"

namespace cairn {
namespace {

bool IsPosixAclName(const std::string& name) {
  return name.rfind("system.posix_acl_", 0) == 0;
}

}  // namespace

FileSystem::FileSystem(NamespaceStore& ns, BlobStore& blobs, FileDataCache& cache,
                       Options options)
    : ns_(ns), blobs_(blobs), cache_(cache), options_(options) {
  if (ns_.RecordsOpenHolds()) {
    holds_ = std::make_unique<OpenHolds>(
        [this](InodeId ino) { return ns_.HoldOpen(ino); },
        [this](const std::vector<InodeId>& inos) {
          // An orphan no other host holds goes in the commit that drops
          // this host's last hold, as an unlink frees (FreeOnRemoval):
          // unless the cache still holds its data or a handle is open
          // again; the kernel's lookups are answered from the table.
          absl::flat_hash_set<InodeId> marked;
          absl::StatusOr<std::vector<InodeAttr>> freed =
              ns_.DropOpenHolds(inos, [this, &marked](InodeId i) {
                if (cache_.Tracks(i) || !inodes_.FreeIfUnopened(i)) return false;
                marked.insert(i);
                return true;
              });
          if (freed.ok()) {
            for (const InodeAttr& attr : *freed) {
              marked.erase(attr.ino);
              inodes_.Freed(attr.ino, attr);
              cache_.Discard(attr.ino);  // its readahead state
            }
          } else {
            LogWarning("could not remove this host's holds on %d closed files (kept, tried "
                       "again): %s", inos.size(), freed.status().ToString());
          }
          for (InodeId i : marked) inodes_.NotFreed(i);
          return freed.status();
        });
  }
  absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> damaged = ns_.DamagedFiles();
  if (!damaged.ok()) {
    LogError("could not list the files marked damaged: %s", damaged.status().ToString());
  }
  absl::MutexLock lock(&damaged_mu_);
  if (damaged.ok()) {
    for (auto& [ino, why] : *damaged) damaged_[ino] = std::move(why);
  }
  for (const auto& [ino, why] : options_.also_damaged) damaged_[ino] = why;
  any_damaged_ = !damaged_.empty();
}

absl::Status FileSystem::DamagedError(InodeId ino, const std::string& why) {
  return FsError(FsErrorKind::kIo,
                 absl::StrCat("inode ", ino, " is damaged (", why,
                              "); truncate it to 0 bytes or delete it to use it again"));
}

// Truncated to nothing, a damaged file holds only what is written anew.
absl::Status FileSystem::ClearDamageIfAny(InodeId ino) {
  if (!DamageOf(ino)) return absl::OkStatus();
  if (absl::Status s = ns_.ClearDamage(ino); !s.ok()) return s;
  absl::MutexLock lock(&damaged_mu_);
  damaged_.erase(ino);
  any_damaged_ = !damaged_.empty();
  return absl::OkStatus();
}

std::optional<std::string> FileSystem::DamageOf(InodeId ino) {
  if (!any_damaged_.load(std::memory_order_relaxed)) return std::nullopt;
  absl::MutexLock lock(&damaged_mu_);
  auto it = damaged_.find(ino);
  if (it == damaged_.end()) return std::nullopt;
  return it->second;
}

InodeAttr FileSystem::Visible(InodeAttr attr) {
  return S_ISREG(attr.mode) ? WithWriteTimes(cache_.WithDirtySize(attr)) : attr;
}

namespace {

// How often a file's writes commit their times at most (see WriteTimes).
constexpr int64_t kWriteTimesIntervalNanos = 1'000'000'000;

}  // namespace

InodeAttr FileSystem::WithWriteTimes(InodeAttr attr) {
  if (!any_write_times_.load(std::memory_order_relaxed)) return attr;
  absl::MutexLock lock(&write_times_mu_);
  auto it = write_times_.find(attr.ino);
  if (it == write_times_.end() || !it->second.pending) return attr;
  const Timespec& time = *it->second.pending;
  attr.mtime = std::max(attr.mtime, time);
  attr.ctime = std::max(attr.ctime, time);
  return attr;
}

std::optional<Timespec> FileSystem::TakeWriteTimes(InodeId ino) {
  if (!any_write_times_.load(std::memory_order_relaxed)) return std::nullopt;
  absl::MutexLock lock(&write_times_mu_);
  auto it = write_times_.find(ino);
  if (it == write_times_.end()) return std::nullopt;
  std::optional<Timespec> pending = it->second.pending;
  // The next write commits its times at once, and the table keeps only
  // files written since their last close.
  write_times_.erase(it);
  any_write_times_.store(!write_times_.empty(), std::memory_order_relaxed);
  return pending;
}

void FileSystem::KeepWriteTimes(InodeId ino, const Timespec& time) {
  absl::MutexLock lock(&write_times_mu_);
  WriteTimes& times = write_times_[ino];
  if (!times.pending || time > *times.pending) times.pending = time;
  any_write_times_.store(true, std::memory_order_relaxed);
}

absl::Status FileSystem::CommitTimes(InodeId ino, const Timespec& time) {
  SetAttrRequest touch;
  touch.mtime = touch.ctime = time;
  absl::Status status = ns_.SetAttr(ino, touch).status();
  // A file removed meanwhile has no times to keep.
  if (GetFsErrorKind(status) == FsErrorKind::kNotFound) return absl::OkStatus();
  // Kept for the next try (close, fsync, setattr).
  if (!status.ok()) KeepWriteTimes(ino, time);
  return status;
}

absl::Status FileSystem::CommitWriteTimes(InodeId ino) {
  std::optional<Timespec> pending = TakeWriteTimes(ino);
  if (!pending) return absl::OkStatus();
  return CommitTimes(ino, *pending);
}

void FileSystem::ReleaseIfUnused(InodeId ino) {
  if (inodes_.InUse(ino)) return;
  cache_.Discard(ino);
  if (absl::Status s = ns_.ReleaseInode(ino); !s.ok()) {
    // The orphan stays; the next mount releases it (ReleaseAllOrphans).
    LogError("could not release inode %d: %s", ino, s.ToString());
  }
}

absl::StatusOr<InodeAttr> FileSystem::Lookup(InodeId parent, const std::string& name) {
  absl::StatusOr<InodeAttr> attr = ns_.Lookup(parent, name);
  if (!attr.ok()) return attr.status();
  inodes_.AddLookup(attr->ino);
  return Visible(*attr);
}

void FileSystem::Forget(InodeId ino, uint64_t count) {
  if (ino == kRootInode) return;
  if (!inodes_.Forget(ino, count)) return;
  // Only unlinked inodes are deleted; ReleaseInode ignores linked ones, but
  // asking the namespace for each forget would cost a read, so check nlink.
  absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
  if (attr.ok() && attr->nlink == 0) ReleaseIfUnused(ino);
}

namespace {

bool MayWrite(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

}  // namespace

void FileSystem::Release(InodeId ino, int flags) {
  // Writes after the last close (a shared mapping's pages written back)
  // have their times committed when the last reference goes.
  if (absl::Status s = CommitWriteTimes(ino); !s.ok()) {
    LogWarning("could not commit the times of inode %d's last writes: %s", ino, s.ToString());
  }
  const bool unused = inodes_.ReleaseOpen(ino, MayWrite(flags));
  if (holds_) holds_->Release(ino);
  if (!unused) return;
  absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
  if (attr.ok() && attr->nlink == 0) ReleaseIfUnused(ino);
}

absl::Status FileSystem::DropClosedHolds() {
  return holds_ ? holds_->Flush() : absl::OkStatus();
}

absl::StatusOr<uint64_t> FileSystem::ReleaseUnheldOrphans() {
  return ns_.ReleaseUnheldOrphans(
      [this](InodeId ino) { return !cache_.Tracks(ino) && !inodes_.InUseUnfreed(ino); });
}

absl::StatusOr<InodeAttr> FileSystem::GetAttr(InodeId ino) { return GetAttrRecent(ino, 0); }

absl::StatusOr<InodeAttr> FileSystem::GetAttrRecent(InodeId ino, double max_age_s) {
  if (std::optional<InodeAttr> freed = inodes_.FreedAttr(ino)) return *freed;
  absl::StatusOr<InodeAttr> attr = ns_.GetAttrRecent(ino, max_age_s);
  if (!attr.ok()) return attr.status();
  return Visible(*attr);
}

absl::StatusOr<InodeAttr> FileSystem::SetAttr(InodeId ino, const SetAttrRequest& request) {
  if (!request.size) {
    // The kernel writes back the ctime of what it just unlinked.
    std::optional<InodeAttr> freed = inodes_.FreedAttr(ino, [&](InodeAttr& attr) {
      if (request.mode) attr.mode = (attr.mode & S_IFMT) | (*request.mode & 07777);
      if (request.uid) attr.uid = *request.uid;
      if (request.gid) attr.gid = *request.gid;
      if (request.atime) attr.atime = *request.atime;
      if (request.mtime) attr.mtime = *request.mtime;
      if (request.ctime) attr.ctime = *request.ctime;
    });
    if (freed) return *freed;
  }
  // Times of writes not yet committed go with this commit, unless it sets
  // the mtime itself (utimes after writing: the caller's time wins). A
  // truncate sets its own mtime when the size changes: the writes' go
  // first, so that one to the same size keeps them.
  SetAttrRequest with_write_times = request;
  std::optional<Timespec> written = TakeWriteTimes(ino);
  if (request.mtime) written.reset();
  if (written && request.size) {
    if (absl::Status s = CommitTimes(ino, *written); !s.ok()) return s;
  } else if (written) {
    with_write_times.mtime = *written;
  }
  absl::StatusOr<InodeAttr> attr = request.size ? cache_.SetAttrWithSize(ino, with_write_times)
                                                : ns_.SetAttr(ino, with_write_times);
  if (!attr.ok()) {
    if (written && !request.size) KeepWriteTimes(ino, *written);
    return attr.status();
  }
  if (request.size && *request.size == 0) {
    if (absl::Status s = ClearDamageIfAny(ino); !s.ok()) return s;
  }
  return Visible(*attr);
}

namespace {

absl::Status RemovedWhileHeld() {
  return FsError(FsErrorKind::kStale, "the file was removed; look its name up again");
}

}  // namespace

absl::Status FileSystem::StaleIfFreed(InodeId ino, absl::Status status) {
  if (GetFsErrorKind(status) == FsErrorKind::kNotFound && inodes_.FreedAttr(ino)) {
    return RemovedWhileHeld();
  }
  return status;
}

absl::StatusOr<std::string> FileSystem::ReadLink(InodeId ino) {
  absl::StatusOr<std::string> target = ns_.ReadLink(ino);
  if (!target.ok()) return StaleIfFreed(ino, target.status());
  return target;
}

absl::StatusOr<InodeAttr> FileSystem::MakeNode(InodeId parent, const std::string& name,
                                               const NewNode& node, const Caller& caller) {
  absl::StatusOr<InodeAttr> attr = ns_.MakeNode(parent, name, node, caller);
  if (!attr.ok()) return attr.status();
  inodes_.AddLookup(attr->ino);
  return *attr;
}

absl::StatusOr<InodeAttr> FileSystem::Link(InodeId ino, InodeId new_parent,
                                           const std::string& new_name) {
  absl::StatusOr<InodeAttr> attr = ns_.Link(ino, new_parent, new_name);
  if (!attr.ok()) return attr.status();
  inodes_.AddLookup(attr->ino);
  return Visible(*attr);
}

// Frees, in the commit that removes its last link (unlink, rmdir), an
// inode that no handle has open and the write cache holds nothing of: one
// commit per unlink instead of three (removal, the kernel's ctime
// write-back, the release at forget). One whose data the cache still holds
// is left an orphan by that commit, then its data is dropped and it is
// released at once, in a second commit (not in the first: dropping the
// data takes the file's cache lock, which a store in progress holds while
// it waits for the namespace). One that is open stays an orphan until its
// last close.
class FileSystem::FreeOnRemoval {
 public:
  explicit FreeOnRemoval(FileSystem& fs) : fs_(fs) {}
  NamespaceStore::ReleaseCheck Check() {
    return [this](InodeId ino) {
      // Called with the namespace's lock held: the cache's table lock only
      // (a file whose data is being stored is in that table).
      if (fs_.cache_.Tracks(ino) || !fs_.inodes_.FreeIfUnopened(ino)) return false;
      marked_.insert(ino);
      return true;
    };
  }
  // How the removal went; `gone` is the inode that lost its last link.
  // A body may run more than once (KvStore::Run), each run asking about
  // the inode it then found under the name (another host may have changed
  // it between runs): only the committed run's inode counts as freed, any
  // other one marked is unmarked. The committed run asked about `gone`
  // only if it lost its last link; and a yes (kept, as ReleaseOnce keeps
  // answers) freed it, or left it to the other hosts that hold it open:
  // for this host it is gone either way.
  void Finish(bool committed, const std::optional<InodeAttr>& gone) {
    const bool gone_unlinked = committed && gone && gone->nlink == 0;
    bool freed = false;
    for (InodeId ino : marked_) {
      if (gone_unlinked && ino == gone->ino) {
        freed = true;
      } else {
        fs_.inodes_.NotFreed(ino);
      }
    }
    if (!committed) return;
    if (freed) {
      fs_.inodes_.Freed(gone->ino, *gone);
      fs_.cache_.Discard(gone->ino);  // its readahead state
      return;
    }
    if (!gone || gone->nlink != 0) return;
    if (!fs_.inodes_.FreeIfUnopened(gone->ino)) return;  // released at last close
    fs_.cache_.Discard(gone->ino);
    if (absl::Status s = fs_.ns_.ReleaseInode(gone->ino); !s.ok()) {
      fs_.inodes_.NotFreed(gone->ino);  // retried at forget, or at the next mount
      LogError("could not release inode %d: %s", gone->ino, s.ToString());
      return;
    }
    fs_.inodes_.Freed(gone->ino, *gone);
  }

 private:
  FileSystem& fs_;
  absl::flat_hash_set<InodeId> marked_;  // answered yes: marked freed
};

absl::Status FileSystem::Unlink(InodeId parent, const std::string& name) {
  FreeOnRemoval removal(*this);
  absl::StatusOr<InodeAttr> attr = ns_.Unlink(parent, name, removal.Check());
  removal.Finish(attr.ok(), attr.ok() ? std::optional<InodeAttr>(*attr) : std::nullopt);
  return attr.status();
}

absl::Status FileSystem::Rmdir(InodeId parent, const std::string& name) {
  FreeOnRemoval removal(*this);
  absl::StatusOr<InodeAttr> attr = ns_.Rmdir(parent, name, removal.Check());
  removal.Finish(attr.ok(), attr.ok() ? std::optional<InodeAttr>(*attr) : std::nullopt);
  return attr.status();
}

absl::Status FileSystem::Rename(InodeId parent, const std::string& name, InodeId new_parent,
                                const std::string& new_name, RenameMode mode) {
  // A file replaced by a rename is not freed while the kernel holds it: a
  // reader that found it by the name just before must open it (the name
  // always names a file, so ESTALE and a second lookup could race with
  // the next replacement and fail the open; readers of an atomically
  // replaced file must never fail). It goes when the kernel forgets it.
  absl::StatusOr<std::optional<InodeAttr>> replaced =
      ns_.Rename(parent, name, new_parent, new_name, mode);
  if (!replaced.ok()) return replaced.status();
  if (replaced->has_value() && (*replaced)->nlink == 0) ReleaseIfUnused((*replaced)->ino);
  return absl::OkStatus();
}

absl::Status FileSystem::Open(InodeId ino, int flags) {
  // Found by its name just before an unlink freed it: ESTALE has the
  // kernel look the name up again (ENOENT, or a file created since).
  if (inodes_.FreedAttr(ino)) return RemovedWhileHeld();
  // With atomic O_TRUNC (libfuse asks for it) the kernel only drops its
  // pages and leaves the truncation itself to us; like truncate(2) it sets
  // mtime and ctime even when the file was already empty.
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    SetAttrRequest truncate;
    truncate.size = 0;
    truncate.mtime = truncate.ctime = options_.clock->NowTimespec();
    if (absl::Status s = cache_.SetAttrWithSize(ino, truncate).status(); !s.ok()) return s;
    if (absl::Status s = ClearDamageIfAny(ino); !s.ok()) return s;
  } else if (std::optional<std::string> why = DamageOf(ino)) {
    // The kernel reads no byte of a file whose size the lost write would
    // have set: only the open can tell the reader.
    return DamagedError(ino, *why);
  }
  if (!inodes_.AddOpen(ino, MayWrite(flags))) return RemovedWhileHeld();
  if (holds_) {
    // Counted open first: a removal here meanwhile keeps the inode.
    if (absl::Status s = holds_->Acquire(ino); !s.ok()) {
      inodes_.ReleaseOpen(ino, MayWrite(flags));
      // Another host's removal freed it since the kernel looked it up.
      if (GetFsErrorKind(s) == FsErrorKind::kNotFound) return RemovedWhileHeld();
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<InodeAttr> FileSystem::Create(InodeId parent, const std::string& name,
                                             uint32_t mode, const Caller& caller, int flags) {
  NewNode node;
  node.mode = S_IFREG | (mode & 07777);
  node.hold_open = holds_ != nullptr;
  absl::StatusOr<InodeAttr> attr = ns_.MakeNode(parent, name, node, caller);
  if (!attr.ok()) {
    // The kernel sends CREATE when it believes the name absent; another
    // host (or the S3 frontend) may have made it since. Without O_EXCL
    // open(2) must open that file: ESTALE has the kernel look the name up
    // again and open what it finds, with its own permission checks.
    if (GetFsErrorKind(attr.status()) == FsErrorKind::kExists && !(flags & O_EXCL)) {
      return FsError(FsErrorKind::kStale, "the name was created meanwhile; look it up again");
    }
    return attr.status();
  }
  inodes_.AddLookup(attr->ino);
  inodes_.AddOpen(attr->ino, MayWrite(flags));
  if (holds_) holds_->Adopt(attr->ino);
  return *attr;
}

absl::StatusOr<InodeAttr> FileSystem::Find(InodeId parent, const std::string& name) {
  absl::StatusOr<InodeAttr> attr = ns_.Lookup(parent, name);
  if (!attr.ok()) return attr.status();
  return Visible(*attr);
}

absl::StatusOr<InodeAttr> FileSystem::CreateUnnamed(InodeId parent, uint32_t mode,
                                                    const Caller& caller) {
  NewNode node;
  node.mode = S_IFREG | (mode & 07777);
  node.hold_open = holds_ != nullptr;
  absl::StatusOr<InodeAttr> attr = ns_.MakeOrphan(parent, node, caller);
  if (!attr.ok()) return attr.status();
  inodes_.AddOpen(attr->ino, /*may_write=*/true);
  if (holds_) holds_->Adopt(attr->ino);
  return *attr;
}

absl::StatusOr<std::unique_ptr<BlobStreamWriter>> FileSystem::StreamInto(InodeId ino) {
  absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
  if (!attr.ok()) return attr.status();
  // Only a file nobody can reach by a name, and still empty: the writer
  // commits its blobs one by one, and a reader or another writer would
  // see the file grow (or be overwritten) under it.
  if (!S_ISREG(attr->mode) || attr->nlink != 0 || attr->size != 0) {
    return FsError(FsErrorKind::kInvalid, "only an empty nameless file is streamed into");
  }
  // Without the kernel's writeback cache a write sets the file's times
  // itself (as Write does); the writer does so once, when it finishes.
  return cache_.StreamNewFile(ino, /*touch=*/!kernel_tracks_mtime_);
}

absl::Status FileSystem::Publish(InodeId ino, InodeId parent, const std::string& name,
                                 const PublishCondition& condition) {
  // Stored rather than journaled: the name must not come back after a
  // crash without the data it names, and blobs need no replay.
  if (absl::Status s = cache_.Flush(ino); !s.ok()) return s;
  absl::StatusOr<std::optional<InodeAttr>> replaced =
      ns_.Publish(ino, parent, name, condition);
  if (!replaced.ok()) return replaced.status();
  if (replaced->has_value() && (*replaced)->nlink == 0) ReleaseIfUnused((*replaced)->ino);
  return ns_.Sync();
}

absl::StatusOr<InodeAttr> FileSystem::Concatenate(InodeId target,
                                                  absl::Span<const InodeId> sources) {
  // The extents must hold every byte: nothing of either may wait in the
  // write cache.
  for (InodeId source : sources) {
    if (absl::Status s = cache_.Flush(source); !s.ok()) return s;
  }
  if (absl::Status s = cache_.Flush(target); !s.ok()) return s;
  absl::StatusOr<InodeAttr> attr = ns_.Concatenate(target, sources);
  if (!attr.ok()) return attr.status();
  return Visible(*attr);
}

NamespaceStore::ReleaseCheck FileSystem::PartReleaseCheck() {
  // Nothing but the S3 frontend opens a nameless part, and it releases its
  // handle only after the part's commit: no open can start after this.
  return [this](InodeId ino) { return !cache_.Tracks(ino) && !inodes_.InUse(ino); };
}

absl::Status FileSystem::BeginUpload(std::string_view id, const MultipartUploadRecord& upload) {
  if (absl::Status s = ns_.PutMultipartUpload(id, upload); !s.ok()) return s;
  return ns_.Sync();
}

absl::StatusOr<std::optional<MultipartUploadRecord>> FileSystem::GetUpload(std::string_view id) {
  return ns_.GetMultipartUpload(id);
}

absl::Status FileSystem::ListUploads(
    std::string_view after_id,
    const std::function<bool(const std::string&, const MultipartUploadRecord&)>& fn) {
  return ns_.ListMultipartUploads(after_id, fn);
}

absl::Status FileSystem::ListUploadParts(
    std::string_view id, uint32_t after_number,
    const std::function<bool(const MultipartPartRecord&)>& fn) {
  return ns_.ListMultipartParts(id, after_number, fn);
}

absl::StatusOr<std::optional<MultipartPartRecord>> FileSystem::AddUploadPart(
    std::string_view id, const MultipartPartRecord& part) {
  // The part's extents must hold every byte before the upload counts it.
  if (absl::Status s = cache_.Flush(part.ino); !s.ok()) return s;
  absl::StatusOr<std::optional<MultipartPartRecord>> replaced =
      ns_.PutMultipartPart(id, part, PartReleaseCheck());
  return replaced;
}

absl::Status FileSystem::SyncUploads() { return ns_.Sync(); }

absl::Status FileSystem::AbortUpload(std::string_view id) {
  if (absl::Status s = ns_.DeleteMultipartUpload(id, PartReleaseCheck()); !s.ok()) return s;
  return ns_.Sync();
}

absl::Status FileSystem::PublishUpload(std::string_view id, InodeId ino, InodeId parent,
                                       const std::string& name,
                                       const PublishCondition& condition) {
  if (absl::Status s = cache_.Flush(ino); !s.ok()) return s;
  absl::StatusOr<std::optional<InodeAttr>> replaced =
      ns_.PublishMultipartUpload(id, ino, parent, name, condition, PartReleaseCheck());
  if (!replaced.ok()) return replaced.status();
  if (replaced->has_value() && (*replaced)->nlink == 0) ReleaseIfUnused((*replaced)->ino);
  return ns_.Sync();
}

absl::StatusOr<uint64_t> FileSystem::SeekDataOrHole(InodeId ino, uint64_t offset, bool hole,
                                                     bool kernel_flushed) {
  absl::StatusOr<InodeAttr> attr = GetAttr(ino);
  if (!attr.ok()) return attr.status();
  const uint64_t size = attr->size;
  if (offset >= size) {
    return FsError(FsErrorKind::kNotFound, "SEEK_DATA or SEEK_HOLE at or past the end");
  }
  // Data the kernel may hold, or the write cache has not stored, is not in
  // the extents: without a writer, storing it first makes them whole.
  if ((!kernel_flushed && inodes_.HasWriter(ino)) || !cache_.Flush(ino).ok() ||
      cache_.HoldsUnstoredData(ino)) {
    return hole ? size : offset;
  }
  // A window at a time, so a file of many extents is not listed whole.
  constexpr uint64_t kWindow = 1ull << 30;
  uint64_t pos = offset;  // SEEK_HOLE: data runs up to here
  for (uint64_t from = offset; from < size; from += std::min(kWindow, size - from)) {
    absl::StatusOr<std::vector<Extent>> extents =
        ns_.GetExtents(ino, from, std::min(kWindow, size - from));
    if (!extents.ok()) return extents.status();
    for (const Extent& e : *extents) {
      if (!hole) return std::max(offset, e.file_offset);
      if (e.file_offset > pos) return pos;
      pos = std::max(pos, e.file_offset + e.length);
    }
    if (hole && pos < std::min(size, from + kWindow)) return pos;
  }
  if (!hole) return FsError(FsErrorKind::kNotFound, "no data at or after the offset");
  return std::min(pos, size);
}

absl::StatusOr<std::string> FileSystem::Read(InodeId ino, uint64_t offset, uint64_t length) {
  if (std::optional<std::string> why = DamageOf(ino)) return DamagedError(ino, *why);
  return cache_.Read(ino, offset, length);
}

absl::Status FileSystem::Write(InodeId ino, uint64_t offset, std::string_view data) {
  if (absl::Status s = cache_.Write(ino, offset, data); !s.ok()) return s;
  if (kernel_tracks_mtime_) return absl::OkStatus();
  // Without the writeback cache the kernel does not send the times of a
  // write, so the write itself sets them (see WriteTimes).
  const Timespec now = options_.clock->NowTimespec();
  const int64_t now_nanos = options_.clock->MonotonicNanos();
  {
    absl::MutexLock lock(&write_times_mu_);
    WriteTimes& times = write_times_[ino];
    any_write_times_.store(true, std::memory_order_relaxed);
    if (times.committed_at_nanos &&
        now_nanos - *times.committed_at_nanos < kWriteTimesIntervalNanos) {
      times.pending = now;
      return absl::OkStatus();
    }
    times.pending.reset();
    times.committed_at_nanos = now_nanos;
  }
  SetAttrRequest touch;
  touch.mtime = touch.ctime = now;
  return ns_.SetAttr(ino, touch).status();
}

absl::Status FileSystem::FlushOnClose(InodeId ino) {
  // The times go first: another host's open after this close must see
  // them (close-to-open), and they are not lost with this host.
  absl::Status times = CommitWriteTimes(ino);
  if (!times.ok()) LogError("committing the times of inode %d at close failed: %s", ino,
                            times.ToString());
  if (!options_.shared || options_.read_only) return times;
  absl::Status status = cache_.Flush(ino);
  if (!status.ok()) LogError("storing inode %d at close failed: %s", ino, status.ToString());
  return status.ok() ? times : status;
}

absl::Status FileSystem::Fsync(InodeId ino) {
  if (absl::Status times = CommitWriteTimes(ino); !times.ok()) {
    LogError("fsync of inode %d failed: %s", ino, times.ToString());
    return times;
  }
  // On a shared volume the data must be where other hosts read it, not
  // only in this host's journal.
  absl::Status status = options_.shared ? cache_.Flush(ino) : cache_.Fsync(ino);
  // A failed fsync is reported, never papered over: the data stays dirty in
  // the cache and a later fsync tries again for real.
  if (!status.ok()) LogError("fsync of inode %d failed: %s", ino, status.ToString());
  return status;
}

absl::Status FileSystem::FsyncDir(InodeId) { return ns_.Sync(); }

absl::Status FileSystem::Fallocate(InodeId ino, int mode, uint64_t offset, uint64_t length) {
  if (length == 0) return FsError(FsErrorKind::kInvalid, "fallocate of no bytes");
  if (mode == 0) return ns_.Allocate(ino, offset, length).status();
  // Preallocation without a size change: space is claimed when written.
  if (mode == FALLOC_FL_KEEP_SIZE) return absl::OkStatus();
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    // The hole must also cover data still in the write cache.
    if (absl::Status s = cache_.Flush(ino); !s.ok()) return s;
    return ns_.PunchHole(ino, offset, length).status();
  }
  return FsError(FsErrorKind::kNotSupported, "this fallocate mode is not supported");
}

absl::StatusOr<InodeId> FileSystem::OpenDir(InodeId ino) {
  // A removed working directory still opens (and lists nothing).
  absl::StatusOr<InodeAttr> attr = GetAttr(ino);
  if (!attr.ok()) return attr.status();
  if (!S_ISDIR(attr->mode)) return FsError(FsErrorKind::kNotDirectory, "not a directory");
  return attr->parent;
}

absl::Status FileSystem::ReadDir(
    InodeId dir, uint64_t cookie, bool plus,
    const std::function<bool(const DirEntry&, const InodeAttr&)>& add) {
  return ns_.ReadDir(dir, cookie, [&](const DirEntry& entry) {
    InodeAttr attr;
    attr.ino = entry.ino;
    attr.mode = entry.mode;
    if (plus) {
      absl::StatusOr<InodeAttr> full = ns_.GetAttr(entry.ino);
      if (!full.ok()) return true;  // raced with a removal: skip
      attr = Visible(*full);
    }
    if (!add(entry, attr)) return false;
    // The kernel holds every readdirplus entry it is given, as if it had
    // been looked up.
    if (plus) inodes_.AddLookup(entry.ino);
    return true;
  });
}

absl::Status FileSystem::ScanDir(InodeId dir, std::string_view start,
                                 const std::function<bool(const DirEntry&)>& add) {
  return ns_.ScanDir(dir, start, add);
}

absl::StatusOr<FsUsage> FileSystem::StatFs() {
  absl::StatusOr<StoreUsage> usage = blobs_.Usage();
  if (!usage.ok()) return usage.status();
  absl::StatusOr<NamespaceStats> stats = ns_.Stats();
  if (!stats.ok()) return stats.status();
  if (usage->unbounded) {
    // A bucket has no size. A filesystem of 0 bytes with none free would
    // make df print nothing useful and tools that check for room before
    // writing refuse to, so report, as s3fs and mountpoint-s3 do, a size
    // far above what is stored, its file data counted as used.
    constexpr uint64_t kBucketCapacity = uint64_t{1} << 50;  // 1 PiB
    const uint64_t capacity = std::max(kBucketCapacity, 2 * stats->data_bytes);
    return FsUsage{capacity, capacity - stats->data_bytes, stats->inode_count};
  }
  return FsUsage{usage->capacity_bytes, usage->free_bytes, stats->inode_count};
}

absl::Status FileSystem::SetXattr(InodeId ino, const std::string& name, std::string_view value,
                                  XattrMode mode) {
  if (IsPosixAclName(name)) return FsError(FsErrorKind::kNotSupported, "POSIX ACLs");
  if (name == kLocationXattr) {
    return FsError(FsErrorKind::kNotPermitted, "computed from where the data is");
  }
  return StaleIfFreed(ino, ns_.SetXattr(ino, name, value, mode));
}

absl::StatusOr<std::string> FileSystem::GetXattr(InodeId ino, const std::string& name) {
  if (IsPosixAclName(name)) return FsError(FsErrorKind::kNotSupported, "POSIX ACLs");
  if (name != kLocationXattr) {
    absl::StatusOr<std::string> value = ns_.GetXattr(ino, name);
    if (!value.ok()) return StaleIfFreed(ino, value.status());
    return value;
  }
  // Where the file's data is: local, remote, local+remote or mixed.
  absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
  if (!attr.ok()) return attr.status();
  if (!S_ISREG(attr->mode)) return FsError(FsErrorKind::kNoAttribute, "not a regular file");
  // Written data still in the cache is on the local disks' way.
  if (absl::Status s = cache_.Flush(ino); !s.ok()) return s;
  return FileLocation(ns_, ino);
}

absl::StatusOr<std::vector<std::string>> FileSystem::ListXattr(InodeId ino) {
  absl::StatusOr<std::vector<std::string>> names = ns_.ListXattr(ino);
  if (!names.ok()) return StaleIfFreed(ino, names.status());
  return names;
}

absl::Status FileSystem::RemoveXattr(InodeId ino, const std::string& name) {
  if (IsPosixAclName(name)) return FsError(FsErrorKind::kNotSupported, "POSIX ACLs");
  if (name == kLocationXattr) {
    return FsError(FsErrorKind::kNotPermitted, "computed from where the data is");
  }
  return StaleIfFreed(ino, ns_.RemoveXattr(ino, name));
}

}  // namespace cairn

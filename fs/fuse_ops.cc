// Each handler decodes the request, calls the layer below, maps the result
// and replies exactly once, on every path.
#include "fs/fuse_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "fs/errno_map.h"
#include "fs/fuse_wire.h"

namespace cairn {
namespace {

// Preferred I/O size we report (st_blksize): large enough that cp and tar
// move data in few, large requests.
constexpr blksize_t kPreferredIoBytes = 128 * 1024;

FsContext& Ctx(fuse_req_t req) {
  return *static_cast<FsContext*>(fuse_req_userdata(req));
}

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid};
}

struct stat ToStat(const InodeAttr& attr) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = attr.ino;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_rdev = attr.rdev;
  st.st_size = static_cast<off_t>(attr.size);
  st.st_blksize = kPreferredIoBytes;
  st.st_blocks = static_cast<blkcnt_t>((attr.allocated_bytes + 511) / 512);
  st.st_atim = {attr.atime.sec, attr.atime.nsec};
  st.st_mtim = {attr.mtime.sec, attr.mtime.nsec};
  st.st_ctim = {attr.ctime.sec, attr.ctime.nsec};
  return st;
}

// Counts one request: its operation, its time from handler entry to the end
// of the handler (the reply is sent by then) and whether it failed. A
// handler runs on one loop thread from entry to reply, so the reply helpers
// find the request's scope through a thread-local pointer instead of every
// handler passing it along.
class RequestScope {
 public:
  RequestScope(fuse_req_t req, FuseOp op)
      : metrics_(Ctx(req).metrics), op_(op), start_(std::chrono::steady_clock::now()) {
    current_ = this;
  }
  ~RequestScope() {
    current_ = nullptr;
    auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - start_);
    metrics_.Record(op_, static_cast<uint64_t>(nanos.count()), failed_);
  }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

  static void NoteError() {
    if (current_ != nullptr) current_->failed_ = true;
  }

 private:
  static thread_local RequestScope* current_;
  FuseMetrics& metrics_;
  const FuseOp op_;
  const std::chrono::steady_clock::time_point start_;
  bool failed_ = false;
};

thread_local RequestScope* RequestScope::current_ = nullptr;

// Every errno reply goes through here, so errors are counted (0 is success).
void ReplyErrno(fuse_req_t req, int err) {
  if (err != 0) RequestScope::NoteError();
  fuse_reply_err(req, err);
}

void ReplyError(fuse_req_t req, const absl::Status& status) {
  int err = ErrnoFromStatus(status);
  if (err == EIO || err == ENOSPC) {
    LogWarning("request failed: %s", status.ToString());
  }
  ReplyErrno(req, err == 0 ? EIO : err);
}

fuse_entry_param EntryFor(FsContext& ctx, const InodeAttr& attr) {
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = attr.ino;
  e.generation = 1;  // inode numbers are never reused
  e.attr = ToStat(attr);
  e.attr_timeout = ctx.cache_timeout_seconds;
  e.entry_timeout = ctx.cache_timeout_seconds;
  return e;
}

// Replies with an entry the filesystem counted a lookup for; gives the
// lookup back if the kernel never gets the reply.
void ReplyEntry(fuse_req_t req, const InodeAttr& attr) {
  FsContext& ctx = Ctx(req);
  fuse_entry_param e = EntryFor(ctx, attr);
  if (fuse_reply_entry(req, &e) != 0) ctx.fs->Forget(attr.ino, 1);
}

void ReplyAttr(fuse_req_t req, const InodeAttr& attr) {
  FsContext& ctx = Ctx(req);
  struct stat st = ToStat(attr);
  fuse_reply_attr(req, &st, ctx.cache_timeout_seconds);
}

void ReplyStatus(fuse_req_t req, const absl::Status& status) {
  if (!status.ok()) return ReplyError(req, status);
  ReplyErrno(req, 0);
}

// With FUSE_HANDLE_KILLPRIV_V2 (fs/fuse_wire.h) the kernel leaves it to us
// to clear setuid, and setgid on a group-executable file, when an
// unprivileged write, truncate or O_TRUNC open changes the file, as
// should_remove_suid() does for kernel filesystems. `mode` is the mode
// about to be set (SETATTR), if any.
std::optional<uint32_t> ModeWithoutSuidgid(FsContext& ctx, fuse_ino_t ino,
                                           std::optional<uint32_t> mode) {
  if (!CurrentRequestKillsSuidgid()) return std::nullopt;
  if (!mode) {
    absl::StatusOr<InodeAttr> attr = ctx.fs->GetAttr(ino);
    if (!attr.ok()) return std::nullopt;  // the request itself reports it
    mode = attr->mode & 07777;
  }
  uint32_t cleared = *mode & ~static_cast<uint32_t>(S_ISUID);
  if (cleared & S_IXGRP) cleared &= ~static_cast<uint32_t>(S_ISGID);
  if (cleared == *mode) return std::nullopt;
  return cleared;
}

// The file's new attributes when the bits were cleared; `known_mode` saves
// reading the mode when the caller has it.
absl::StatusOr<std::optional<InodeAttr>> KillSuidgidIfAsked(
    FsContext& ctx, fuse_ino_t ino, std::optional<uint32_t> known_mode = std::nullopt) {
  std::optional<uint32_t> mode = ModeWithoutSuidgid(ctx, ino, known_mode);
  if (!mode) return std::nullopt;
  SetAttrRequest request;
  request.mode = *mode;
  absl::StatusOr<InodeAttr> attr = ctx.fs->SetAttr(ino, request);
  if (!attr.ok()) return attr.status();
  // The reply to a WRITE or OPEN carries no attributes, and the kernel's
  // own time update at close ignores the answer: without this it kept
  // showing the setuid bit until its cached attributes expired.
  if (ctx.session != nullptr) fuse_lowlevel_notify_inval_inode(ctx.session, ino, -1, 0);
  return *attr;
}

// --- Handlers --------------------------------------------------------------

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto& ctx = *static_cast<FsContext*>(userdata);
  // The kernel page cache absorbs small writes and sends large ones; the
  // kernel is the authority for size and mtime while it caches a file. Not
  // on a shared volume: the kernel would then never take a size another
  // host gave the file from us.
  if (!ctx.fs->read_only() && !ctx.fs->shared() &&
      (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    ctx.fs->set_kernel_tracks_mtime(true);
  }
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) {
    conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  }
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) {
    conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  }
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RequestScope scope(req, FuseOp::kLookup);
  FsContext& ctx = Ctx(req);
  absl::StatusOr<InodeAttr> attr = ctx.fs->Lookup(parent, name);
  if (!attr.ok()) {
    if (ErrnoFromStatus(attr.status()) == ENOENT) {
      // A negative entry: the kernel may remember the name is absent. Every
      // creation goes through the kernel, which drops the negative entry.
      fuse_entry_param e;
      memset(&e, 0, sizeof(e));
      e.entry_timeout = ctx.cache_timeout_seconds;
      fuse_reply_entry(req, &e);
      return;
    }
    ReplyError(req, attr.status());
    return;
  }
  ReplyEntry(req, *attr);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  RequestScope scope(req, FuseOp::kForget);
  Ctx(req).fs->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count,
                   fuse_forget_data* forgets) {
  RequestScope scope(req, FuseOp::kBatchForget);
  FsContext& ctx = Ctx(req);
  for (size_t i = 0; i < count; ++i) {
    ctx.fs->Forget(forgets[i].ino, forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kGetattr);
  FsContext& ctx = Ctx(req);
  absl::StatusOr<InodeAttr> attr = ctx.fs->GetAttrRecent(ino, ctx.cache_timeout_seconds);
  if (!attr.ok()) return ReplyError(req, attr.status());
  ReplyAttr(req, *attr);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* st, int to_set,
               fuse_file_info*) {
  RequestScope scope(req, FuseOp::kSetattr);
  FsContext& ctx = Ctx(req);
  SetAttrRequest request;
  if (to_set & FUSE_SET_ATTR_MODE) request.mode = st->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) request.uid = st->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) request.gid = st->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) request.size = st->st_size;
  if (std::optional<uint32_t> mode = ModeWithoutSuidgid(ctx, ino, request.mode)) {
    request.mode = mode;
  }
  Timespec now = ctx.fs->Now();
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    request.atime = now;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    request.atime = Timespec{st->st_atim.tv_sec,
                             static_cast<uint32_t>(st->st_atim.tv_nsec)};
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    request.mtime = now;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    request.mtime = Timespec{st->st_mtim.tv_sec,
                             static_cast<uint32_t>(st->st_mtim.tv_nsec)};
  }
  if (to_set & FUSE_SET_ATTR_CTIME) {
    request.ctime = Timespec{st->st_ctim.tv_sec,
                             static_cast<uint32_t>(st->st_ctim.tv_nsec)};
  }
  absl::StatusOr<InodeAttr> attr = ctx.fs->SetAttr(ino, request);
  if (!attr.ok()) return ReplyError(req, attr.status());
  ReplyAttr(req, *attr);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  RequestScope scope(req, FuseOp::kReadlink);
  absl::StatusOr<std::string> target = Ctx(req).fs->ReadLink(ino);
  if (!target.ok()) return ReplyError(req, target.status());
  fuse_reply_readlink(req, target->c_str());
}

void MakeAndReply(fuse_req_t req, fuse_ino_t parent, const char* name,
                  const NewNode& node) {
  absl::StatusOr<InodeAttr> attr = Ctx(req).fs->MakeNode(parent, name, node, CallerOf(req));
  if (!attr.ok()) return ReplyError(req, attr.status());
  ReplyEntry(req, *attr);
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
             dev_t rdev) {
  RequestScope scope(req, FuseOp::kMknod);
  NewNode node;
  node.mode = mode;
  node.rdev = rdev;
  MakeAndReply(req, parent, name, node);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name,
             mode_t mode) {
  RequestScope scope(req, FuseOp::kMkdir);
  NewNode node;
  node.mode = S_IFDIR | (mode & 07777);
  MakeAndReply(req, parent, name, node);
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent,
               const char* name) {
  RequestScope scope(req, FuseOp::kSymlink);
  NewNode node;
  node.mode = S_IFLNK | 0777;
  node.symlink_target = target;
  MakeAndReply(req, parent, name, node);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RequestScope scope(req, FuseOp::kUnlink);
  ReplyStatus(req, Ctx(req).fs->Unlink(parent, name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RequestScope scope(req, FuseOp::kRmdir);
  ReplyStatus(req, Ctx(req).fs->Rmdir(parent, name));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name,
              fuse_ino_t new_parent, const char* new_name,
              unsigned int flags) {
  RequestScope scope(req, FuseOp::kRename);
  RenameMode mode = RenameMode::kReplace;
  if (flags == RENAME_NOREPLACE) {
    mode = RenameMode::kNoReplace;
  } else if (flags == RENAME_EXCHANGE) {
    mode = RenameMode::kExchange;
  } else if (flags != 0) {
    ReplyErrno(req, EINVAL);  // RENAME_WHITEOUT and combinations
    return;
  }
  ReplyStatus(req, Ctx(req).fs->Rename(parent, name, new_parent, new_name, mode));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent,
            const char* new_name) {
  RequestScope scope(req, FuseOp::kLink);
  absl::StatusOr<InodeAttr> attr = Ctx(req).fs->Link(ino, new_parent, new_name);
  if (!attr.ok()) return ReplyError(req, attr.status());
  ReplyEntry(req, *attr);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kOpen);
  FsContext& ctx = Ctx(req);
  if (absl::Status s = ctx.fs->Open(ino, fi->flags); !s.ok()) return ReplyError(req, s);
  if (absl::Status s = KillSuidgidIfAsked(ctx, ino).status(); !s.ok()) {
    ctx.fs->Release(ino, fi->flags);
    return ReplyError(req, s);
  }
  // Only this daemon writes a single-host volume, so cached pages stay
  // valid across opens; on a shared volume another host may have changed
  // the file since (close-to-open), so an open starts from what is stored.
  fi->keep_cache = ctx.fs->shared() ? 0 : 1;
  // Its cached attributes too: a read that reaches the size the kernel
  // knew then asks for the stored one, which another host may have grown.
  if (ctx.fs->shared() && ctx.session != nullptr) {
    fuse_lowlevel_notify_inval_inode(ctx.session, ino, -1, 0);
  }
  if (fuse_reply_open(req, fi) != 0) ctx.fs->Release(ino, fi->flags);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name,
              mode_t mode, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kCreate);
  FsContext& ctx = Ctx(req);
  absl::StatusOr<InodeAttr> attr = ctx.fs->Create(parent, name, mode, CallerOf(req), fi->flags);
  if (!attr.ok()) return ReplyError(req, attr.status());
  // O_TRUNC of a file that appeared since the kernel looked it up.
  absl::StatusOr<std::optional<InodeAttr>> killed =
      KillSuidgidIfAsked(ctx, attr->ino, attr->mode & 07777);
  if (!killed.ok()) {
    ctx.fs->Release(attr->ino, fi->flags);
    ctx.fs->Forget(attr->ino, 1);
    return ReplyError(req, killed.status());
  }
  if (*killed) attr = **killed;
  fuse_entry_param e = EntryFor(ctx, *attr);
  fi->keep_cache = ctx.fs->shared() ? 0 : 1;
  if (fuse_reply_create(req, &e, fi) != 0) {
    ctx.fs->Release(attr->ino, fi->flags);
    ctx.fs->Forget(attr->ino, 1);
  }
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
            fuse_file_info*) {
  RequestScope scope(req, FuseOp::kRead);
  absl::StatusOr<std::string> data = Ctx(req).fs->Read(ino, offset, size);
  if (!data.ok()) return ReplyError(req, data.status());
  Ctx(req).metrics.read_bytes.fetch_add(data->size(), std::memory_order_relaxed);
  fuse_reply_buf(req, data->data(), data->size());
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size,
             off_t offset, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kWrite);
  FsContext& ctx = Ctx(req);
  if (absl::Status s = KillSuidgidIfAsked(ctx, ino).status(); !s.ok()) return ReplyError(req, s);
  // The kernel places an O_APPEND write at the size it has cached, which
  // on a shared volume another host may have changed since (its append,
  // closed before this open, would be overwritten): the write goes to the
  // end as stored. A page the mmap writeback sends keeps its offset.
  bool moved = false;
  if (ctx.fs->shared() && (fi->flags & O_APPEND) && !fi->writepage) {
    absl::StatusOr<InodeAttr> attr = ctx.fs->GetAttr(ino);
    if (!attr.ok()) return ReplyError(req, attr.status());
    moved = attr->size != static_cast<uint64_t>(offset);
    offset = static_cast<off_t>(attr->size);
  }
  absl::Status status = ctx.fs->Write(ino, offset, std::string_view(buf, size));
  if (!status.ok()) return ReplyError(req, status);
  ctx.metrics.written_bytes.fetch_add(size, std::memory_order_relaxed);
  fuse_reply_write(req, size);
  // The kernel copied the bytes into its cached pages at its own offset
  // and holds them locked until this reply, so only now: drop those pages
  // and the size it derived.
  if (moved && ctx.session != nullptr) fuse_lowlevel_notify_inval_inode(ctx.session, ino, 0, 0);
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kFlush);
  FsContext& ctx = Ctx(req);
  // close(2) promises nothing about durability; data reaches the volume in
  // the background or at fsync, which is where errors are reported. On a
  // shared volume close stores it (close-to-open for the other hosts).
  // Either way the times of the writes it made are committed.
  absl::Status stored = ctx.fs->FlushOnClose(ino);
  // POSIX: any close(2) by a process drops its record locks on the file.
  // The kernel does not track them while we do (shared locks), so the
  // FLUSH of every close carries the process's lock owner for that. After
  // the store: a host that takes the lock next reads what was written
  // under it. Released even if the store failed, as close(2) does.
  if (FileLocks* locks = ctx.fs->file_locks(); locks != nullptr) {
    if (absl::Status s = locks->ReleaseOwner(ino, fi->lock_owner); !s.ok()) {
      // Failing close(2) would not free them either; they go when this
      // host's session ends.
      LogWarning("could not release the locks of a closed file (inode %d): %s", ino,
                 s.ToString());
    }
  }
  if (!stored.ok()) return ReplyError(req, stored);
  ReplyErrno(req, 0);
}

void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t offset, int whence, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kLseek);
  if ((whence != SEEK_DATA && whence != SEEK_HOLE) || offset < 0) return ReplyErrno(req, EINVAL);
  FsContext& ctx = Ctx(req);
  // A writer's pages may still be only in the kernel, and with them the
  // file's size. The kernel holds the file's lock for the seek, so no
  // write(2) starts meanwhile: invalidating its pages makes it write back
  // the dirty ones first. If it cannot, ENOSYS hands this and every later
  // SEEK_DATA/SEEK_HOLE of the mount to the kernel's own answer (the whole
  // file as data), never a wrong one.
  bool kernel_flushed = false;
  if (ctx.fs->HasWriter(ino)) {
    if (ctx.session == nullptr ||
        fuse_lowlevel_notify_inval_inode(ctx.session, ino, 0, 0) != 0) {
      return ReplyErrno(req, ENOSYS);
    }
    kernel_flushed = true;
  }
  absl::StatusOr<uint64_t> at = ctx.fs->SeekDataOrHole(ino, static_cast<uint64_t>(offset),
                                                      whence == SEEK_HOLE, kernel_flushed);
  if (!at.ok()) {
    // Past the end, or no data after the offset: lseek's ENXIO.
    return GetFsErrorKind(at.status()) == FsErrorKind::kNotFound ? ReplyErrno(req, ENXIO)
                                                                  : ReplyError(req, at.status());
  }
  fuse_reply_lseek(req, static_cast<off_t>(*at));
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kRelease);
  FsContext& ctx = Ctx(req);
  // The last close of an open file description that took a flock: its
  // owner is that description.
  if (FileLocks* locks = ctx.fs->file_locks(); locks != nullptr && fi->flock_release) {
    if (absl::Status s = locks->ReleaseOwner(ino, fi->lock_owner); !s.ok()) {
      LogWarning("could not release the flock of a closed file (inode %d): %s", ino,
                 s.ToString());
    }
  }
  ctx.fs->Release(ino, fi->flags);
  ReplyErrno(req, 0);
}

// ---- Shared locks (registered only when the filesystem has FileLocks). ----

LockType LockTypeOf(short l_type) {
  switch (l_type) {
    case F_RDLCK: return LockType::kRead;
    case F_WRLCK: return LockType::kWrite;
    default: return LockType::kUnlock;
  }
}

// libfuse hands a range as l_start and l_len, l_len 0 meaning "to the end
// of the file" (the kernel's OFFSET_MAX), already relative to offset 0.
ByteRangeLock RangeOf(const struct flock& lock) {
  ByteRangeLock range;
  range.type = LockTypeOf(lock.l_type);
  range.start = lock.l_start;
  range.last = lock.l_len == 0 ? kLockToEnd : lock.l_start + lock.l_len - 1;
  range.pid = lock.l_pid;
  return range;
}

// A blocked wait holds one of the session's worker threads; were all of
// them blocked, nobody would read the kernel's next request, not even the
// INTERRUPT that ends a wait. Waits past this many fail with ENOLCK.
constexpr int kMaxBlockedLockWaits = 16;
std::atomic<int> blocked_lock_waits{0};

absl::Status SetWaiting(fuse_req_t req, const std::function<absl::Status(
                                            bool wait, const LockWaitInterrupted&)>& set,
                        bool wait) {
  if (!wait) return set(false, nullptr);
  if (blocked_lock_waits.fetch_add(1) >= kMaxBlockedLockWaits) {
    blocked_lock_waits.fetch_sub(1);
    return FsError(FsErrorKind::kNoLocks,
                   absl::StrCat("more than ", kMaxBlockedLockWaits,
                                " lock waits at once on this mount"));
  }
  absl::Status status = set(true, [req] { return fuse_req_interrupted(req) != 0; });
  blocked_lock_waits.fetch_sub(1);
  return status;
}

void OpGetlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  RequestScope scope(req, FuseOp::kGetlk);
  absl::StatusOr<std::optional<HeldLock>> in_the_way =
      Ctx(req).fs->file_locks()->TestRecordLock(ino, fi->lock_owner, RangeOf(*lock));
  if (!in_the_way.ok()) return ReplyError(req, in_the_way.status());
  struct flock answer = *lock;
  if (!in_the_way->has_value()) {
    answer.l_type = F_UNLCK;
  } else {
    const HeldLock& held = **in_the_way;
    answer.l_type = held.type == LockType::kWrite ? F_WRLCK : F_RDLCK;
    answer.l_whence = SEEK_SET;
    answer.l_start = held.start;
    answer.l_len = held.last == kLockToEnd ? 0 : held.last - held.start + 1;
    answer.l_pid = held.pid;  // 0 for a holder on another host
  }
  fuse_reply_lock(req, &answer);
}

void OpSetlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock,
             int sleep) {
  RequestScope scope(req, FuseOp::kSetlk);
  FileLocks* locks = Ctx(req).fs->file_locks();
  ByteRangeLock range = RangeOf(*lock);
  uint64_t owner = fi->lock_owner;
  ReplyStatus(req, SetWaiting(
                       req,
                       [&](bool wait, const LockWaitInterrupted& interrupted) {
                         return locks->SetRecordLock(ino, owner, range, wait, interrupted);
                       },
                       sleep != 0 && range.type != LockType::kUnlock));
}

void OpFlock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  RequestScope scope(req, FuseOp::kFlock);
  FileLocks* locks = Ctx(req).fs->file_locks();
  LockType type = LockType::kUnlock;
  if (op & LOCK_SH) type = LockType::kRead;
  if (op & LOCK_EX) type = LockType::kWrite;
  uint64_t owner = fi->lock_owner;
  ReplyStatus(req, SetWaiting(
                       req,
                       [&](bool wait, const LockWaitInterrupted& interrupted) {
                         return locks->Flock(ino, owner, type, wait, interrupted);
                       },
                       (op & LOCK_NB) == 0 && type != LockType::kUnlock));
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kFsync);
  ReplyStatus(req, Ctx(req).fs->Fsync(ino));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kOpendir);
  absl::StatusOr<InodeId> parent = Ctx(req).fs->OpenDir(ino);
  if (!parent.ok()) return ReplyError(req, parent.status());
  fi->fh = *parent;  // for ".."
  fuse_reply_open(req, fi);
}

// Offsets handed to the kernel are the namespace's entry cookies ("." is 1,
// ".." is 2), so a listing resumes correctly while the directory changes.
void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                   fuse_file_info* fi, bool plus) {
  FsContext& ctx = Ctx(req);
  std::string buf(size, '\0');
  size_t used = 0;
  bool full = false;

  auto add = [&](const char* name, const InodeAttr& attr, uint64_t next) {
    size_t room = size - used;
    size_t need;
    if (plus) {
      fuse_entry_param e = EntryFor(ctx, attr);
      need = fuse_add_direntry_plus(req, buf.data() + used, room, name, &e,
                                    static_cast<off_t>(next));
    } else {
      struct stat st;
      memset(&st, 0, sizeof(st));
      st.st_ino = attr.ino;
      st.st_mode = attr.mode;
      need = fuse_add_direntry(req, buf.data() + used, room, name, &st,
                               static_cast<off_t>(next));
    }
    if (need > room) {
      full = true;
      return false;
    }
    used += need;
    return true;
  };

  if (offset < 1) {
    InodeAttr self;
    self.ino = ino;
    self.mode = S_IFDIR;
    if (plus) {
      absl::StatusOr<InodeAttr> attr = ctx.fs->GetAttr(ino);
      if (attr.ok()) self = *attr;
    }
    add(".", self, 1);
  }
  if (!full && offset < 2) {
    InodeAttr up;
    up.ino = fi->fh != 0 ? fi->fh : kRootInode;
    up.mode = S_IFDIR;
    if (plus) {
      absl::StatusOr<InodeAttr> attr = ctx.fs->GetAttr(up.ino);
      if (attr.ok()) up = *attr;
    }
    add("..", up, 2);
  }
  absl::Status status;
  if (!full) {
    uint64_t after = offset < 2 ? 2 : static_cast<uint64_t>(offset);
    status = ctx.fs->ReadDir(ino, after, plus, [&](const DirEntry& entry, const InodeAttr& attr) {
      return add(entry.name.c_str(), attr, entry.cookie);
    });
  }
  if (!status.ok() && used == 0) return ReplyError(req, status);
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
               fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kReaddir);
  ReadDirCommon(req, ino, size, offset, fi, /*plus=*/false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                   fuse_file_info* fi) {
  RequestScope scope(req, FuseOp::kReaddirplus);
  ReadDirCommon(req, ino, size, offset, fi, /*plus=*/true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kReleasedir);
  ReplyErrno(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kFsyncdir);
  ReplyStatus(req, Ctx(req).fs->FsyncDir(ino));
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  RequestScope scope(req, FuseOp::kStatfs);
  absl::StatusOr<FsUsage> usage = Ctx(req).fs->StatFs();
  if (!usage.ok()) return ReplyError(req, usage.status());
  constexpr uint64_t kBlock = 4096;
  struct statvfs st;
  memset(&st, 0, sizeof(st));
  st.f_bsize = kBlock;
  st.f_frsize = kBlock;
  st.f_blocks = usage->capacity_bytes / kBlock;
  st.f_bfree = usage->free_bytes / kBlock;
  st.f_bavail = usage->free_bytes / kBlock;
  // Inodes cost namespace space, not a fixed table: report as many free
  // inodes as free blocks, as a filesystem with dynamic inodes does.
  st.f_ffree = st.f_bfree;
  st.f_favail = st.f_bfree;
  st.f_files = usage->inodes + st.f_ffree;
  st.f_namemax = kMaxNameBytes;
  fuse_reply_statfs(req, &st);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                const char* value, size_t size, int flags) {
  RequestScope scope(req, FuseOp::kSetxattr);
  XattrMode mode = XattrMode::kCreateOrReplace;
  if (flags == XATTR_CREATE) {
    mode = XattrMode::kCreateOnly;
  } else if (flags == XATTR_REPLACE) {
    mode = XattrMode::kReplaceOnly;
  } else if (flags != 0) {
    ReplyErrno(req, EINVAL);
    return;
  }
  ReplyStatus(req, Ctx(req).fs->SetXattr(ino, name, std::string_view(value, size), mode));
}

// The size protocol of getxattr and listxattr: 0 asks for the size.
void ReplyXattrValue(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    ReplyErrno(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                size_t size) {
  RequestScope scope(req, FuseOp::kGetxattr);
  absl::StatusOr<std::string> value = Ctx(req).fs->GetXattr(ino, name);
  if (!value.ok()) return ReplyError(req, value.status());
  ReplyXattrValue(req, *value, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  RequestScope scope(req, FuseOp::kListxattr);
  absl::StatusOr<std::vector<std::string>> names = Ctx(req).fs->ListXattr(ino);
  if (!names.ok()) return ReplyError(req, names.status());
  std::string list;
  for (const std::string& name : *names) {
    list.append(name);
    list.push_back('\0');
  }
  ReplyXattrValue(req, list, size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  RequestScope scope(req, FuseOp::kRemovexattr);
  ReplyStatus(req, Ctx(req).fs->RemoveXattr(ino, name));
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                 off_t length, fuse_file_info*) {
  RequestScope scope(req, FuseOp::kFallocate);
  if (offset < 0 || length <= 0) {
    ReplyErrno(req, EINVAL);
    return;
  }
  ReplyStatus(req, Ctx(req).fs->Fallocate(ino, mode, offset, length));
}

fuse_lowlevel_ops MakeOperations(bool shared_locks) {
  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.symlink = OpSymlink;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  ops.fallocate = OpFallocate;
  // The kernel asks only for SEEK_DATA and SEEK_HOLE; while a writer has
  // the file open it may hold pages the daemon has not seen, and the
  // answer is then "all data" (FileSystem::SeekDataOrHole).
  ops.lseek = OpLseek;
  // Registering these makes libfuse ask the kernel for FUSE_POSIX_LOCKS
  // and FUSE_FLOCK_LOCKS; without them the kernel keeps locks itself,
  // which is right for a volume one host mounts.
  if (shared_locks) {
    ops.getlk = OpGetlk;
    ops.setlk = OpSetlk;
    ops.flock = OpFlock;
  }
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& CairnFuseOperations(bool shared_locks) {
  static const fuse_lowlevel_ops local = MakeOperations(false);
  static const fuse_lowlevel_ops shared = MakeOperations(true);
  return shared_locks ? shared : local;
}

}  // namespace cairn

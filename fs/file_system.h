// The filesystem a volume presents: POSIX operations over the namespace and
// the write cache, and the kernel's references to inodes that decide when an
// unlinked file's data may go. The FUSE handlers (fuse_ops.cc) decode a
// request, call one method and reply; tests drive this class directly,
// without FUSE (as mountpoint-s3's reference tests drive its filesystem
// type), so every path a request takes is testable in-process.
//
// Promises (beyond NamespaceStore's and FileDataCache's):
// - An inode that loses its last link keeps its data while the kernel holds
//   a lookup or an open of it; it is deleted when the last one goes (Forget,
//   Release), or at the next mount if the daemon stops first.
//   On a namespace several hosts share, "the kernel" is every host's: each
//   host's opens are recorded as holds in the namespace (open_holds.h), and
//   the data stays while any host holds it open (lookups alone, without an
//   open, keep nothing on other hosts: NFS's ESTALE).
// - Errors carry the FsErrorKind of the exact POSIX condition; nothing here
//   knows errno values.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <fcntl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/file_locks.h"
#include "backend/namespace/namespace_store.h"
#include "cache/file_data_cache.h"
#include "fs/inode_table.h"
#include "fs/open_holds.h"

namespace cairn {

// What statfs reports.
struct FsUsage {
  uint64_t capacity_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t inodes = 0;
};

class FileSystem {
 public:
  struct Options {
    bool read_only = false;
    Clock* clock = Clock::Default();
    // Files damaged beyond those the namespace marks: a read-only mount's
    // replay cannot mark them there, yet they must fail their reads.
    std::vector<std::pair<InodeId, std::string>> also_damaged;
    // Other hosts mount the volume too (a shared volume): close and fsync
    // store a file's data in the volume before they return, so that an
    // open on another host that starts after the close sees it all
    // (close-to-open), and no acknowledged write waits in this host's
    // journal for this host to come back.
    bool shared = false;
    // A shared volume's flock and fcntl locks, which every host sees
    // (PgFileLocks); it must outlive the filesystem. Null (a volume one
    // host mounts): the FUSE layer registers no lock handlers and the
    // kernel keeps locks itself, local to this host.
    FileLocks* file_locks = nullptr;
  };
  // The parts must outlive the filesystem.
  FileSystem(NamespaceStore& ns, BlobStore& blobs, FileDataCache& cache, Options options);

  // With the kernel's writeback cache, the kernel keeps mtime and ctime of
  // written files and sends them with setattr; without it a write sets them
  // itself. Set once, before the first request.
  void set_kernel_tracks_mtime(bool tracks) { kernel_tracks_mtime_ = tracks; }
  bool read_only() const { return options_.read_only; }
  bool shared() const { return options_.shared; }
  // The namespace it serves (a mount subscribes to other hosts' changes).
  NamespaceStore& namespace_store() { return ns_; }
  // The shared lock table, or null when the kernel keeps locks.
  FileLocks* file_locks() const { return options_.file_locks; }
  // The time a request that says "now" (UTIME_NOW) means.
  Timespec Now() { return options_.clock->NowTimespec(); }

  // --- References the kernel holds. Methods that return an inode the kernel
  // will hold (Lookup, MakeNode, Link, Create, ReadDirPlus entries) count a
  // lookup; the kernel gives them back with Forget. Open and Create count an
  // open, given back with Release.
  absl::StatusOr<InodeAttr> Lookup(InodeId parent, const std::string& name);
  void Forget(InodeId ino, uint64_t count);
  // `flags`: those the handle was opened with.
  void Release(InodeId ino, int flags);
  // close(2) of a handle: commits the times of its writes not yet
  // committed (see WriteTimes); on a shared volume stores the file's data
  // (see Options::shared) and reports a failure; elsewhere stores nothing,
  // as close promises nothing about durability.
  absl::Status FlushOnClose(InodeId ino);

  // On a namespace several hosts share: deletes the holds of dead
  // sessions and frees the orphans no live session holds and this host
  // does not use (NamespaceStore::ReleaseUnheldOrphans). The volume's
  // leader runs it from time to time; returns how many it freed.
  absl::StatusOr<uint64_t> ReleaseUnheldOrphans();
  // On a namespace several hosts share: removes now this host's holds on
  // the files it closed, which otherwise go in the background within
  // tens of milliseconds (fs/open_holds.h), freeing the orphans among them
  // no other host holds. A no-op elsewhere.
  absl::Status DropClosedHolds();

  // Attributes as the user sees them: a regular file's size covers data
  // still in the write cache.
  absl::StatusOr<InodeAttr> GetAttr(InodeId ino);
  // GetAttr for the kernel's GETATTR, which trusts the answer for
  // `max_age_s`: see NamespaceStore::GetAttrRecent.
  absl::StatusOr<InodeAttr> GetAttrRecent(InodeId ino, double max_age_s);
  // chmod, chown, utimes, truncate (a size goes through the write cache).
  absl::StatusOr<InodeAttr> SetAttr(InodeId ino, const SetAttrRequest& request);
  absl::StatusOr<std::string> ReadLink(InodeId ino);

  absl::StatusOr<InodeAttr> MakeNode(InodeId parent, const std::string& name,
                                     const NewNode& node, const Caller& caller);
  absl::StatusOr<InodeAttr> Link(InodeId ino, InodeId new_parent, const std::string& new_name);
  absl::Status Unlink(InodeId parent, const std::string& name);
  absl::Status Rmdir(InodeId parent, const std::string& name);
  absl::Status Rename(InodeId parent, const std::string& name, InodeId new_parent,
                      const std::string& new_name, RenameMode mode);

  // open(2) of an existing file with `flags` (O_TRUNC truncates, as the
  // kernel leaves that to us with atomic O_TRUNC).
  absl::Status Open(InodeId ino, int flags);
  // A new regular file, opened with `flags`. A name that exists fails with
  // kExists under O_EXCL, else with kStale: open(2) must then open that
  // file, which the kernel does when it looks the name up again.
  absl::StatusOr<InodeAttr> Create(InodeId parent, const std::string& name, uint32_t mode,
                                   const Caller& caller, int flags = O_RDWR);
  // --- Files callers other than the kernel make and name (the S3
  // frontend). A lookup the kernel does not hold: counts nothing.
  absl::StatusOr<InodeAttr> Find(InodeId parent, const std::string& name);
  // A regular file without a name (as O_TMPFILE makes), counted as one open
  // that may write and no lookup. Write to it, then Publish it; Release
  // frees it if it never got a name (and the next mount does if the daemon
  // stops first).
  absl::StatusOr<InodeAttr> CreateUnnamed(InodeId parent, uint32_t mode, const Caller& caller);
  // A writer of the nameless file `ino` (CreateUnnamed, nothing written to
  // it yet) that cuts its data into blobs as it comes, front to back,
  // instead of going through the write cache and its journal: each byte
  // is written to disk once (BlobStreamWriter). Finish it before Publish;
  // a writer destroyed unfinished leaves only what it committed, which
  // goes with the file.
  absl::StatusOr<std::unique_ptr<BlobStreamWriter>> StreamInto(InodeId ino);
  // Stores the nameless file's data in blobs and gives it the name
  // `parent`/`name` in one commit (NamespaceStore::Publish), synced before
  // it returns: what it published survives a crash, whole. A file it
  // replaced goes as one replaced by rename(2) does.
  absl::Status Publish(InodeId ino, InodeId parent, const std::string& name,
                       const PublishCondition& condition);
  // Fills the empty file `target` with the data of `sources`, in order,
  // sharing their blobs (NamespaceStore::Concatenate): S3's multipart
  // upload completes without copying its parts.
  absl::StatusOr<InodeAttr> Concatenate(InodeId target, absl::Span<const InodeId> sources);

  // S3 multipart uploads kept in the namespace (NamespaceStore's calls of
  // the same names), each change synced before it returns but one. A part is a
  // file CreateUnnamed made and the upload holds: its handle may be
  // released at once, the file stays until the upload drops it.
  absl::Status BeginUpload(std::string_view id, const MultipartUploadRecord& upload);
  absl::StatusOr<std::optional<MultipartUploadRecord>> GetUpload(std::string_view id);
  absl::Status ListUploads(
      std::string_view after_id,
      const std::function<bool(const std::string& id, const MultipartUploadRecord&)>& fn);
  absl::Status ListUploadParts(std::string_view id, uint32_t after_number,
                               const std::function<bool(const MultipartPartRecord&)>& fn);
  // Returns the part it replaced (freed with this commit, unless open).
  // Not synced, so that a caller may order its commits under a lock of its
  // own and sync after (SyncUploads).
  absl::StatusOr<std::optional<MultipartPartRecord>> AddUploadPart(
      std::string_view id, const MultipartPartRecord& part);
  absl::Status SyncUploads();
  absl::Status AbortUpload(std::string_view id);
  // Publish of the upload's object, in one commit with the upload's end.
  absl::Status PublishUpload(std::string_view id, InodeId ino, InodeId parent,
                             const std::string& name, const PublishCondition& condition);

  // lseek(2) with SEEK_DATA (`hole` false) or SEEK_HOLE: the first offset
  // at or after `offset` where data (or a hole) starts; kNotFound (ENXIO)
  // at or past the end. Precise only while no handle that may write is
  // open (the kernel may hold written pages not yet sent) or the kernel was
  // made to send them; else the whole file counts as data, as for a
  // filesystem without holes.
  // `kernel_flushed`: the caller made the kernel write back every page it
  // held for the file (and no write can start meanwhile), so writers do not
  // make the answer coarse.
  absl::StatusOr<uint64_t> SeekDataOrHole(InodeId ino, uint64_t offset, bool hole,
                                          bool kernel_flushed = false);
  // Whether a handle that may write has the file open.
  bool HasWriter(InodeId ino) { return inodes_.HasWriter(ino); }
  absl::StatusOr<std::string> Read(InodeId ino, uint64_t offset, uint64_t length);
  absl::Status Write(InodeId ino, uint64_t offset, std::string_view data);
  absl::Status Fsync(InodeId ino);
  absl::Status FsyncDir(InodeId ino);
  // fallocate(2): mode 0, FALLOC_FL_KEEP_SIZE, or PUNCH_HOLE|KEEP_SIZE.
  absl::Status Fallocate(InodeId ino, int mode, uint64_t offset, uint64_t length);

  // opendir(2): the directory's parent, for "..".
  absl::StatusOr<InodeId> OpenDir(InodeId ino);
  // Entries of `dir` after `cookie` ("." and ".." excluded), each with its
  // full attributes when `plus` (readdirplus), until `add` returns false.
  // An entry `add` accepts in a plus listing counts a lookup. An entry
  // removed while listing is skipped.
  absl::Status ReadDir(InodeId dir, uint64_t cookie, bool plus,
                       const std::function<bool(const DirEntry&, const InodeAttr&)>& add);
  // Entries of `dir` whose names are `start` or after it, in bytewise order
  // of name (NamespaceStore::ScanDir), until `add` returns false. Counts no
  // lookup: for callers other than the kernel (the S3 listing).
  absl::Status ScanDir(InodeId dir, std::string_view start,
                       const std::function<bool(const DirEntry&)>& add);

  absl::StatusOr<FsUsage> StatFs();

  // Extended attributes. POSIX ACLs are refused (kNotSupported): stored
  // without effect they would make cp -a believe a mode was applied. The
  // computed user.cairn.location is read-only (kNotPermitted).
  absl::Status SetXattr(InodeId ino, const std::string& name, std::string_view value,
                        XattrMode mode);
  absl::StatusOr<std::string> GetXattr(InodeId ino, const std::string& name);
  absl::StatusOr<std::vector<std::string>> ListXattr(InodeId ino);
  absl::Status RemoveXattr(InodeId ino, const std::string& name);

 private:
  // Deletes an unlinked inode once the kernel holds no reference to it.
  class FreeOnRemoval;
  // ESTALE instead of ENOENT for an inode freed while the kernel held it
  // (fs/inode_table.h): the kernel then looks the name up again, as for
  // NFS, so a path that now names another file reaches that one.
  absl::Status StaleIfFreed(InodeId ino, absl::Status status);
  void ReleaseIfUnused(InodeId ino);
  InodeAttr Visible(InodeAttr attr);
  // May an upload's part be freed in the commit that drops it? Not while
  // a handle is open (its UploadPart is still finishing): that one frees
  // it at its close.
  NamespaceStore::ReleaseCheck PartReleaseCheck();

  // Why `ino` must not be read (it lost a write to damage), if it must not.
  std::optional<std::string> DamageOf(InodeId ino);
  static absl::Status DamagedError(InodeId ino, const std::string& why);
  absl::Status ClearDamageIfAny(InodeId ino);

  // Commits the times of `ino`'s writes kept since its last commit.
  absl::Status CommitWriteTimes(InodeId ino);
  // Takes them out (for a setattr that commits them, or overrides them).
  std::optional<Timespec> TakeWriteTimes(InodeId ino);
  // Puts them back after a failed commit, unless newer ones came meanwhile.
  void KeepWriteTimes(InodeId ino, const Timespec& time);
  absl::Status CommitTimes(InodeId ino, const Timespec& time);
  InodeAttr WithWriteTimes(InodeAttr attr);

  NamespaceStore& ns_;
  BlobStore& blobs_;
  FileDataCache& cache_;
  const Options options_;
  bool kernel_tracks_mtime_ = false;
  // Without the kernel's writeback cache a write sets its file's mtime and
  // ctime itself. A commit per write cost a namespace transaction per
  // write(2) (on a shared volume, a database round trip and WAL flush:
  // 4 KiB writes ran at 9 MiB/s), so only a file's first write in a
  // second (kWriteTimesIntervalNanos) commits its times; the later ones
  // are kept here and committed at close, fsync, the file's next setattr,
  // a handle's release or its next write after the second. This host's
  // stat sees them at once.
  struct WriteTimes {
    std::optional<Timespec> pending;
    std::optional<int64_t> committed_at_nanos;  // MonotonicNanos of the last commit
  };
  absl::Mutex write_times_mu_;
  absl::flat_hash_map<InodeId, WriteTimes> write_times_ ABSL_GUARDED_BY(write_times_mu_);
  std::atomic<bool> any_write_times_{false};
  InodeTable inodes_;
  // This host's holds on the inodes it has open; null on a single-host
  // namespace, which records none.
  std::unique_ptr<OpenHolds> holds_;
  // Files the namespace marks damaged (NamespaceStore::MarkDamaged); read
  // on every read, so kept here; almost always empty.
  absl::Mutex damaged_mu_;
  absl::flat_hash_map<InodeId, std::string> damaged_ ABSL_GUARDED_BY(damaged_mu_);
  std::atomic<bool> any_damaged_{false};
};

}  // namespace cairn

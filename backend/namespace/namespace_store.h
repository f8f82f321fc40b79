// The namespace of a cairn volume: inodes, directory entries, xattrs, the
// layout of file data (extents) and the records of the blobs holding it, all
// in one transactional key-value store (kv_store.h): an embedded RocksDB
// database by default.
//
// Promises:
// - Every mutating call is one transaction of the store (one atomic RocksDB
//   write batch): after a crash the namespace shows the state before or
//   after the call, never a mix.
// - Lookup and GetAttr are point reads; ReadDir and ScanDir are range scans.
//   Costs grow with log(n) of the namespace, never with n.
// - Mutations are written to the RocksDB WAL without fsync (they survive a
//   daemon crash, as the OS has them); Sync() makes everything committed so
//   far survive a machine crash. fsync/fsyncdir call it.
// - Errors carry an FsErrorKind (backend/fs_error.h) naming the exact POSIX
//   condition (ENOTEMPTY, EXDEV-free rename rules, ENODATA, ...).
//
// Not promised: permission checks. The kernel checks permissions against the
// attributes we report (FUSE default_permissions); the namespace only applies
// the ownership rules for new inodes (setgid directories).
//
// Thread safety: all methods may be called concurrently. Mutations are
// serialised internally; reads do not wait for them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "backend/base/types.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

// Which attributes a SetAttr call changes. Unset fields stay as they are.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits only (07777); type kept
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;  // truncate or extend (extension is a hole)
  std::optional<Timespec> atime;  // already resolved: UTIME_NOW -> now
  std::optional<Timespec> mtime;
  std::optional<Timespec> ctime;  // explicit ctime (FUSE may send one)
  // With `size`: the writeback journal's record of this truncate; when
  // larger, it becomes the file's journal mark in the same commit (as in
  // CommitWrite), so a replay does not apply the truncate again.
  std::optional<uint64_t> journal_mark;
};

// What to create in MakeNode.
struct NewNode {
  uint32_t mode = 0;  // type and permission bits (S_IFREG|0644, S_IFDIR|...)
  uint64_t rdev = 0;  // device number for S_IFCHR/S_IFBLK
  std::string symlink_target;  // for S_IFLNK only; 1..4095 bytes
  // The create is an open (O_CREAT): on a namespace that records open
  // holds, this host's hold is written in the create's commit.
  bool hold_open = false;
};

// One entry of a directory listing.
struct DirEntry {
  std::string name;
  InodeId ino = 0;
  uint32_t mode = 0;  // the child's file type bits (S_IFMT part) only
  // Position of this entry: listing again after `cookie` resumes right after
  // it, even if entries were added or removed meanwhile. Cookies of live
  // entries are unique and increase in listing order; they start at 3
  // (1 and 2 are left for "." and "..").
  uint64_t cookie = 0;
};

// A piece of file data: file range [file_offset, file_offset+length) is
// stored either in blob `blob_id` at `blob_offset`, or inline in the
// namespace (blob_id == kNoBlob, inline_data.size() == length).
struct Extent {
  uint64_t file_offset = 0;
  uint64_t length = 0;
  BlobId blob_id = kNoBlob;
  uint64_t blob_offset = 0;
  std::string inline_data;
  friend bool operator==(const Extent&, const Extent&) = default;
};

// A blob the caller has stored durably and now asks the namespace to record.
struct NewBlob {
  BlobId id = kNoBlob;
  uint64_t length = 0;   // bytes of (uncompressed) file data it holds
  uint32_t crc32c = 0;   // checksum of those bytes
};

// Where a blob's data is (the remote tier moves cold blobs out).
enum class BlobLocation : uint8_t {
  kLocal = 0,    // on the local disks only
  kBoth = 1,     // on the local disks, and a verified copy in the remote tier
  kRemote = 2,   // in the remote tier only: the local shards are freed
  kFreeing = 3,  // the remote copy is verified and authoritative; the local
                 // shards are being freed (a crash leaves some to delete)
};

// True when the blob's data counts only in the remote tier: its local
// shards are freed, or being freed.
inline bool InRemoteTierOnly(BlobLocation location) {
  return location == BlobLocation::kRemote || location == BlobLocation::kFreeing;
}

// Record of a blob the namespace knows.
struct BlobRecord {
  uint64_t length = 0;
  uint32_t crc32c = 0;
  uint64_t refcount = 0;  // extents that reference it
  // Bytes of it that extents still reference, and the file whose data it
  // holds (0 for blobs recorded before these were tracked: live_bytes is
  // then its length). Compaction rewrites blobs that are mostly dead.
  uint64_t live_bytes = 0;
  InodeId owner = 0;
  BlobLocation location = BlobLocation::kLocal;
};

// One live range moved by compaction: the file's bytes at [file_offset,
// file_offset+length), held in old_blob at old_blob_offset, are now also in
// new_blob at new_blob_offset.
struct Relocation {
  uint64_t file_offset = 0;
  uint64_t length = 0;
  BlobId old_blob = kNoBlob;
  uint64_t old_blob_offset = 0;
  BlobId new_blob = kNoBlob;
  uint64_t new_blob_offset = 0;
};

enum class XattrMode { kCreateOrReplace, kCreateOnly, kReplaceOnly };

enum class RenameMode { kReplace, kNoReplace, kExchange };

// What Publish requires of the name it links to, checked in its commit (a
// compare-and-swap: S3's conditional PUT).
struct PublishCondition {
  enum class Kind {
    kAny,           // absent, or a regular file (replaced)
    kMustBeAbsent,  // If-None-Match: *
    kMustBe,        // If-Match: the inode `ino` with ctime `ctime` (unchanged since read)
  };
  Kind kind = Kind::kAny;
  InodeId ino = 0;
  Timespec ctime;
};

struct NamespaceStats {
  uint64_t inode_count = 0;     // live inodes (including orphans)
  uint64_t data_bytes = 0;      // sum of referenced blob lengths + inline bytes
  // Since open: batches appended to the log (each mutation is one), and
  // syncs of the log (fsync and friends).
  uint64_t log_writes = 0;
  uint64_t log_syncs = 0;
};

struct NamespaceOptions {
  // Where the database's files are, and the time of every change.
  Env* env = Env::Default();
  Clock* clock = Clock::Default();
  // Blobs become collectable this long after the last reference went away,
  // so a reader holding a stale extent list can still read them.
  int64_t gc_grace_seconds = 60;
  // Create the database if missing (format); otherwise missing is an error.
  bool create_if_missing = false;
  // Queue every blob registered for the replica, in the batch that registers
  // it (the volume has a [replica]).
  bool queue_replication = false;
  // Memory for RocksDB's block cache; the write buffers (memtables) are
  // charged to it and flushed once they hold write_buffer_bytes, so the
  // namespace's memory stays near cache_bytes whatever the load.
  uint64_t cache_bytes = 64ull << 20;
  uint64_t write_buffer_bytes = 32ull << 20;
  // Open without changing anything (a backup's checkpoint is read this
  // way); every mutation fails.
  bool read_only = false;
  // A log with a damaged record refuses the open (kDataLoss): replaying
  // past it, or stopping at it, would silently drop committed changes.
  // When set (cairn fsck --repair), the open instead skips each damaged
  // stretch, keeps every intact record after it, adds one line per stretch
  // here, and writes everything to tables so the damaged log is retired.
  std::vector<std::string>* salvaged_log = nullptr;
  // Called when a write of the log found the disk full, to free space kept
  // for that moment (the volume's reserve file); true when it freed some,
  // and the write is then tried once more. Called with the namespace's
  // write lock held: it must not call back into the namespace.
  std::function<bool()> make_room;
};

// A blob waiting to be copied to the replica.
struct QueuedReplication {
  BlobId id = kNoBlob;
  int64_t queued_sec = 0;  // when its commit queued it
  uint64_t length = 0;
};

// How far the replica is behind.
struct ReplicationBacklog {
  uint64_t blobs = 0;        // counted up to the caller's limit
  uint64_t bytes = 0;
  int64_t oldest_sec = 0;    // queued time of the oldest entry; 0 when empty
  bool counted_all = true;   // false: more than the limit are queued
};

// What NamespaceStore::Check found (see backend/namespace_check.h).
struct NamespaceCheckReport {
  uint64_t inodes = 0;
  uint64_t directories = 0;
  uint64_t files = 0;
  uint64_t orphans = 0;      // unlinked but still open at the last stop
  uint64_t multipart_uploads = 0;  // S3 uploads under way
  uint64_t multipart_parts = 0;    // their parts (orphans they hold)
  uint64_t extents = 0;
  uint64_t data_bytes = 0;   // bytes of file data the extents hold
  // Blobs the namespace records, so the caller can verify each one in the
  // blob store.
  std::vector<std::pair<BlobId, BlobRecord>> blobs;
  std::vector<std::string> problems;  // one line each; empty when clean
};

// An S3 multipart upload under way (frontend/s3_multipart.cc), kept so
// that it survives a restart. The namespace reads none of it but the part
// inodes, which it keeps while the upload holds them.
struct MultipartUploadRecord {
  std::string bucket, key;
  uint32_t uid = 0, gid = 0;
  std::string access_key;
  Timespec initiated;
  // The object's stored headers (Content-Type, x-amz-meta-*), lower case.
  std::vector<std::pair<std::string, std::string>> headers;
  // "x-amz-checksum-crc32c" and the like, or empty: every part carries it.
  std::string checksum_header;
  friend bool operator==(const MultipartUploadRecord&, const MultipartUploadRecord&) = default;
};

// One uploaded part: a nameless file (an orphan) the upload holds.
struct MultipartPartRecord {
  uint32_t number = 0;  // 1..10000
  InodeId ino = 0;
  uint64_t size = 0;
  std::string etag;      // unquoted MD5 hex
  std::string checksum;  // the upload's checksum of the part (base64), or empty
  Timespec modified;
  friend bool operator==(const MultipartPartRecord&, const MultipartPartRecord&) = default;
};

// What another host changed, as far as this host's caches care.
struct NamespaceChange {
  enum class Kind {
    kInode,  // `ino`'s attributes, data (extents), xattrs or listing
    kEntry,  // the name `name` in directory `ino` (added, removed, replaced)
  };
  Kind kind = Kind::kInode;
  InodeId ino = 0;
  std::string name;
  bool operator==(const NamespaceChange&) const = default;
};
// Called from a thread of the namespace with one committed transaction's
// changes, each listed once.
using NamespaceChangeFn = std::function<void(const std::vector<NamespaceChange>&)>;
// Ends a subscription when destroyed; it must go before the namespace.
class NamespaceWatch {
 public:
  virtual ~NamespaceWatch() = default;
};

class NamespaceStore {
 public:
  // Opens (or with create_if_missing, creates) the database in `db_dir`:
  // the RocksDB store (rocksdb_namespace.h).
  // A new database gets a root directory (inode 1, mode 0755 S_IFDIR, owned
  // by root) and the volume metadata keys are left to the caller
  // (SetVolumeMeta).
  static absl::StatusOr<std::unique_ptr<NamespaceStore>> Open(
      const std::string& db_dir, const NamespaceOptions& options);

  virtual ~NamespaceStore() = default;

  // --- Lookups -------------------------------------------------------------
  virtual absl::StatusOr<InodeAttr> Lookup(InodeId parent,
                                           std::string_view name) = 0;
  virtual absl::StatusOr<InodeAttr> GetAttr(InodeId ino) = 0;
  // GetAttr for the kernel, which trusts what it gets for `max_age_s`
  // anyway (0: exactly GetAttr): a shared namespace whose change feed is
  // watched may answer for a directory from its own last commit of it,
  // made at most `max_age_s` ago, unless the feed has since told of
  // another host's change to it (or another commit of this host may have
  // overtaken it).
  // Saves the round trip of the GETATTR the kernel sends for the
  // directory after each create, rename or unlink in it.
  virtual absl::StatusOr<InodeAttr> GetAttrRecent(InodeId ino, double max_age_s) {
    return GetAttr(ino);
  }
  virtual absl::StatusOr<std::string> ReadLink(InodeId ino) = 0;

  // Lists entries of `dir` with cookie > after_cookie in cookie order, calling
  // `fn` for each until it returns false. "." and ".." are not included.
  virtual absl::Status ReadDir(
      InodeId dir, uint64_t after_cookie,
      const std::function<bool(const DirEntry&)>& fn) = 0;
  // Lists entries of `dir` whose names are `start` or after it, in bytewise
  // order of name (not ReadDir's cookie order), calling `fn` for each until
  // it returns false: a range scan of the directory's entries from `start`,
  // so a caller that resumes at a name pays log(n) plus what it reads.
  // "." and ".." are not included.
  virtual absl::Status ScanDir(
      InodeId dir, std::string_view start,
      const std::function<bool(const DirEntry&)>& fn) = 0;

  // --- Namespace mutations -------------------------------------------------
  // Creates a regular file, directory, symlink, fifo, socket or device node.
  // Owner is the caller; in a setgid directory the group is the directory's
  // and a new directory inherits S_ISGID.
  virtual absl::StatusOr<InodeAttr> MakeNode(InodeId parent,
                                             std::string_view name,
                                             const NewNode& node,
                                             const Caller& caller) = 0;
  // Adds a hard link to a non-directory.
  virtual absl::StatusOr<InodeAttr> Link(InodeId ino, InodeId new_parent,
                                         std::string_view new_name) = 0;
  // Asked, with the namespace's lock held, about an inode that is losing
  // its last link: true frees it (extents, xattrs, record) in the same
  // commit as the removal; false makes it an orphan, kept until
  // ReleaseInode. It must not call back into the namespace. A commit that
  // then fails frees nothing, so a caller that marked the inode undoes that.
  using ReleaseCheck = std::function<bool(InodeId)>;

  // Removes a non-directory entry. If the inode's link count reaches zero it
  // is freed when `release_now` says so, else it becomes an orphan: its
  // data stays until ReleaseInode. Returns the inode as it is after the
  // call (nlink possibly 0; then ReleaseInode if it was not freed).
  virtual absl::StatusOr<InodeAttr> Unlink(InodeId parent, std::string_view name,
                                           const ReleaseCheck& release_now = {}) = 0;
  // Removes an empty directory entry; the directory is freed when
  // `release_now` says so, else it becomes an orphan.
  virtual absl::StatusOr<InodeAttr> Rmdir(InodeId parent, std::string_view name,
                                          const ReleaseCheck& release_now = {}) = 0;
  // rename(2)/renameat2(2). Returns the inode that lost its last link by
  // being replaced, if any: freed when `release_now` said so, else an orphan.
  virtual absl::StatusOr<std::optional<InodeAttr>> Rename(
      InodeId old_parent, std::string_view old_name, InodeId new_parent,
      std::string_view new_name, RenameMode mode, const ReleaseCheck& release_now = {}) = 0;
  // A regular file with no name (O_TMPFILE): an orphan from the start, so
  // the next mount frees it if nothing published it. Its group follows
  // `parent` as MakeNode's would.
  virtual absl::StatusOr<InodeAttr> MakeOrphan(InodeId parent, const NewNode& node,
                                               const Caller& caller) = 0;
  // Gives the nameless regular file `ino` the name `parent`/`name` in one
  // commit, replacing a regular file there when `condition` allows: kExists
  // when it must be absent and is not, kNotFound when an expected file is
  // absent, kStale when another file (or a changed one) is there; a
  // directory there is kIsDirectory, whatever the condition.
  // Returns the replaced inode if it lost its last link: freed when
  // `release_now` said so, else an orphan.
  virtual absl::StatusOr<std::optional<InodeAttr>> Publish(
      InodeId ino, InodeId parent, std::string_view name, const PublishCondition& condition,
      const ReleaseCheck& release_now = {}) = 0;
  // Fills the empty regular file `target` with the data of each of
  // `sources` in turn (S3's CompleteMultipartUpload), in one commit: its
  // extents point into the sources' blobs, shifted, so no byte is copied,
  // and its size becomes the sum of theirs. The sources are unchanged.
  virtual absl::StatusOr<InodeAttr> Concatenate(InodeId target,
                                                absl::Span<const InodeId> sources) = 0;

  // chmod/chown/truncate/utimes. ctime is set to now unless given. Shrinking
  // drops the extents past the new size (blobs left unreferenced go to GC).
  // A request that changes nothing but ctime, by less than a second (the
  // kernel writing back the ctime it set after a rename or unlink), is
  // answered with the stored attributes and no commit.
  virtual absl::StatusOr<InodeAttr> SetAttr(InodeId ino,
                                            const SetAttrRequest& request) = 0;

  // Deletes an orphan (nlink == 0) and everything it holds: extents (their
  // blobs go to GC), xattrs. No-op returning OK if the inode still has links
  // or no longer exists. Call when the last user (lookup or open) is gone.
  virtual absl::Status ReleaseInode(InodeId ino) = 0;
  // Releases every orphan; called at mount, when no inode is in use. On
  // a namespace several hosts share, only those no live session holds
  // (ReleaseUnheldOrphans): the other hosts may have theirs open.
  virtual absl::StatusOr<uint64_t> ReleaseAllOrphans() = 0;

  // --- Open files across hosts ---------------------------------------------
  // On a namespace several hosts share (its KvStore has a session), an
  // unlinked file must stay while any host has it open, and only the
  // host itself knows its opens. So each host records a hold (its session
  // on the inode) while it has the inode open: a removal that takes the
  // link count to zero keeps the inode as an orphan while any session
  // holds it (the ReleaseCheck is then not asked), and the last hold's
  // removal frees it. A dead session's holds are deleted by
  // ReleaseUnheldOrphans. On a single-host namespace none of this writes
  // or reads anything: the ReleaseCheck alone decides, as always.
  //
  // Whether this namespace records holds (it is shared by hosts).
  virtual bool RecordsOpenHolds() const = 0;
  // Records this host's hold on `ino` (the first open of it here); kNotFound
  // when the inode is gone (another host's removal freed it). Holding twice
  // is harmless.
  virtual absl::Status HoldOpen(InodeId ino) = 0;
  // Removes this host's hold (its last open of `ino` here went). An
  // orphan nothing else holds (no other session, no S3 upload) is freed in
  // the same commit when `release_now` agrees; returns its last
  // attributes if it was, nullopt if it stays.
  virtual absl::StatusOr<std::optional<InodeAttr>> DropOpenHold(
      InodeId ino, const ReleaseCheck& release_now = {}) = 0;
  // DropOpenHold of several inodes in one commit (a host closing many files
  // pays one transaction); returns the orphans it freed. On an error none
  // of the holds is removed.
  virtual absl::StatusOr<std::vector<InodeAttr>> DropOpenHolds(
      absl::Span<const InodeId> inos, const ReleaseCheck& release_now = {}) = 0;
  // Deletes the holds of sessions that are dead (KvStore::LiveSessions),
  // then frees every orphan no session holds, when `release_now` (if
  // given) agrees; returns how many it freed. The leader runs it from
  // time to time, for the orphans of hosts that died while others stayed
  // up; ReleaseAllOrphans runs it at mount. Does nothing on a single-host
  // namespace, whose orphans are its own (ReleaseInode, the next mount).
  virtual absl::StatusOr<uint64_t> ReleaseUnheldOrphans(const ReleaseCheck& release_now = {}) = 0;

  // --- Extended attributes -------------------------------------------------
  virtual absl::Status SetXattr(InodeId ino, std::string_view name,
                                std::string_view value, XattrMode mode) = 0;
  // kNoAttribute if absent.
  virtual absl::StatusOr<std::string> GetXattr(InodeId ino,
                                               std::string_view name) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListXattr(InodeId ino) = 0;
  virtual absl::Status RemoveXattr(InodeId ino, std::string_view name) = 0;

  // --- File data layout ----------------------------------------------------
  // Extents overlapping [offset, offset+length), sorted by file_offset,
  // clipped to that range. Holes are absent.
  virtual absl::StatusOr<std::vector<Extent>> GetExtents(InodeId ino,
                                                         uint64_t offset,
                                                         uint64_t length) = 0;
  // Records new data for a file in one atomic batch: registers `new_blobs`,
  // replaces whatever covered each write's range with it (older extents are
  // trimmed or dropped; blobs losing their last reference go to GC) and sets
  // the size to max(size, end of the last byte written). Times are left
  // alone: the commit happens long after the write(2) whose time they are.
  // Writes apply in order, so a later one wins where they overlap.
  // `journal_mark` (when larger) becomes the file's journal mark in the same
  // batch: the writeback journal's records for this file up to that sequence
  // number are now committed and are skipped by a replay.
  virtual absl::StatusOr<InodeAttr> CommitWrite(
      InodeId ino, absl::Span<const NewBlob> new_blobs,
      absl::Span<const Extent> writes, uint64_t journal_mark) = 0;
  absl::StatusOr<InodeAttr> CommitWrite(InodeId ino,
                                        absl::Span<const NewBlob> new_blobs,
                                        absl::Span<const Extent> writes) {
    return CommitWrite(ino, new_blobs, writes, 0);
  }
  // The file's journal mark (see CommitWrite); 0 if it has none.
  virtual absl::StatusOr<uint64_t> JournalMark(InodeId ino) = 0;
  // fallocate(PUNCH_HOLE|KEEP_SIZE): drops data in the range; size unchanged.
  virtual absl::StatusOr<InodeAttr> PunchHole(InodeId ino, uint64_t offset,
                                              uint64_t length) = 0;
  // fallocate(mode 0): extends size to at least offset+length; no data.
  virtual absl::StatusOr<InodeAttr> Allocate(InodeId ino, uint64_t offset,
                                             uint64_t length) = 0;

  virtual absl::StatusOr<BlobRecord> GetBlob(BlobId id) = 0;

  // Blobs with a known owner whose live bytes are at most `max_live_ratio`
  // of their length, at most `max` of them (a full scan of the blob
  // records: for a background pass, not a hot path).
  virtual absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>>
  CompactionCandidates(size_t max, double max_live_ratio) = 0;
  // Compaction's commit, in one batch: registers `new_blobs` and points each
  // relocated range at its new place, but only where the file still reads
  // it from the old blob at the same place; ranges overwritten meanwhile
  // keep their newer data. Sizes, times and journal marks are unchanged.
  virtual absl::Status RelocateExtents(InodeId ino,
                                       absl::Span<const NewBlob> new_blobs,
                                       absl::Span<const Relocation> moves) = 0;

  // Reserves `count` consecutive, never-before-used blob ids; returns the
  // first. Ids are never reused, even across crashes.
  virtual absl::StatusOr<BlobId> AllocateBlobIds(uint64_t count) = 0;

  // Blob records in id order, starting at `from`, at most `max` of them
  // (scrub, disk rebuild and fsck walk the blobs in batches).
  virtual absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> ListBlobs(
      BlobId from, size_t max) = 0;

  // Records where blob `id` now is (the tiering's commit points). kNotFound
  // if the blob has no record any more.
  virtual absl::Status SetBlobLocation(BlobId id, BlobLocation location) = 0;

  // The repair queue: blobs some of whose shards must be rewritten (a read
  // had to rebuild one, or the blob was stored while a disk was down). It
  // survives restarts; queuing twice is harmless.
  virtual absl::Status QueueRepair(BlobId id) = 0;
  virtual absl::StatusOr<std::vector<BlobId>> PendingRepairs(BlobId from, size_t max) = 0;
  virtual absl::Status ClearRepair(BlobId id) = 0;

  // The replication queue (see NamespaceOptions::queue_replication). It
  // survives restarts; entries are cleared once the replica holds a verified
  // copy, or the blob is gone.
  virtual absl::StatusOr<std::vector<QueuedReplication>> PendingReplications(BlobId from,
                                                                             size_t max) = 0;
  virtual absl::Status ClearReplication(BlobId id) = 0;
  // Queues every blob that has a record, once per replica `target` (a name
  // of the bucket and prefix): the blobs a volume held before replication to
  // this target began. Returns how many it queued (0 when done before).
  virtual absl::StatusOr<uint64_t> QueueExistingBlobsForReplica(const std::string& target) = 0;
  // The queue's length (up to `max_count` entries), bytes and oldest entry.
  virtual absl::StatusOr<ReplicationBacklog> GetReplicationBacklog(size_t max_count) = 0;

  // Blobs no extent references whose grace period has passed, at most `max`.
  // A blob still queued for the replica is not among them until it is
  // copied: a backup taken while it was referenced needs that copy.
  virtual absl::StatusOr<std::vector<BlobId>> CollectableBlobs(size_t max) = 0;
  // Forgets blobs the caller has deleted from the blob store.
  virtual absl::Status ForgetBlobs(absl::Span<const BlobId> ids) = 0;

  // --- Volume -------------------------------------------------------------
  virtual absl::StatusOr<NamespaceStats> Stats() = 0;
  // Small key/value metadata of the volume (volume id, format version).
  virtual absl::Status SetVolumeMeta(std::string_view key,
                                     std::string_view value) = 0;
  virtual absl::StatusOr<std::optional<std::string>> GetVolumeMeta(
      std::string_view key) = 0;
  // Adds one to the decimal number kept as volume meta `key` (absent: 0)
  // and returns the new value, atomically: two hosts bumping it at once get
  // different numbers. kDataLoss if the value is not a number.
  virtual absl::StatusOr<uint64_t> BumpVolumeMeta(std::string_view key) = 0;

  // Files that lost a write to damage (a journal record that could not be
  // read back after a crash): their reads fail with EIO, rather than show
  // bytes without that write, until the file is truncated to 0 bytes or
  // deleted. Kept here so that every later mount and fsck knows. Deleting
  // the file's inode clears its mark.
  virtual absl::Status MarkDamaged(InodeId ino, std::string_view why) = 0;
  virtual absl::Status ClearDamage(InodeId ino) = 0;
  virtual absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> DamagedFiles() = 0;

  // --- S3 multipart uploads ------------------------------------------------
  // Upload ids are 1..128 bytes of [0-9A-Za-z._-]. A part inode an upload
  // record holds is not freed by ReleaseInode or ReleaseAllOrphans; the
  // calls that drop the record free it (when `release_now` agrees, else it
  // is left an ordinary orphan). None of these syncs: call Sync.
  //
  // Records a new upload; kExists if the id is taken.
  virtual absl::Status PutMultipartUpload(std::string_view id,
                                          const MultipartUploadRecord& upload) = 0;
  // The upload, or nullopt.
  virtual absl::StatusOr<std::optional<MultipartUploadRecord>> GetMultipartUpload(
      std::string_view id) = 0;
  // Uploads with ids after `after_id`, in id order, until `fn` returns false.
  virtual absl::Status ListMultipartUploads(
      std::string_view after_id,
      const std::function<bool(const std::string& id, const MultipartUploadRecord&)>& fn) = 0;
  // The upload's parts numbered after `after_number`, in order, until `fn`
  // returns false.
  virtual absl::Status ListMultipartParts(
      std::string_view id, uint32_t after_number,
      const std::function<bool(const MultipartPartRecord&)>& fn) = 0;
  // Records a part of the upload in one commit; the part's inode must be
  // a regular file with no name. A part of the same number it replaces
  // loses its hold (and is freed when `release_now` says so) in that
  // commit, and is returned. kNotFound if the upload is gone.
  virtual absl::StatusOr<std::optional<MultipartPartRecord>> PutMultipartPart(
      std::string_view id, const MultipartPartRecord& part,
      const ReleaseCheck& release_now = {}) = 0;
  // Drops the upload and its parts in one commit (abort, expiry).
  // kNotFound if it is gone.
  virtual absl::Status DeleteMultipartUpload(std::string_view id,
                                             const ReleaseCheck& release_now = {}) = 0;
  // Publish (see there) of the upload's object, in the same commit as
  // DeleteMultipartUpload: a crash leaves either the upload or the object,
  // never both, never neither. kNotFound if the upload is gone.
  virtual absl::StatusOr<std::optional<InodeAttr>> PublishMultipartUpload(
      std::string_view id, InodeId ino, InodeId parent, std::string_view name,
      const PublishCondition& condition, const ReleaseCheck& release_now = {}) = 0;

  // Makes every committed mutation durable (KvStore::Sync: RocksDB's WAL
  // fsync).
  virtual absl::Status Sync() = 0;

  // --- Backups ------------------------------------------------------------
  // Writes a consistent copy of the whole database, as of one instant, into
  // `dir` (which must not exist; on the same filesystem its table files are
  // hard links, so it costs little space). Open it with read_only.
  virtual absl::Status CreateCheckpoint(const std::string& dir) = 0;
  // Records that replica `target` already holds every blob with a record
  // (a volume restored from it), so none is queued for it again.
  virtual absl::Status RecordReplicaTarget(const std::string& target) = 0;
  // Never hands out a blob id below `first_free` (a restored volume skips
  // the ids its lost original may have used after the backup).
  virtual absl::Status SkipBlobIdsBelow(BlobId first_free) = 0;

  // Cross-checks every record (for cairn fsck); changes nothing. Run it on a
  // namespace no one is changing.
  virtual absl::StatusOr<NamespaceCheckReport> Check() = 0;

  // --- A namespace several hosts share (kv_store.h's sessions) -------------
  // Whether this daemon runs the background services (KvStore::IsLeader):
  // always for a namespace only one host opens.
  virtual bool IsLeader() { return true; }
  // This daemon's session (KvStore::session_id); 0 without one.
  virtual uint64_t session_id() const { return 0; }
  // The daemons that have it open (KvStore::ListSessions); none listed for
  // a namespace only one host opens.
  virtual absl::StatusOr<std::vector<KvStore::SessionInfo>> ListSessions() {
    return std::vector<KvStore::SessionInfo>{};
  }
  // This host's journal bytes not yet stored, for the other hosts' view
  // (KvStore::SetSessionBacklog).
  virtual void SetSessionBacklog(uint64_t bytes) {}
  // Changes other hosts made, with the kernel caches they make stale.
  // Unimplemented where no other host can change the namespace.
  virtual absl::StatusOr<std::unique_ptr<NamespaceWatch>> WatchChanges(NamespaceChangeFn fn) {
    return absl::UnimplementedError("no other host changes this namespace");
  }
};

// Calls `visit` for every blob record in id order, in batches; stops at the
// first error (the walk's or the visitor's).
inline absl::Status ForEachBlobRecord(
    NamespaceStore& ns, const std::function<absl::Status(BlobId, const BlobRecord&)>& visit) {
  for (BlobId from = 0;;) {
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> batch = ns.ListBlobs(from, 4096);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return absl::OkStatus();
    for (const auto& [id, record] : *batch) {
      from = id + 1;
      if (absl::Status s = visit(id, record); !s.ok()) return s;
    }
  }
}

// The same over the replication queue.
inline absl::Status ForEachQueuedReplication(
    NamespaceStore& ns, const std::function<absl::Status(const QueuedReplication&)>& visit) {
  for (BlobId from = 0;;) {
    absl::StatusOr<std::vector<QueuedReplication>> batch = ns.PendingReplications(from, 4096);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return absl::OkStatus();
    for (const QueuedReplication& entry : *batch) {
      from = entry.id + 1;
      if (absl::Status s = visit(entry); !s.ok()) return s;
    }
  }
}

}  // namespace cairn

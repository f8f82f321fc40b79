// NamespaceStore over KvStore (kv_namespace.h). Record formats: records.h;
// extent editing: extent_editor.h.
//
// Every mutation is one KvStore::Run body. A body may run more than once
// (an engine with many writers retries a transaction that lost a
// conflict), so a body starts from nothing each time (a fresh Op), reads
// only through its transaction, and leaves the world outside alone until
// Run returns OK: results are copied out at the end of each run, in-memory
// state (the inode number pool) is only taken from, never given back, and
// the caller's ReleaseCheck is asked once per inode per call (ReleaseOnce).
#include "backend/namespace/kv_namespace.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/coding.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/namespace/extent_editor.h"
#include "backend/namespace/namespace_check.h"
#include "backend/namespace/records.h"

namespace cairn {
namespace {

// Sequences (KvStore::Allocate) and counters (AddToCounter). Their names
// are the meta keys RocksDB volumes have always kept them under, with the
// same meaning: the next number never handed out (a high-water mark), the
// live inodes, the bytes of file data.
constexpr char kNextInodeKey[] = "c:next_ino";
constexpr char kNextBlobKey[] = "c:next_blob";
constexpr char kInodeCountKey[] = "c:inode_count";
constexpr char kDataBytesKey[] = "c:data_bytes";
constexpr InodeId kFirstInode = 2;  // 1 is the root
constexpr BlobId kFirstBlob = 1;
// Inode numbers are taken from the store this many at a time, so a shared
// engine is not asked on every create. Unused ones are lost at close (they
// are never reused: 2^64 lasts).
constexpr uint64_t kInodeRange = 1024;

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
// Open files of a namespace several hosts share: "oh:" + inode key +
// big-endian session id -> "", one per host (session) that has the inode
// open. An orphan is kept while any session holds it. Keyed by inode
// first, so a removal reads the holds of its inode with one short scan.
constexpr char kOpenHoldPrefix[] = "oh:";
// The replica target whose existing blobs have all been queued.
constexpr char kReplicaTargetKey[] = "c:replica_target";
constexpr size_t kMaxXattrValueBytes = 64 << 10;
// Per file, as ext4 bounds them by its block: the names (each with its
// NUL) fit the 64 KiB listxattr(2) can return (XATTR_LIST_MAX), so every
// stored xattr can be listed and copied (cp -a silently dropped 20,000 of
// them), and names and values together stay small enough to copy whole.
constexpr size_t kMaxXattrListBytes = 64 << 10;
constexpr size_t kMaxXattrBytesPerFile = 4 << 20;

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

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// One run of a mutation's body: what it read and changes, staged into its
// transaction at the end (Stage). Inodes are cached so an operation that
// touches an inode twice (a rename within one directory) sees its own
// changes.
struct Op {
  Op(KvTxn& kv, uint64_t session) : kv(kv), session(session) {}
  KvTxn& kv;
  // This host's session (KvStore::session_id); 0 on a single-host
  // namespace, which keeps no holds and reads none.
  uint64_t session = 0;
  std::map<InodeId, InodeRecord> inodes;
  std::set<InodeId> dirty;
  ExtentChanges extent_changes;
  int64_t inode_count_delta = 0;
  int64_t data_bytes_delta = 0;
  bool unchanged = false;  // set by a body that found nothing to do
  // The holds this operation read, by inode (HoldsOf): a removal reads
  // them to decide and again to delete them, one scan.
  std::map<InodeId, std::vector<uint64_t>> holds;
};

// The caller's ReleaseCheck marks the inode freed in its own tables (and
// undoes that when the call fails). Asked at most once per inode per call,
// however often the body runs: a re-run gets the first answer. A re-run
// that no longer frees an inode it was asked about (another host changed
// the name meanwhile) leaves it answered yes: the caller learns what was
// freed from the call's result.
class ReleaseOnce {
 public:
  explicit ReleaseOnce(const NamespaceStore::ReleaseCheck& check) : check_(check) {}
  bool operator()(InodeId ino) {
    if (!check_) return false;
    auto [it, first] = answers_.emplace(ino, false);
    if (first) it->second = check_(ino);
    return it->second;
  }

 private:
  const NamespaceStore::ReleaseCheck& check_;
  std::map<InodeId, bool> answers_;
};

absl::StatusOr<std::optional<InodeRecord>> ReadInode(KvReader& reader, InodeId ino) {
  absl::StatusOr<std::optional<std::string>> value = reader.Get(KvSpace::kInodes, InodeKey(ino));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<InodeRecord>();
  absl::StatusOr<InodeRecord> record = DecodeInode(ino, **value);
  if (!record.ok()) return record.status();
  return std::optional<InodeRecord>(std::move(*record));
}

absl::StatusOr<InodeRecord> MustReadInode(KvReader& reader, InodeId ino) {
  absl::StatusOr<std::optional<InodeRecord>> record = ReadInode(reader, ino);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return NotFound(absl::StrCat("no inode ", ino));
  return std::move(**record);
}

absl::StatusOr<std::optional<DentryValue>> ReadDentry(KvReader& reader, InodeId parent,
                                                      std::string_view name) {
  absl::StatusOr<std::optional<std::string>> value =
      reader.Get(KvSpace::kDentries, DentryKey(parent, name));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<DentryValue>();
  absl::StatusOr<DentryValue> entry = DecodeDentry(**value);
  if (!entry.ok()) return entry.status();
  return std::optional<DentryValue>(*entry);
}

absl::Status MustBeAbsent(KvReader& reader, InodeId parent, std::string_view name) {
  absl::StatusOr<std::optional<DentryValue>> entry = ReadDentry(reader, parent, name);
  if (!entry.ok()) return entry.status();
  if (entry->has_value()) return FsError(FsErrorKind::kExists, "entry exists");
  return absl::OkStatus();
}

absl::StatusOr<bool> DirIsEmpty(KvReader& reader, InodeId dir) {
  bool empty = true;
  absl::Status s = reader.Scan(KvSpace::kCookies, DentryPrefix(dir), InodeKey(dir + 1),
                               [&](std::string_view, std::string_view) {
                                 empty = false;
                                 return false;
                               });
  if (!s.ok()) return s;
  return empty;
}

absl::StatusOr<StoredBlob> ReadStoredBlob(KvReader& reader, BlobId id) {
  absl::StatusOr<std::optional<std::string>> value = reader.Get(KvSpace::kBlobs, BlobKey(id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return NotFound(absl::StrCat("no blob ", id));
  return DecodeBlob(**value);
}

std::string ReplicationValue(uint64_t queued_sec, uint64_t length) {
  std::string value;
  PutFixed64(&value, queued_sec);
  PutFixed64(&value, length);
  return value;
}

// With the writeback cache the kernel keeps ctime itself: after a rename
// or unlink it sets its own (coarse) clock's time and sends it back in a
// SETATTR of mtime and ctime, the mtime unchanged. The commit that made
// the change already set ctime to within a tick of that; storing the
// kernel's copy would cost a commit per rename and unlink for a
// difference of milliseconds.
bool IsCtimeEcho(const InodeAttr& stored, const SetAttrRequest& request) {
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

void Touch(InodeRecord& dir, Timespec now, bool modified) {
  if (modified) dir.attr.mtime = now;
  dir.attr.ctime = now;
}

// Registers blobs a commit brings, owned by `owner`.
void StageNewBlobs(Op& op, InodeId owner, absl::Span<const NewBlob> blobs) {
  for (const NewBlob& blob : blobs) {
    StoredBlob stored;
    stored.record.length = blob.length;
    stored.record.crc32c = blob.crc32c;
    stored.record.owner = owner;
    op.extent_changes.new_blobs[blob.id] = stored;
  }
}

void PutEntry(Op& op, InodeId parent, std::string_view name, const DentryValue& value) {
  op.kv.Put(KvSpace::kDentries, DentryKey(parent, name), EncodeDentry(value));
  op.kv.Put(KvSpace::kCookies, CookieKey(parent, value.cookie), EncodeCookieEntry(name, value));
}

void AddEntry(Op& op, InodeRecord& dir, std::string_view name, InodeId child, uint32_t mode) {
  PutEntry(op, dir.attr.ino, name, DentryValue{child, mode & S_IFMT, dir.next_cookie++});
}

void DeleteEntry(Op& op, InodeId parent, std::string_view name, uint64_t cookie) {
  op.kv.Delete(KvSpace::kDentries, DentryKey(parent, name));
  op.kv.Delete(KvSpace::kCookies, CookieKey(parent, cookie));
}

// Drops one link; an inode left with none becomes an orphan.
void DropLink(Op& op, InodeRecord& record, Timespec now) {
  if (IsDir(record.attr.mode)) {
    record.attr.nlink = 0;
  } else if (record.attr.nlink > 0) {
    record.attr.nlink--;
  }
  record.attr.ctime = now;
  if (record.attr.nlink == 0) op.kv.Put(KvSpace::kOrphans, InodeKey(record.attr.ino), "");
}

absl::StatusOr<InodeRecord*> Load(Op& op, InodeId ino) {
  auto it = op.inodes.find(ino);
  if (it == op.inodes.end()) {
    absl::StatusOr<InodeRecord> record = MustReadInode(op.kv, ino);
    if (!record.ok()) return record.status();
    it = op.inodes.emplace(ino, std::move(*record)).first;
  }
  op.dirty.insert(ino);
  return &it->second;
}

absl::StatusOr<InodeRecord*> LoadDir(Op& op, InodeId ino) {
  absl::StatusOr<InodeRecord*> record = Load(op, ino);
  if (!record.ok()) return record.status();
  if (!IsDir((*record)->attr.mode)) return FsError(FsErrorKind::kNotDirectory, "not a directory");
  if ((*record)->attr.nlink == 0) return NotFound("directory was removed");
  return record;
}

// Loads the extents of `attr`'s inode overlapping [lo, hi), lets `edit`
// change them, and stages the result in the transaction.
template <typename EditFn>
absl::Status EditExtents(Op& op, InodeAttr& attr, uint64_t lo, uint64_t hi, EditFn edit) {
  absl::StatusOr<std::vector<Extent>> existing = ReadExtents(op.kv, attr.ino, lo, hi,
                                                             /*clip=*/false);
  if (!existing.ok()) return existing.status();
  ExtentEditor editor(std::move(*existing));
  edit(editor);
  int64_t delta = editor.Stage(attr.ino, op.kv, &op.extent_changes);
  attr.allocated_bytes =
      static_cast<uint64_t>(static_cast<int64_t>(attr.allocated_bytes) + delta);
  op.data_bytes_delta += delta;
  return absl::OkStatus();
}

// The file's extents overlapping any of the (offset, length) ranges, once
// each, in file order: a commit of scattered ranges reads only what lies
// under them, not every extent in between.
absl::StatusOr<std::vector<Extent>> ExtentsUnder(
    KvReader& reader, InodeId ino, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::map<uint64_t, Extent> found;
  for (const auto& [offset, length] : ranges) {
    if (length == 0) continue;
    absl::StatusOr<std::vector<Extent>> under =
        ReadExtents(reader, ino, offset, offset + length, /*clip=*/false);
    if (!under.ok()) return under.status();
    for (Extent& e : *under) found.emplace(e.file_offset, std::move(e));
  }
  std::vector<Extent> out;
  out.reserve(found.size());
  for (auto& [offset, e] : found) out.push_back(std::move(e));
  return out;
}

std::string OpenHoldPrefix(InodeId ino) { return kOpenHoldPrefix + InodeKey(ino); }
std::string OpenHoldKey(InodeId ino, uint64_t session) {
  std::string key = OpenHoldPrefix(ino);
  PutBigEndian64(&key, session);
  return key;
}

// The sessions holding `ino` open, in id order.
absl::StatusOr<std::vector<uint64_t>> OpenHoldsOf(KvReader& reader, InodeId ino) {
  const std::string prefix = OpenHoldPrefix(ino);
  std::vector<uint64_t> sessions;
  absl::Status s = reader.Scan(KvSpace::kMeta, prefix, KvPrefixEnd(prefix),
                               [&](std::string_view key, std::string_view) {
                                 if (key.size() == prefix.size() + 8) {
                                   sessions.push_back(KeyNumberAt(key, prefix.size()));
                                 }
                                 return true;
                               });
  if (!s.ok()) return s;
  return sessions;
}

// OpenHoldsOf, read once per operation. Only for an operation that writes
// no hold of `ino` after the read (none does: a free deletes them).
absl::StatusOr<const std::vector<uint64_t>*> HoldsOf(Op& op, InodeId ino) {
  auto it = op.holds.find(ino);
  if (it == op.holds.end()) {
    absl::StatusOr<std::vector<uint64_t>> holds = OpenHoldsOf(op.kv, ino);
    if (!holds.ok()) return holds.status();
    it = op.holds.emplace(ino, *std::move(holds)).first;
  }
  return &it->second;
}

// Whether a session other than this host's holds `ino` open: then an
// orphan stays, whatever this host's release check says. Always false
// on a single-host namespace, without a read.
absl::StatusOr<bool> HeldElsewhere(Op& op, InodeId ino) {
  if (op.session == 0) return false;
  absl::StatusOr<const std::vector<uint64_t>*> holds = HoldsOf(op, ino);
  if (!holds.ok()) return holds.status();
  for (uint64_t session : **holds) {
    if (session != op.session) return true;
  }
  return false;
}

// Stages the deletion of `ino` (loaded in `op`, no links left) and all it
// holds: extents (their blobs go to GC), xattrs, damage mark. Its record
// stays in op.inodes, as it was, for the caller's answer.
absl::Status StageFree(Op& op, InodeId ino) {
  InodeAttr& attr = op.inodes[ino].attr;
  if (S_ISREG(attr.mode)) {
    absl::Status s = EditExtents(op, attr, 0, UINT64_MAX,
                                 [](ExtentEditor& e) { e.Cut(0, UINT64_MAX); });
    if (!s.ok()) return s;
  }
  const std::string key = InodeKey(ino);
  // Each xattr by name (the seam has no range delete; a file has few).
  std::vector<std::string> xattrs;
  absl::Status listed = op.kv.Scan(KvSpace::kXattrs, key, InodeKey(ino + 1),
                                   [&](std::string_view name_key, std::string_view) {
                                     xattrs.emplace_back(name_key);
                                     return true;
                                   });
  if (!listed.ok()) return listed;
  for (const std::string& xattr : xattrs) op.kv.Delete(KvSpace::kXattrs, xattr);
  op.kv.Delete(KvSpace::kInodes, key);
  op.kv.Delete(KvSpace::kOrphans, key);
  op.kv.Delete(KvSpace::kMeta, kDamagePrefix + key);
  if (op.session != 0) {
    // This host's own hold, and any a dead session left.
    absl::StatusOr<const std::vector<uint64_t>*> holds = HoldsOf(op, ino);
    if (!holds.ok()) return holds.status();
    for (uint64_t session : **holds) op.kv.Delete(KvSpace::kMeta, OpenHoldKey(ino, session));
  }
  op.dirty.erase(ino);
  op.inode_count_delta -= 1;
  return absl::OkStatus();
}

// An inode that just lost its last link in `op`: freed in the same commit
// if no other host holds it open and `release_now` agrees, else left an
// orphan (DropLink). Another host's hold is read first, so the caller is
// not asked (and marks nothing freed) about an inode that stays.
absl::Status FreeIfReleasable(Op& op, const InodeRecord& record, ReleaseOnce& release_now) {
  if (record.attr.nlink != 0) return absl::OkStatus();
  absl::StatusOr<bool> elsewhere = HeldElsewhere(op, record.attr.ino);
  if (!elsewhere.ok()) return elsewhere.status();
  if (*elsewhere || !release_now(record.attr.ino)) return absl::OkStatus();
  return StageFree(op, record.attr.ino);
}

absl::Status CheckUploadId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                c == '-');
  }
  if (!ok) return FsError(FsErrorKind::kInvalid, "not a multipart upload id");
  return absl::OkStatus();
}
std::string UploadKey(std::string_view id) {
  return absl::StrCat(kUploadPrefix, absl::string_view(id.data(), id.size()));
}
std::string PartPrefix(std::string_view id) {
  return absl::StrCat(kUploadPartPrefix, absl::string_view(id.data(), id.size()), "/");
}
std::string PartKey(std::string_view id, uint64_t number) {
  std::string key = PartPrefix(id);
  PutBigEndian64(&key, number);
  return key;
}

absl::StatusOr<std::optional<MultipartUploadRecord>> ReadUpload(KvReader& reader,
                                                                std::string_view id) {
  absl::StatusOr<std::optional<std::string>> value = reader.Get(KvSpace::kMeta, UploadKey(id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<MultipartUploadRecord>();
  absl::StatusOr<MultipartUploadRecord> upload = DecodeMultipartUpload(**value);
  if (!upload.ok()) return upload.status();
  return std::optional<MultipartUploadRecord>(std::move(*upload));
}

// Whether an upload's record holds the (orphan) inode as a part.
absl::StatusOr<bool> HeldByUpload(KvReader& reader, InodeId ino) {
  absl::StatusOr<std::optional<std::string>> value =
      reader.Get(KvSpace::kMeta, kHeldPartPrefix + InodeKey(ino));
  if (!value.ok()) return value.status();
  return value->has_value();
}

// Stages the end of the upload's hold on a part inode: freed in the
// commit when `release_now` agrees, else left an orphan for its last
// user, or the next mount, to free.
absl::Status StageUnholdPart(Op& op, InodeId ino, ReleaseOnce& release_now) {
  op.kv.Delete(KvSpace::kMeta, kHeldPartPrefix + InodeKey(ino));
  absl::StatusOr<std::optional<InodeRecord>> existing = ReadInode(op.kv, ino);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value() || (*existing)->attr.nlink != 0) return absl::OkStatus();
  if (op.inodes.count(ino)) return absl::OkStatus();  // staged already
  absl::StatusOr<bool> elsewhere = HeldElsewhere(op, ino);
  if (!elsewhere.ok()) return elsewhere.status();
  if (*elsewhere || !release_now(ino)) return absl::OkStatus();
  op.inodes[ino] = std::move(**existing);
  return StageFree(op, ino);
}

// Stages the deletion of the upload and its parts.
absl::Status StageDropUpload(Op& op, std::string_view id, ReleaseOnce& release_now) {
  absl::StatusOr<std::optional<MultipartUploadRecord>> upload = ReadUpload(op.kv, id);
  if (!upload.ok()) return upload.status();
  if (!upload->has_value()) return NotFound("no such multipart upload");
  const std::string prefix = PartPrefix(id);
  std::vector<std::pair<std::string, InodeId>> parts;
  absl::Status damaged;
  absl::Status listed = op.kv.Scan(
      KvSpace::kMeta, prefix, KvPrefixEnd(prefix), [&](std::string_view key, std::string_view value) {
        absl::StatusOr<MultipartPartRecord> part = DecodeMultipartPart(0, value);
        if (!part.ok()) {
          damaged = part.status();
          return false;
        }
        parts.emplace_back(std::string(key), part->ino);
        return true;
      });
  if (!damaged.ok()) return damaged;
  if (!listed.ok()) return listed;
  for (const auto& [key, ino] : parts) {
    op.kv.Delete(KvSpace::kMeta, key);
    if (absl::Status s = StageUnholdPart(op, ino, release_now); !s.ok()) return s;
  }
  op.kv.Delete(KvSpace::kMeta, UploadKey(id));
  return absl::OkStatus();
}

// The inode a name held when this host last saw it, so that an operation
// can read that inode, and what removing it would read, in the round trip
// that reads the entry (KvTxn::Prefetch), where reads are round trips.
// Only a guess: every answer comes from the entry the operation itself
// reads, so a stale guess costs a wasted read, never a wrong answer.
// Bounded: emptied when full.
class EntryGuesses {
 public:
  struct Guess {
    InodeId ino;
    uint32_t mode;
  };
  std::optional<Guess> Find(InodeId parent, std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = guesses_.find(DentryKey(parent, name));
    if (it == guesses_.end()) return std::nullopt;
    return it->second;
  }
  void Note(InodeId parent, std::string_view name, InodeId ino, uint32_t mode) {
    absl::MutexLock lock(&mu_);
    if (guesses_.size() >= kMaxGuesses) guesses_.clear();
    guesses_[DentryKey(parent, name)] = Guess{ino, mode};
  }
  void Forget(InodeId parent, std::string_view name) {
    absl::MutexLock lock(&mu_);
    guesses_.erase(DentryKey(parent, name));
  }

 private:
  static constexpr size_t kMaxGuesses = 16384;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Guess> guesses_ ABSL_GUARDED_BY(mu_);
};

// The ranges that hold the records of `ino` (of `mode`) besides its own:
// a directory's entries, a file's extents, xattrs, and (shared) open
// holds. What removing its last link scans; what a new inode starts with
// empty.
std::vector<KvTxn::SpaceRange> InodeRanges(const Op& op, InodeId ino, uint32_t mode) {
  const std::string key = InodeKey(ino);
  const std::string next = InodeKey(ino + 1);
  std::vector<KvTxn::SpaceRange> ranges;
  if (IsDir(mode)) ranges.push_back({KvSpace::kCookies, DentryPrefix(ino), next});
  if (S_ISREG(mode)) ranges.push_back({KvSpace::kExtents, ExtentKey(ino, 0), next});
  ranges.push_back({KvSpace::kXattrs, key, next});
  if (op.session != 0) {
    const std::string holds = OpenHoldPrefix(ino);
    ranges.push_back({KvSpace::kMeta, holds, KvPrefixEnd(holds)});
  }
  return ranges;
}

// Adds what taking the last link of `ino` (of `mode`) reads: its record,
// the emptiness of a directory, and what StageFree and HeldElsewhere scan.
void AddRemovalReads(const Op& op, InodeId ino, uint32_t mode,
                     std::vector<KvReader::SpaceKey>* keys,
                     std::vector<KvTxn::SpaceRange>* scans) {
  keys->push_back({KvSpace::kInodes, InodeKey(ino)});
  for (KvTxn::SpaceRange& range : InodeRanges(op, ino, mode)) scans->push_back(std::move(range));
}

class KvNamespace final : public NamespaceStore {
 public:
  KvNamespace(std::unique_ptr<KvStore> kv, const NamespaceOptions& options)
      : kv_(std::move(kv)), options_(options) {}

  absl::Status Init() {
    // Counters and sequences are read once now, so a damaged one fails the
    // open rather than a later commit.
    for (const char* counter : {kInodeCountKey, kDataBytesKey}) {
      if (absl::StatusOr<int64_t> v = kv_->ReadCounter(counter); !v.ok()) return v.status();
    }
    if (absl::StatusOr<uint64_t> v = kv_->Allocate(kNextInodeKey, kFirstInode, 0); !v.ok()) {
      return v.status();
    }
    if (absl::StatusOr<uint64_t> v = kv_->Allocate(kNextBlobKey, kFirstBlob, 0); !v.ok()) {
      return v.status();
    }
    absl::StatusOr<std::optional<InodeRecord>> root = ReadInode(kv_->Reader(), kRootInode);
    if (!root.ok()) return root.status();
    if (root->has_value()) return absl::OkStatus();
    if (!options_.create_if_missing) {
      return FsError(FsErrorKind::kIo, "namespace database has no root directory; run cairn fsck");
    }
    return Mutate([&](Op& op) -> absl::Status {
      InodeRecord record;
      record.attr.ino = kRootInode;
      record.attr.mode = S_IFDIR | 0755;
      record.attr.nlink = 2;
      record.attr.parent = kRootInode;
      Timespec now = options_.clock->NowTimespec();
      record.attr.atime = record.attr.mtime = record.attr.ctime = record.attr.btime = now;
      op.inodes[kRootInode] = record;
      op.dirty.insert(kRootInode);
      op.inode_count_delta = 1;
      return absl::OkStatus();
    });
  }

  // --- Lookups ---------------------------------------------------------

  absl::StatusOr<InodeAttr> Lookup(InodeId parent, std::string_view name) override {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    // The parent with the entry, and the inode the entry is guessed to
    // name, in one round trip where the engine's reads are round trips: a
    // missing entry is told from a missing directory.
    std::vector<KvReader::SpaceKey> keys = {{KvSpace::kDentries, DentryKey(parent, name)},
                                            {KvSpace::kInodes, InodeKey(parent)}};
    std::optional<EntryGuesses::Guess> guess;
    if (Guessing()) guess = guesses_.Find(parent, name);
    if (guess) keys.push_back({KvSpace::kInodes, InodeKey(guess->ino)});
    absl::StatusOr<std::vector<std::optional<std::string>>> values = kv_->Reader().GetEach(keys);
    if (!values.ok()) return values.status();
    if (!(*values)[0].has_value()) {
      if (guess) guesses_.Forget(parent, name);
      if (!(*values)[1].has_value()) return NotFound(absl::StrCat("no inode ", parent));
      absl::StatusOr<InodeRecord> dir = DecodeInode(parent, *(*values)[1]);
      if (!dir.ok()) return dir.status();
      if (!IsDir(dir->attr.mode)) return FsError(FsErrorKind::kNotDirectory, "not a directory");
      return NotFound("no such entry");
    }
    absl::StatusOr<DentryValue> entry = DecodeDentry(*(*values)[0]);
    if (!entry.ok()) return entry.status();
    absl::StatusOr<InodeAttr> attr;
    if (guess && guess->ino == entry->ino) {
      if (!(*values)[2].has_value()) return NotFound(absl::StrCat("no inode ", entry->ino));
      absl::StatusOr<InodeRecord> record = DecodeInode(entry->ino, *(*values)[2]);
      if (!record.ok()) return record.status();
      attr = record->attr;
    } else {
      attr = GetAttr(entry->ino);
    }
    if (attr.ok() && Guessing()) guesses_.Note(parent, name, attr->ino, attr->mode);
    return attr;
  }

  absl::StatusOr<InodeAttr> GetAttr(InodeId ino) override {
    absl::StatusOr<InodeRecord> record = MustReadInode(kv_->Reader(), ino);
    if (!record.ok()) return record.status();
    return record->attr;
  }

  absl::StatusOr<InodeAttr> GetAttrRecent(InodeId ino, double max_age_s) override {
    if (max_age_s > 0 && watches_.load() > 0) {
      absl::MutexLock lock(&recent_mu_);
      auto it = recent_dirs_.find(ino);
      if (it != recent_dirs_.end() &&
          std::chrono::steady_clock::now() - it->second.at <=
              std::chrono::duration<double>(max_age_s)) {
        return it->second.attr;
      }
    }
    return GetAttr(ino);
  }

  absl::StatusOr<std::string> ReadLink(InodeId ino) override {
    absl::StatusOr<InodeRecord> record = MustReadInode(kv_->Reader(), ino);
    if (!record.ok()) return record.status();
    if (!S_ISLNK(record->attr.mode)) return FsError(FsErrorKind::kInvalid, "not a symlink");
    return record->symlink_target;
  }

  absl::Status ReadDir(InodeId dir, uint64_t after_cookie,
                       const std::function<bool(const DirEntry&)>& fn) override {
    absl::Status decoded = absl::OkStatus();
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kCookies, CookieKey(dir, after_cookie + 1), InodeKey(dir + 1),
        [&](std::string_view key, std::string_view value) {
          absl::StatusOr<DirEntry> entry = DecodeCookieEntry(KeyNumberAt(key, 8), value);
          if (!entry.ok()) {
            decoded = entry.status();
            return false;
          }
          return fn(*entry);
        });
    return s.ok() ? decoded : s;
  }

  absl::Status ScanDir(InodeId dir, std::string_view start,
                       const std::function<bool(const DirEntry&)>& fn) override {
    // Entries are keyed by parent and name: in name order already.
    const size_t prefix_size = DentryPrefix(dir).size();
    absl::Status decoded = absl::OkStatus();
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kDentries, DentryKey(dir, start), InodeKey(dir + 1),
        [&](std::string_view key, std::string_view value) {
          absl::StatusOr<DentryValue> entry = DecodeDentry(value);
          if (!entry.ok()) {
            decoded = entry.status();
            return false;
          }
          DirEntry out;
          out.name = std::string(key.substr(prefix_size));
          out.ino = entry->ino;
          out.mode = entry->mode;
          out.cookie = entry->cookie;
          return fn(out);
        });
    return s.ok() ? decoded : s;
  }

  // --- Namespace mutations --------------------------------------------

  absl::StatusOr<InodeAttr> MakeNode(InodeId parent, std::string_view name, const NewNode& node,
                                     const Caller& caller) override {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    if (S_ISLNK(node.mode) && (node.symlink_target.empty() || node.symlink_target.size() > 4095)) {
      return FsError(FsErrorKind::kNameTooLong, "symlink target length");
    }
    InodeId ino = 0;  // taken once, kept by a re-run
    InodeAttr result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      op.kv.Prefetch({{KvSpace::kInodes, InodeKey(parent)},
                      {KvSpace::kDentries, DentryKey(parent, name)}});
      absl::StatusOr<InodeRecord*> dir = LoadDir(op, parent);
      if (!dir.ok()) return dir.status();
      if (absl::Status s = MustBeAbsent(op.kv, parent, name); !s.ok()) return s;
      if (absl::Status s = TakeInodeNumber(&ino); !s.ok()) return s;
      // A number never handed out before: nothing is filed under it yet.
      op.kv.NoteNewRanges(InodeRanges(op, ino, node.mode));
      Timespec now = options_.clock->NowTimespec();
      InodeRecord record;
      record.attr.ino = ino;
      record.attr.mode = node.mode;
      record.attr.uid = caller.uid;
      record.attr.gid = caller.gid;
      record.attr.rdev = node.rdev;
      record.attr.atime = record.attr.mtime = record.attr.ctime = record.attr.btime = now;
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
      AddEntry(op, **dir, name, ino, record.attr.mode);
      Touch(**dir, now, /*modified=*/true);
      result = AddNewInode(op, std::move(record), node.hold_open);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (Guessing()) guesses_.Note(parent, name, result.ino, result.mode);
    return result;
  }

  absl::StatusOr<InodeAttr> MakeOrphan(InodeId parent, const NewNode& node,
                                       const Caller& caller) override {
    if (!S_ISREG(node.mode)) {
      return FsError(FsErrorKind::kInvalid, "only a regular file can be made without a name");
    }
    InodeId ino = 0;
    InodeAttr result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<InodeRecord*> dir = LoadDir(op, parent);
      if (!dir.ok()) return dir.status();
      if (absl::Status s = TakeInodeNumber(&ino); !s.ok()) return s;
      // A number never handed out before: nothing is filed under it yet.
      op.kv.NoteNewRanges(InodeRanges(op, ino, node.mode));
      Timespec now = options_.clock->NowTimespec();
      InodeRecord record;
      record.attr.ino = ino;
      record.attr.mode = node.mode;
      record.attr.uid = caller.uid;
      record.attr.gid = ((*dir)->attr.mode & S_ISGID) ? (*dir)->attr.gid : caller.gid;
      record.attr.atime = record.attr.mtime = record.attr.ctime = record.attr.btime = now;
      record.attr.nlink = 0;
      op.kv.Put(KvSpace::kOrphans, InodeKey(ino), "");
      result = AddNewInode(op, std::move(record), node.hold_open);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  absl::StatusOr<std::optional<InodeAttr>> Publish(InodeId ino, InodeId parent,
                                                   std::string_view name,
                                                   const PublishCondition& condition,
                                                   const ReleaseCheck& release_check) override {
    ReleaseOnce release_now(release_check);
    return PublishWith(ino, parent, name, condition, release_now, {});
  }

  // Publish, with `also` staging more into its commit.
  absl::StatusOr<std::optional<InodeAttr>> PublishWith(
      InodeId ino, InodeId parent, std::string_view name, const PublishCondition& condition,
      ReleaseOnce& release_now, const std::function<absl::Status(Op&)>& also) {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    std::optional<InodeAttr> result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      result.reset();
      absl::StatusOr<InodeRecord*> file = Load(op, ino);
      if (!file.ok()) return file.status();
      if (!S_ISREG((*file)->attr.mode) || (*file)->attr.nlink != 0) {
        return FsError(FsErrorKind::kInvalid, "only a nameless regular file can be published");
      }
      absl::StatusOr<InodeRecord*> dir = LoadDir(op, parent);
      if (!dir.ok()) return dir.status();
      absl::StatusOr<std::optional<DentryValue>> existing = ReadDentry(op.kv, parent, name);
      if (!existing.ok()) return existing.status();
      if (existing->has_value() && IsDir((*existing)->mode)) {
        return FsError(FsErrorKind::kIsDirectory, "a directory has that name");
      }
      if (existing->has_value() && !S_ISREG((*existing)->mode)) {
        return FsError(FsErrorKind::kExists, "a name that is not a regular file is there");
      }
      Timespec now = options_.clock->NowTimespec();
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
        absl::StatusOr<InodeRecord*> victim = Load(op, target.ino);
        if (!victim.ok()) return victim.status();
        if (condition.kind == PublishCondition::Kind::kMustBe &&
            !((*victim)->attr.ctime == condition.ctime)) {
          return FsError(FsErrorKind::kStale, "the file changed since it was read");
        }
        DeleteEntry(op, parent, name, target.cookie);
        DropLink(op, **victim, now);
        if (absl::Status s = FreeIfReleasable(op, **victim, release_now); !s.ok()) return s;
        result = op.inodes[target.ino].attr;
      }
      op.kv.Delete(KvSpace::kOrphans, InodeKey(ino));
      (*file)->attr.nlink = 1;
      (*file)->attr.ctime = now;
      AddEntry(op, **dir, name, ino, (*file)->attr.mode);
      Touch(**dir, now, true);
      if (also) return also(op);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  absl::StatusOr<InodeAttr> Concatenate(InodeId target,
                                        absl::Span<const InodeId> sources) override {
    InodeAttr result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<InodeRecord*> file = Load(op, target);
      if (!file.ok()) return file.status();
      InodeAttr& attr = (*file)->attr;
      if (!S_ISREG(attr.mode) || attr.size != 0) {
        return FsError(FsErrorKind::kInvalid, "only an empty regular file can be filled");
      }
      uint64_t size = 0;
      std::vector<Extent> shifted;
      for (InodeId source : sources) {
        if (source == target) return FsError(FsErrorKind::kInvalid, "a file into itself");
        absl::StatusOr<InodeRecord> part = MustReadInode(op.kv, source);  // read, not changed
        if (!part.ok()) return part.status();
        const InodeAttr& from = part->attr;
        if (!S_ISREG(from.mode)) return FsError(FsErrorKind::kInvalid, "a part is not a file");
        if (SaturatingAdd(size, from.size) > kMaxFileBytes) {
          return FsError(FsErrorKind::kFileTooBig, "file size limit");
        }
        absl::StatusOr<std::vector<Extent>> extents =
            ReadExtents(op.kv, source, 0, from.size, /*clip=*/true);
        if (!extents.ok()) return extents.status();
        for (Extent& extent : *extents) {
          extent.file_offset += size;
          shifted.push_back(std::move(extent));
        }
        size += from.size;
      }
      absl::Status edited = EditExtents(op, attr, 0, size, [&](ExtentEditor& editor) {
        for (const Extent& extent : shifted) editor.Insert(extent);
      });
      if (!edited.ok()) return edited;
      attr.size = size;
      attr.mtime = attr.ctime = options_.clock->NowTimespec();
      result = attr;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  absl::StatusOr<InodeAttr> Link(InodeId ino, InodeId new_parent,
                                 std::string_view new_name) override {
    if (absl::Status s = CheckName(new_name); !s.ok()) return s;
    InodeAttr result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      op.kv.Prefetch({{KvSpace::kInodes, InodeKey(ino)},
                      {KvSpace::kInodes, InodeKey(new_parent)},
                      {KvSpace::kDentries, DentryKey(new_parent, new_name)}});
      absl::StatusOr<InodeRecord*> target = Load(op, ino);
      if (!target.ok()) return target.status();
      if (IsDir((*target)->attr.mode)) {
        return FsError(FsErrorKind::kNotPermitted, "hard link to a directory");
      }
      absl::StatusOr<InodeRecord*> dir = LoadDir(op, new_parent);
      if (!dir.ok()) return dir.status();
      if (absl::Status s = MustBeAbsent(op.kv, new_parent, new_name); !s.ok()) return s;
      if ((*target)->attr.nlink >= kMaxLinks) {
        return FsError(FsErrorKind::kTooManyLinks, "too many links");
      }
      Timespec now = options_.clock->NowTimespec();
      if ((*target)->attr.nlink == 0) op.kv.Delete(KvSpace::kOrphans, InodeKey(ino));
      (*target)->attr.nlink++;
      (*target)->attr.ctime = now;
      AddEntry(op, **dir, new_name, ino, (*target)->attr.mode);
      Touch(**dir, now, true);
      result = (*target)->attr;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (Guessing()) guesses_.Note(new_parent, new_name, result.ino, result.mode);
    return result;
  }

  absl::StatusOr<InodeAttr> Unlink(InodeId parent, std::string_view name,
                                   const ReleaseCheck& release_now) override {
    return RemoveEntry(parent, name, /*want_dir=*/false, release_now);
  }

  absl::StatusOr<InodeAttr> Rmdir(InodeId parent, std::string_view name,
                                  const ReleaseCheck& release_now) override {
    return RemoveEntry(parent, name, /*want_dir=*/true, release_now);
  }

  absl::StatusOr<std::optional<InodeAttr>> Rename(InodeId old_parent, std::string_view old_name,
                                                  InodeId new_parent, std::string_view new_name,
                                                  RenameMode mode,
                                                  const ReleaseCheck& release_check) override {
    if (absl::Status s = CheckName(old_name); !s.ok()) return s;
    if (absl::Status s = CheckName(new_name); !s.ok()) return s;
    ReleaseOnce release_now(release_check);
    std::optional<InodeAttr> result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      result.reset();
      return RenameBody(op, old_parent, old_name, new_parent, new_name, mode, release_now,
                        &result);
    });
    if (Guessing()) {
      // The names' inodes are guessed afresh at their next lookup.
      guesses_.Forget(old_parent, old_name);
      guesses_.Forget(new_parent, new_name);
    }
    if (!s.ok()) return s;
    return result;
  }

  absl::StatusOr<InodeAttr> SetAttr(InodeId ino, const SetAttrRequest& request) override {
    return MutateInode(ino, [&](Op& op, InodeAttr& attr) -> absl::Status {
      if (IsCtimeEcho(attr, request)) {
        op.unchanged = true;
        return absl::OkStatus();
      }
      Timespec now = options_.clock->NowTimespec();
      if (request.mode) attr.mode = (attr.mode & S_IFMT) | (*request.mode & 07777);
      if (request.uid) attr.uid = *request.uid;
      if (request.gid) attr.gid = *request.gid;
      if (request.size) {
        if (IsDir(attr.mode)) return FsError(FsErrorKind::kIsDirectory, "truncate of a directory");
        if (*request.size > kMaxFileBytes) {
          return FsError(FsErrorKind::kFileTooBig, "file size limit");
        }
        if (*request.size < attr.size) {
          absl::Status s = EditExtents(op, attr, *request.size, UINT64_MAX,
                                       [&](ExtentEditor& editor) {
                                         editor.Cut(*request.size, UINT64_MAX);
                                       });
          if (!s.ok()) return s;
        }
        if (*request.size != attr.size) attr.mtime = now;
        attr.size = *request.size;
        if (request.journal_mark) {
          InodeRecord& record = op.inodes[ino];
          record.journal_mark = std::max(record.journal_mark, *request.journal_mark);
        }
      }
      if (request.atime) attr.atime = *request.atime;
      if (request.mtime) attr.mtime = *request.mtime;
      attr.ctime = request.ctime ? *request.ctime : now;
      return absl::OkStatus();
    });
  }

  absl::StatusOr<uint64_t> JournalMark(InodeId ino) override {
    absl::StatusOr<std::optional<InodeRecord>> record = ReadInode(kv_->Reader(), ino);
    if (!record.ok()) return record.status();
    if (!record->has_value()) return NotFound("no such inode");
    return (*record)->journal_mark;
  }

  absl::Status ReleaseInode(InodeId ino) override { return Release(ino, nullptr).status(); }

  // ReleaseInode, saying whether it freed the inode: not when it still
  // has links, when an S3 upload holds it (the upload's commits free it),
  // when a session holds it open (the last hold's removal frees it), or
  // when `release_now` (if given) says no.
  absl::StatusOr<bool> Release(InodeId ino, ReleaseOnce* release_now) {
    bool freed = false;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      freed = false;
      op.unchanged = true;
      absl::StatusOr<std::optional<InodeRecord>> existing = ReadInode(op.kv, ino);
      if (!existing.ok()) return existing.status();
      if (!existing->has_value() || (*existing)->attr.nlink != 0) return absl::OkStatus();
      absl::StatusOr<bool> held = HeldByUpload(op.kv, ino);
      if (!held.ok()) return held.status();
      if (*held) return absl::OkStatus();
      if (op.session != 0) {
        // Any session's hold, this host's too: its own last close drops it.
        absl::StatusOr<std::vector<uint64_t>> holds = OpenHoldsOf(op.kv, ino);
        if (!holds.ok()) return holds.status();
        if (!holds->empty()) return absl::OkStatus();
      }
      if (release_now != nullptr && !(*release_now)(ino)) return absl::OkStatus();
      op.unchanged = false;
      freed = true;
      op.inodes[ino] = std::move(**existing);
      return StageFree(op, ino);
    });
    if (!s.ok()) return s;
    return freed;
  }

  absl::StatusOr<uint64_t> ReleaseAllOrphans() override {
    // Other hosts may be up and holding orphans open: only theirs stay.
    if (kv_->session_id() != 0) return ReleaseUnheldOrphans({});
    std::vector<InodeId> orphans;
    if (absl::Status s = ListOrphans(&orphans); !s.ok()) return s;
    uint64_t released = 0;
    for (InodeId ino : orphans) {
      // Parts of S3 uploads under way stay for the upload to finish.
      absl::StatusOr<bool> freed = Release(ino, nullptr);
      if (!freed.ok()) return freed.status();
      if (*freed) ++released;
    }
    return released;
  }

  // --- Open files across hosts ------------------------------------------

  bool RecordsOpenHolds() const override { return kv_->session_id() != 0; }

  absl::Status HoldOpen(InodeId ino) override {
    const uint64_t session = kv_->session_id();
    if (session == 0) return absl::OkStatus();
    return kv_->Run([&](KvTxn& txn) -> absl::Status {
      absl::StatusOr<std::optional<InodeRecord>> record = ReadInode(txn, ino);
      if (!record.ok()) return record.status();
      if (!record->has_value()) return NotFound(absl::StrCat("no inode ", ino));
      txn.Put(KvSpace::kMeta, OpenHoldKey(ino, session), "");
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::optional<InodeAttr>> DropOpenHold(
      InodeId ino, const ReleaseCheck& release_check) override {
    absl::StatusOr<std::vector<InodeAttr>> freed = DropOpenHolds({ino}, release_check);
    if (!freed.ok()) return freed.status();
    if (freed->empty()) return std::optional<InodeAttr>();
    return std::optional<InodeAttr>(freed->front());
  }

  absl::StatusOr<std::vector<InodeAttr>> DropOpenHolds(
      absl::Span<const InodeId> inos, const ReleaseCheck& release_check) override {
    const uint64_t session = kv_->session_id();
    if (session == 0 || inos.empty()) return std::vector<InodeAttr>();
    ReleaseOnce release_now(release_check);
    std::vector<InodeAttr> freed;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      freed.clear();
      op.unchanged = true;  // unless it frees: the holds' deletes are all
      std::vector<KvReader::SpaceKey> records;
      for (InodeId ino : inos) records.push_back({KvSpace::kInodes, InodeKey(ino)});
      op.kv.Prefetch(records);
      for (InodeId ino : inos) {
        op.kv.Delete(KvSpace::kMeta, OpenHoldKey(ino, session));
        absl::StatusOr<std::optional<InodeRecord>> existing = ReadInode(op.kv, ino);
        if (!existing.ok()) return existing.status();
        if (!existing->has_value() || (*existing)->attr.nlink != 0) continue;
        absl::StatusOr<bool> by_upload = HeldByUpload(op.kv, ino);
        if (!by_upload.ok()) return by_upload.status();
        if (*by_upload) continue;
        absl::StatusOr<bool> elsewhere = HeldElsewhere(op, ino);
        if (!elsewhere.ok()) return elsewhere.status();
        if (*elsewhere || !release_now(ino)) continue;
        op.unchanged = false;
        freed.push_back((*existing)->attr);
        op.inodes[ino] = std::move(**existing);
        if (absl::Status st = StageFree(op, ino); !st.ok()) return st;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return freed;
  }

  absl::StatusOr<uint64_t> ReleaseUnheldOrphans(const ReleaseCheck& release_check) override {
    const uint64_t own = kv_->session_id();
    if (own == 0) return 0;
    // The holds first, then the live sessions: a session that held
    // something before the list was taken and is not on it is dead (its
    // row outlived its expiry), not merely newer than the list, and a
    // dead session never commits again, so its holds may go.
    std::vector<std::pair<InodeId, uint64_t>> holds;
    const std::string prefix = kOpenHoldPrefix;
    absl::Status listed = kv_->Reader().Scan(
        KvSpace::kMeta, prefix, KvPrefixEnd(prefix), [&](std::string_view key, std::string_view) {
          if (key.size() == prefix.size() + 16) {
            holds.emplace_back(KeyNumberAt(key, prefix.size()),
                               KeyNumberAt(key, prefix.size() + 8));
          }
          return true;
        });
    if (!listed.ok()) return listed;
    absl::StatusOr<std::vector<uint64_t>> live = kv_->LiveSessions();
    if (!live.ok()) return live.status();
    std::set<uint64_t> alive(live->begin(), live->end());
    alive.insert(own);
    std::vector<std::string> dead;
    for (const auto& [ino, session] : holds) {
      if (!alive.count(session)) dead.push_back(OpenHoldKey(ino, session));
    }
    constexpr size_t kBatch = 1024;
    for (size_t i = 0; i < dead.size(); i += kBatch) {
      absl::Status s = kv_->Run([&](KvTxn& txn) {
        for (size_t j = i; j < std::min(dead.size(), i + kBatch); ++j) {
          txn.Delete(KvSpace::kMeta, dead[j]);
        }
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
    }
    std::vector<InodeId> orphans;
    if (absl::Status s = ListOrphans(&orphans); !s.ok()) return s;
    const ReleaseCheck free_all = [](InodeId) { return true; };
    const ReleaseCheck& check = release_check ? release_check : free_all;
    uint64_t released = 0;
    for (InodeId ino : orphans) {
      ReleaseOnce release_now(check);
      absl::StatusOr<bool> freed = Release(ino, &release_now);
      if (!freed.ok()) return freed.status();
      if (*freed) ++released;
    }
    return released;
  }

  // --- Extended attributes --------------------------------------------

  absl::Status SetXattr(InodeId ino, std::string_view name, std::string_view value,
                        XattrMode mode) override {
    if (name.empty()) return FsError(FsErrorKind::kInvalid, "empty xattr name");
    if (name.size() > kMaxNameBytes || value.size() > kMaxXattrValueBytes) {
      return FsError(FsErrorKind::kRange, "xattr name or value too long");
    }
    return Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<InodeRecord*> record = Load(op, ino);
      if (!record.ok()) return record.status();
      absl::StatusOr<std::optional<std::string>> existing =
          op.kv.Get(KvSpace::kXattrs, XattrKey(ino, name));
      if (!existing.ok()) return existing.status();
      const bool new_name = !existing->has_value();
      if (mode == XattrMode::kCreateOnly && !new_name) {
        return FsError(FsErrorKind::kExists, "xattr exists");
      }
      if (mode == XattrMode::kReplaceOnly && new_name) {
        return FsError(FsErrorKind::kNoAttribute, "no such xattr");
      }
      const size_t old_size = new_name ? 0 : (*existing)->size();
      const size_t growth =
          (new_name ? name.size() : 0) + (value.size() > old_size ? value.size() - old_size : 0);
      if (growth > 0) {
        const size_t list_growth = new_name ? name.size() + 1 : 0;
        if (absl::Status s = CheckXattrRoom(op.kv, ino, list_growth, growth); !s.ok()) return s;
      }
      op.kv.Put(KvSpace::kXattrs, XattrKey(ino, name), value);
      (*record)->attr.ctime = options_.clock->NowTimespec();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::string> GetXattr(InodeId ino, std::string_view name) override {
    absl::StatusOr<std::optional<std::string>> value =
        kv_->Reader().Get(KvSpace::kXattrs, XattrKey(ino, name));
    if (!value.ok()) return value.status();
    if (!value->has_value()) {
      absl::StatusOr<InodeRecord> record = MustReadInode(kv_->Reader(), ino);
      if (!record.ok()) return record.status();
      return FsError(FsErrorKind::kNoAttribute, "no such xattr");
    }
    return std::move(**value);
  }

  // ENOSPC when `ino`'s xattrs cannot take `list_growth` more bytes of the
  // name list and `growth` more of names and values.
  static absl::Status CheckXattrRoom(KvReader& reader, InodeId ino, size_t list_growth,
                                     size_t growth) {
    size_t list_bytes = 0, total_bytes = 0;
    absl::Status s = reader.Scan(KvSpace::kXattrs, InodeKey(ino), InodeKey(ino + 1),
                                 [&](std::string_view key, std::string_view value) {
                                   list_bytes += key.size() - 8 + 1;
                                   total_bytes += key.size() - 8 + value.size();
                                   return true;
                                 });
    if (!s.ok()) return s;
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
    absl::StatusOr<InodeRecord> record = MustReadInode(kv_->Reader(), ino);
    if (!record.ok()) return record.status();
    std::vector<std::string> names;
    absl::Status s = kv_->Reader().Scan(KvSpace::kXattrs, InodeKey(ino), InodeKey(ino + 1),
                                        [&](std::string_view key, std::string_view) {
                                          names.emplace_back(key.substr(8));
                                          return true;
                                        });
    if (!s.ok()) return s;
    return names;
  }

  absl::Status RemoveXattr(InodeId ino, std::string_view name) override {
    return Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<InodeRecord*> record = Load(op, ino);
      if (!record.ok()) return record.status();
      absl::StatusOr<std::optional<std::string>> existing =
          op.kv.Get(KvSpace::kXattrs, XattrKey(ino, name));
      if (!existing.ok()) return existing.status();
      if (!existing->has_value()) return FsError(FsErrorKind::kNoAttribute, "no such xattr");
      op.kv.Delete(KvSpace::kXattrs, XattrKey(ino, name));
      (*record)->attr.ctime = options_.clock->NowTimespec();
      return absl::OkStatus();
    });
  }

  // --- File data layout ------------------------------------------------

  absl::StatusOr<std::vector<Extent>> GetExtents(InodeId ino, uint64_t offset,
                                                 uint64_t length) override {
    return ReadExtents(kv_->Reader(), ino, offset,
                       length == 0 ? offset : SaturatingAdd(offset, length), /*clip=*/true);
  }

  using NamespaceStore::CommitWrite;
  absl::StatusOr<InodeAttr> CommitWrite(InodeId ino, absl::Span<const NewBlob> new_blobs,
                                        absl::Span<const Extent> writes,
                                        uint64_t journal_mark) override {
    return MutateInode(ino, [&](Op& op, InodeAttr& attr) -> absl::Status {
      if (!S_ISREG(attr.mode)) return FsError(FsErrorKind::kInvalid, "data written to a non-file");
      InodeRecord& record = op.inodes[ino];
      record.journal_mark = std::max(record.journal_mark, journal_mark);
      StageNewBlobs(op, ino, new_blobs);
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
      absl::StatusOr<std::vector<Extent>> original = ExtentsUnder(op.kv, ino, ranges);
      if (!original.ok()) return original.status();
      ExtentEditor editor(std::move(*original));
      for (const Extent& w : writes) {
        if (w.length > 0) editor.Insert(w);
      }
      int64_t delta = editor.Stage(ino, op.kv, &op.extent_changes);
      attr.allocated_bytes =
          static_cast<uint64_t>(static_cast<int64_t>(attr.allocated_bytes) + delta);
      op.data_bytes_delta += delta;
      // Times are not touched: data is committed long after write(2), and
      // the write's own time reaches us through setattr (see fs/).
      attr.size = std::max(attr.size, hi);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<InodeAttr> PunchHole(InodeId ino, uint64_t offset, uint64_t length) override {
    return MutateInode(ino, [&](Op& op, InodeAttr& attr) -> absl::Status {
      uint64_t end = std::min(SaturatingAdd(offset, length), attr.size);
      attr.mtime = attr.ctime = options_.clock->NowTimespec();
      if (offset >= end) return absl::OkStatus();
      return EditExtents(op, attr, offset, end, [&](ExtentEditor& e) { e.Cut(offset, end); });
    });
  }

  absl::StatusOr<InodeAttr> Allocate(InodeId ino, uint64_t offset, uint64_t length) override {
    return MutateInode(ino, [&](Op&, InodeAttr& attr) -> absl::Status {
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
    absl::StatusOr<StoredBlob> blob = ReadStoredBlob(kv_->Reader(), id);
    if (!blob.ok()) return blob.status();
    return blob->record;
  }

  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> CompactionCandidates(
      size_t max, double max_live_ratio) override {
    std::vector<std::pair<BlobId, BlobRecord>> out;
    if (max == 0) return out;
    absl::Status decoded = absl::OkStatus();
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kBlobs, "", "", [&](std::string_view key, std::string_view value) {
          absl::StatusOr<StoredBlob> blob = DecodeBlob(value);
          if (!blob.ok()) {
            decoded = blob.status();
            return false;
          }
          const BlobRecord& r = blob->record;
          // Remote-only blobs stay out: compacting them would fetch cold
          // data back to the local disks.
          if (r.owner == 0 || r.refcount == 0 || r.length == 0 || InRemoteTierOnly(r.location)) {
            return true;
          }
          if (static_cast<double>(r.live_bytes) >
              max_live_ratio * static_cast<double>(r.length)) {
            return true;
          }
          out.emplace_back(KeyNumberAt(key, 0), r);
          return out.size() < max;
        });
    if (!s.ok()) return s;
    if (!decoded.ok()) return decoded;
    return out;
  }

  absl::Status RelocateExtents(InodeId ino, absl::Span<const NewBlob> new_blobs,
                               absl::Span<const Relocation> moves) override {
    return MutateInode(ino, [&](Op& op, InodeAttr& attr) -> absl::Status {
      if (!S_ISREG(attr.mode)) return FsError(FsErrorKind::kInvalid, "not a file");
      StageNewBlobs(op, ino, new_blobs);
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      for (const Relocation& move : moves) ranges.emplace_back(move.file_offset, move.length);
      absl::StatusOr<std::vector<Extent>> original = ExtentsUnder(op.kv, ino, ranges);
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
      int64_t delta = editor.Stage(ino, op.kv, &op.extent_changes);
      if (delta != 0) {
        return FsError(FsErrorKind::kIo, "relocation changed the amount of file data");
      }
      // Insert() of a moved piece over its own old piece splits neighbours
      // but keeps every byte: nothing else about the file changes.
      return absl::OkStatus();
    }).status();
  }

  absl::StatusOr<BlobId> AllocateBlobIds(uint64_t count) override {
    return kv_->Allocate(kNextBlobKey, kFirstBlob, count);
  }

  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> ListBlobs(BlobId from,
                                                                      size_t max) override {
    std::vector<std::pair<BlobId, BlobRecord>> out;
    if (max == 0) return out;
    absl::Status decoded = absl::OkStatus();
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kBlobs, BlobKey(from), "", [&](std::string_view key, std::string_view value) {
          absl::StatusOr<StoredBlob> blob = DecodeBlob(value);
          if (!blob.ok()) {
            decoded = blob.status();
            return false;
          }
          out.emplace_back(KeyNumberAt(key, 0), blob->record);
          return out.size() < max;
        });
    if (!s.ok()) return s;
    if (!decoded.ok()) return decoded;
    return out;
  }

  absl::Status SetBlobLocation(BlobId id, BlobLocation location) override {
    return Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<StoredBlob> blob = ReadStoredBlob(op.kv, id);
      if (!blob.ok()) return blob.status();
      blob->record.location = location;
      op.kv.Put(KvSpace::kBlobs, BlobKey(id), EncodeBlob(*blob));
      return absl::OkStatus();
    });
  }

  absl::Status QueueRepair(BlobId id) override {
    return PutOne(KvSpace::kMeta, kRepairPrefix + BlobKey(id), "");
  }

  absl::StatusOr<std::vector<BlobId>> PendingRepairs(BlobId from, size_t max) override {
    std::vector<BlobId> ids;
    if (max == 0) return ids;
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kMeta, kRepairPrefix + BlobKey(from), KvPrefixEnd(kRepairPrefix),
        [&](std::string_view key, std::string_view) {
          if (key.size() != 10) return false;
          ids.push_back(KeyNumberAt(key.substr(2), 0));
          return ids.size() < max;
        });
    if (!s.ok()) return s;
    return ids;
  }

  absl::Status ClearRepair(BlobId id) override {
    return DeleteOne(KvSpace::kMeta, kRepairPrefix + BlobKey(id));
  }

  absl::StatusOr<std::vector<QueuedReplication>> PendingReplications(BlobId from,
                                                                     size_t max) override {
    std::vector<QueuedReplication> queued;
    if (max == 0) return queued;
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kMeta, kReplicationPrefix + BlobKey(from), KvPrefixEnd(kReplicationPrefix),
        [&](std::string_view key, std::string_view value) {
          if (key.size() != 10) return false;
          QueuedReplication entry;
          entry.id = KeyNumberAt(key.substr(2), 0);
          if (value.size() >= 16) {
            entry.queued_sec = static_cast<int64_t>(DecodeFixed64(value.data()));
            entry.length = DecodeFixed64(value.data() + 8);
          }
          queued.push_back(entry);
          return queued.size() < max;
        });
    if (!s.ok()) return s;
    return queued;
  }

  absl::Status ClearReplication(BlobId id) override {
    return DeleteOne(KvSpace::kMeta, kReplicationPrefix + BlobKey(id));
  }

  absl::StatusOr<uint64_t> QueueExistingBlobsForReplica(const std::string& target) override {
    absl::StatusOr<std::optional<std::string>> done =
        kv_->Reader().Get(KvSpace::kMeta, kReplicaTargetKey);
    if (!done.ok()) return done.status();
    if (done->has_value() && **done == target) return 0;
    const uint64_t now =
        static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    // In commits of 4096 entries; queuing one twice is harmless.
    constexpr size_t kPage = 4096;
    uint64_t queued = 0;
    std::string from;
    for (;;) {
      std::vector<std::pair<std::string, uint64_t>> page;  // blob key, length
      absl::Status decoded = absl::OkStatus();
      absl::Status s = kv_->Reader().Scan(
          KvSpace::kBlobs, from, "", [&](std::string_view key, std::string_view value) {
            from = std::string(key) + '\0';
            absl::StatusOr<StoredBlob> blob = DecodeBlob(value);
            if (!blob.ok()) {
              decoded = blob.status();
              return false;
            }
            // Garbage collection's, not the replica's.
            if (blob->record.refcount != 0) page.emplace_back(key, blob->record.length);
            return page.size() < kPage;
          });
      if (!s.ok()) return s;
      if (!decoded.ok()) return decoded;
      if (page.empty()) break;
      s = Mutate([&](Op& op) -> absl::Status {
        for (const auto& [key, length] : page) {
          op.kv.Put(KvSpace::kMeta, kReplicationPrefix + key, ReplicationValue(now, length));
        }
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
      queued += page.size();
      if (page.size() < kPage) break;
    }
    // The target is recorded last: a crash before it queues them all again.
    if (absl::Status s = PutOne(KvSpace::kMeta, kReplicaTargetKey, target); !s.ok()) return s;
    return queued;
  }

  absl::StatusOr<ReplicationBacklog> GetReplicationBacklog(size_t max_count) override {
    ReplicationBacklog backlog;
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kMeta, kReplicationPrefix, KvPrefixEnd(kReplicationPrefix),
        [&](std::string_view, std::string_view value) {
          if (backlog.blobs == max_count) {
            backlog.counted_all = false;
            return false;
          }
          if (value.size() >= 16) {
            int64_t queued = static_cast<int64_t>(DecodeFixed64(value.data()));
            if (backlog.oldest_sec == 0 || queued < backlog.oldest_sec) {
              backlog.oldest_sec = queued;
            }
            backlog.bytes += DecodeFixed64(value.data() + 8);
          }
          backlog.blobs++;
          return true;
        });
    if (!s.ok()) return s;
    return backlog;
  }

  absl::StatusOr<std::vector<BlobId>> CollectableBlobs(size_t max) override {
    const uint64_t now =
        static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    std::vector<BlobId> ids;
    // Only keys that are due: the scan never walks the rest of the queue.
    const std::string due = GcKey(now + 1, 0);
    std::string from;
    while (ids.size() < max) {
      // A page of due blobs, then which of them the replicator still needs
      // (it copies them first): one read of the queue for the page.
      std::vector<BlobId> page;
      const size_t wanted = max - ids.size();
      absl::Status s = kv_->Reader().Scan(KvSpace::kGc, from, due,
                                          [&](std::string_view key, std::string_view) {
                                            from = std::string(key) + '\0';
                                            page.push_back(KeyNumberAt(key, 8));
                                            return page.size() < wanted;
                                          });
      if (!s.ok()) return s;
      if (!options_.queue_replication) {
        ids.insert(ids.end(), page.begin(), page.end());
      } else if (!page.empty()) {
        std::vector<std::string> keys;
        for (BlobId id : page) keys.push_back(kReplicationPrefix + BlobKey(id));
        absl::StatusOr<std::vector<std::optional<std::string>>> queued =
            kv_->Reader().MultiGet(KvSpace::kMeta, keys);
        if (!queued.ok()) return queued.status();
        for (size_t i = 0; i < page.size(); ++i) {
          if (!(*queued)[i].has_value()) ids.push_back(page[i]);
        }
      }
      if (page.size() < wanted) break;  // no more are due
    }
    return ids;
  }

  absl::Status ForgetBlobs(absl::Span<const BlobId> ids) override {
    return Mutate([&](Op& op) -> absl::Status {
      for (BlobId id : ids) {
        absl::StatusOr<std::optional<std::string>> value = op.kv.Get(KvSpace::kBlobs, BlobKey(id));
        if (!value.ok()) return value.status();
        if (!value->has_value()) continue;
        absl::StatusOr<StoredBlob> blob = DecodeBlob(**value);
        if (!blob.ok()) return blob.status();
        if (blob->record.refcount != 0) continue;  // referenced again: keep
        op.kv.Delete(KvSpace::kGc, GcKey(blob->gc_ready_sec, id));
        op.kv.Delete(KvSpace::kBlobs, BlobKey(id));
      }
      return absl::OkStatus();
    });
  }

  // --- Volume -----------------------------------------------------------

  absl::StatusOr<NamespaceStats> Stats() override {
    NamespaceStats stats;
    absl::StatusOr<int64_t> inodes = kv_->ReadCounter(kInodeCountKey);
    if (!inodes.ok()) return inodes.status();
    absl::StatusOr<int64_t> bytes = kv_->ReadCounter(kDataBytesKey);
    if (!bytes.ok()) return bytes.status();
    stats.inode_count = static_cast<uint64_t>(*inodes);
    stats.data_bytes = static_cast<uint64_t>(*bytes);
    // An engine without a log of its own reports none.
    if (absl::StatusOr<KvStore::EngineStats> engine = kv_->GetEngineStats(); engine.ok()) {
      stats.log_writes = engine->log_writes;
      stats.log_syncs = engine->log_syncs;
    }
    return stats;
  }

  absl::Status SetVolumeMeta(std::string_view key, std::string_view value) override {
    return PutOne(KvSpace::kMeta, absl::StrCat(kVolumeMetaPrefix, Absl(key)), value);
  }

  absl::StatusOr<std::optional<std::string>> GetVolumeMeta(std::string_view key) override {
    return kv_->Reader().Get(KvSpace::kMeta, absl::StrCat(kVolumeMetaPrefix, Absl(key)));
  }

  absl::StatusOr<uint64_t> BumpVolumeMeta(std::string_view key) override {
    const std::string full_key = absl::StrCat(kVolumeMetaPrefix, Absl(key));
    uint64_t bumped = 0;
    absl::Status status = kv_->Run([&](KvTxn& txn) -> absl::Status {
      absl::StatusOr<std::optional<std::string>> stored = txn.Get(KvSpace::kMeta, full_key);
      if (!stored.ok()) return stored.status();
      uint64_t value = 0;
      if (stored->has_value() && !absl::SimpleAtoi(**stored, &value)) {
        return absl::DataLossError(absl::StrCat("the namespace's ", Absl(key),
                                                " is not a number; run cairn fsck"));
      }
      bumped = value + 1;
      txn.Put(KvSpace::kMeta, full_key, absl::StrCat(bumped));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return bumped;
  }

  absl::Status MarkDamaged(InodeId ino, std::string_view why) override {
    return PutOne(KvSpace::kMeta, kDamagePrefix + InodeKey(ino), why);
  }

  absl::Status ClearDamage(InodeId ino) override {
    return DeleteOne(KvSpace::kMeta, kDamagePrefix + InodeKey(ino));
  }

  absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> DamagedFiles() override {
    std::vector<std::pair<InodeId, std::string>> out;
    absl::Status s = kv_->Reader().Scan(KvSpace::kMeta, kDamagePrefix, KvPrefixEnd(kDamagePrefix),
                                        [&](std::string_view key, std::string_view value) {
                                          if (key.size() != 10) return false;
                                          out.emplace_back(KeyNumberAt(key.substr(2), 0),
                                                           std::string(value));
                                          return true;
                                        });
    if (!s.ok()) return s;
    return out;
  }

  absl::Status CreateCheckpoint(const std::string& dir) override {
    return kv_->CreateCheckpoint(dir);
  }

  absl::Status RecordReplicaTarget(const std::string& target) override {
    return PutOne(KvSpace::kMeta, kReplicaTargetKey, target);
  }

  absl::Status SkipBlobIdsBelow(BlobId first_free) override {
    // Taking the ids in between: none below first_free is handed out after
    // this returns, whoever else allocates meanwhile.
    absl::StatusOr<BlobId> next = kv_->Allocate(kNextBlobKey, kFirstBlob, 0);
    if (!next.ok()) return next.status();
    if (first_free <= *next) return absl::OkStatus();
    return kv_->Allocate(kNextBlobKey, kFirstBlob, first_free - *next).status();
  }

  absl::StatusOr<NamespaceCheckReport> Check() override {
    NamespaceCounters counters;
    absl::StatusOr<uint64_t> next_inode = kv_->Allocate(kNextInodeKey, kFirstInode, 0);
    if (!next_inode.ok()) return next_inode.status();
    absl::StatusOr<uint64_t> next_blob = kv_->Allocate(kNextBlobKey, kFirstBlob, 0);
    if (!next_blob.ok()) return next_blob.status();
    absl::StatusOr<NamespaceStats> stats = Stats();
    if (!stats.ok()) return stats.status();
    counters.next_inode = *next_inode;
    counters.next_blob = *next_blob;
    counters.inode_count = stats->inode_count;
    counters.data_bytes = stats->data_bytes;
    return CheckNamespace(kv_->Reader(), counters);
  }

  // --- S3 multipart uploads -------------------------------------------

  absl::Status PutMultipartUpload(std::string_view id,
                                  const MultipartUploadRecord& upload) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    return kv_->Run([&](KvTxn& txn) -> absl::Status {
      absl::StatusOr<std::optional<MultipartUploadRecord>> existing = ReadUpload(txn, id);
      if (!existing.ok()) return existing.status();
      if (existing->has_value()) return FsError(FsErrorKind::kExists, "the upload id is taken");
      txn.Put(KvSpace::kMeta, UploadKey(id), EncodeMultipartUpload(upload));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::optional<MultipartUploadRecord>> GetMultipartUpload(
      std::string_view id) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    return ReadUpload(kv_->Reader(), id);
  }

  absl::Status ListMultipartUploads(
      std::string_view after_id,
      const std::function<bool(const std::string&, const MultipartUploadRecord&)>& fn) override {
    const std::string prefix = kUploadPrefix;
    absl::Status failed;
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kMeta, prefix + std::string(after_id), KvPrefixEnd(prefix),
        [&](std::string_view key, std::string_view value) {
          std::string id(key.substr(prefix.size()));
          if (id == after_id) return true;
          absl::StatusOr<MultipartUploadRecord> upload = DecodeMultipartUpload(value);
          if (!upload.ok()) {
            failed = upload.status();
            return false;
          }
          return fn(id, *upload);
        });
    return failed.ok() ? s : failed;
  }

  absl::Status ListMultipartParts(
      std::string_view id, uint32_t after_number,
      const std::function<bool(const MultipartPartRecord&)>& fn) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    const std::string prefix = PartPrefix(id);
    absl::Status failed;
    absl::Status s = kv_->Reader().Scan(
        KvSpace::kMeta, PartKey(id, uint64_t{after_number} + 1), KvPrefixEnd(prefix),
        [&](std::string_view key, std::string_view value) {
          if (key.size() != prefix.size() + 8) return false;
          absl::StatusOr<MultipartPartRecord> part = DecodeMultipartPart(
              static_cast<uint32_t>(KeyNumberAt(key, prefix.size())), value);
          if (!part.ok()) {
            failed = part.status();
            return false;
          }
          return fn(*part);
        });
    return failed.ok() ? s : failed;
  }

  absl::StatusOr<std::optional<MultipartPartRecord>> PutMultipartPart(
      std::string_view id, const MultipartPartRecord& part,
      const ReleaseCheck& release_check) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    ReleaseOnce release_now(release_check);
    std::optional<MultipartPartRecord> replaced;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      replaced.reset();
      absl::StatusOr<std::optional<MultipartUploadRecord>> upload = ReadUpload(op.kv, id);
      if (!upload.ok()) return upload.status();
      if (!upload->has_value()) return NotFound("no such multipart upload");
      absl::StatusOr<InodeRecord> file = MustReadInode(op.kv, part.ino);
      if (!file.ok()) return file.status();
      if (!S_ISREG(file->attr.mode) || file->attr.nlink != 0) {
        return FsError(FsErrorKind::kInvalid, "only a nameless regular file can be a part");
      }
      const std::string key = PartKey(id, part.number);
      absl::StatusOr<std::optional<std::string>> value = op.kv.Get(KvSpace::kMeta, key);
      if (!value.ok()) return value.status();
      if (value->has_value()) {
        absl::StatusOr<MultipartPartRecord> old = DecodeMultipartPart(part.number, **value);
        if (!old.ok()) return old.status();
        replaced = *old;
        if (old->ino != part.ino) {
          if (absl::Status s = StageUnholdPart(op, old->ino, release_now); !s.ok()) return s;
        }
      }
      op.kv.Put(KvSpace::kMeta, key, EncodeMultipartPart(part));
      op.kv.Put(KvSpace::kMeta, kHeldPartPrefix + InodeKey(part.ino), id);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return replaced;
  }

  absl::Status DeleteMultipartUpload(std::string_view id,
                                     const ReleaseCheck& release_check) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    ReleaseOnce release_now(release_check);
    return Mutate([&](Op& op) { return StageDropUpload(op, id, release_now); });
  }

  absl::StatusOr<std::optional<InodeAttr>> PublishMultipartUpload(
      std::string_view id, InodeId ino, InodeId parent, std::string_view name,
      const PublishCondition& condition, const ReleaseCheck& release_check) override {
    if (absl::Status s = CheckUploadId(id); !s.ok()) return s;
    ReleaseOnce release_now(release_check);
    return PublishWith(ino, parent, name, condition, release_now,
                       [&](Op& op) { return StageDropUpload(op, id, release_now); });
  }

  absl::Status Sync() override { return kv_->Sync(); }

  bool IsLeader() override { return kv_->IsLeader(); }
  uint64_t session_id() const override { return kv_->session_id(); }
  absl::StatusOr<std::vector<KvStore::SessionInfo>> ListSessions() override {
    return kv_->ListSessions();
  }
  void SetSessionBacklog(uint64_t bytes) override { kv_->SetSessionBacklog(bytes); }

  absl::StatusOr<std::unique_ptr<NamespaceWatch>> WatchChanges(NamespaceChangeFn fn) override {
    struct Watch : NamespaceWatch {
      explicit Watch(std::atomic<int>& watches) : watches(watches) { ++watches; }
      ~Watch() override {
        kv.reset();  // no callback after this
        --watches;
      }
      std::atomic<int>& watches;
      std::unique_ptr<KvStore::Watch> kv;
    };
    auto watch = std::make_unique<Watch>(watches_);
    absl::StatusOr<std::unique_ptr<KvStore::Watch>> kv = kv_->WatchChanges(
        [this, fn = std::move(fn)](uint64_t, const std::vector<KvStore::Change>& keys) {
          std::vector<NamespaceChange> changes = NamespaceChangesOf(keys);
          if (changes.empty()) return;
          {
            // Another host changed these: what this host committed of
            // them is no answer any more.
            absl::MutexLock lock(&recent_mu_);
            ++recent_generation_;
            for (const NamespaceChange& c : changes) recent_dirs_.erase(c.ino);
          }
          fn(changes);
        });
    if (!kv.ok()) return kv.status();
    watch->kv = *std::move(kv);
    return std::unique_ptr<NamespaceWatch>(std::move(watch));
  }

 private:
  static absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

  // Runs `body` on a fresh Op in a transaction and stages what it changed.
  // On a shared namespace, notes the directories it committed for
  // GetAttrRecent: only when no other mutation of this host overlapped it
  // and no change of another host arrived meanwhile, so that a newer
  // commit is never shadowed by an older one; whatever else it loaded is
  // forgotten there.
  template <typename Body>
  absl::Status Mutate(Body body) {
    const bool noting = Guessing();
    uint64_t generation = 0;
    bool alone = false;
    if (noting) {
      absl::MutexLock lock(&recent_mu_);
      generation = ++recent_generation_;
      alone = mutations_in_flight_++ == 0;
    }
    std::set<InodeId> loaded;
    std::vector<InodeAttr> dirs;
    absl::Status s = kv_->Run([&](KvTxn& kv) -> absl::Status {
      Op op(kv, kv_->session_id());
      dirs.clear();
      absl::Status st = body(op);
      if (noting) {
        for (const auto& [ino, record] : op.inodes) loaded.insert(ino);
      }
      if (!st.ok()) return st;
      if (op.unchanged) return absl::OkStatus();
      if (st = Stage(op); !st.ok() || !noting) return st;
      for (InodeId ino : op.dirty) {
        if (IsDir(op.inodes[ino].attr.mode)) dirs.push_back(op.inodes[ino].attr);
      }
      return absl::OkStatus();
    });
    if (!noting) return s;
    absl::MutexLock lock(&recent_mu_);
    --mutations_in_flight_;
    for (InodeId ino : loaded) recent_dirs_.erase(ino);
    if (s.ok() && alone && recent_generation_ == generation) {
      if (recent_dirs_.size() + dirs.size() > kMaxRecentDirs) recent_dirs_.clear();
      const auto now = std::chrono::steady_clock::now();
      for (const InodeAttr& attr : dirs) recent_dirs_[attr.ino] = RecentDir{attr, now};
    }
    return s;
  }

  // The shape of every single-inode mutation: load the inode, let `change`
  // edit it (and stage more in the transaction), commit, return the inode.
  template <typename ChangeFn>
  absl::StatusOr<InodeAttr> MutateInode(InodeId ino, ChangeFn change) {
    InodeAttr result;
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      absl::StatusOr<InodeRecord*> loaded = Load(op, ino);
      if (!loaded.ok()) return loaded.status();
      if (absl::Status s = change(op, (*loaded)->attr); !s.ok()) return s;
      result = op.inodes[ino].attr;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  // The operation creates `record`'s inode (held open by this host when
  // the caller opens it at once); returns its attributes.
  InodeAttr AddNewInode(Op& op, InodeRecord record, bool hold_open) {
    const InodeAttr attr = record.attr;
    if (hold_open && op.session != 0) {
      op.kv.Put(KvSpace::kMeta, OpenHoldKey(attr.ino, op.session), "");
    }
    op.inodes[attr.ino] = std::move(record);
    op.dirty.insert(attr.ino);
    op.inode_count_delta = 1;
    return attr;
  }

  absl::Status PutOne(KvSpace space, const std::string& key, std::string_view value) {
    return kv_->Run([&](KvTxn& txn) {
      txn.Put(space, key, value);
      return absl::OkStatus();
    });
  }
  absl::Status DeleteOne(KvSpace space, const std::string& key) {
    return kv_->Run([&](KvTxn& txn) {
      txn.Delete(space, key);
      return absl::OkStatus();
    });
  }

  // Writes what the body changed into its transaction: blob reference
  // counts, replication queue entries, the dirty inodes, the counters.
  absl::Status Stage(Op& op) {
    uint64_t now = static_cast<uint64_t>(std::max<int64_t>(0, options_.clock->NowTimespec().sec));
    absl::Status blobs = ApplyBlobChanges(
        op.kv, op.extent_changes,
        now + static_cast<uint64_t>(std::max<int64_t>(0, options_.gc_grace_seconds)));
    if (!blobs.ok()) return blobs;
    if (options_.queue_replication) {
      // In the same commit: no blob is ever committed without its queue entry.
      for (const auto& [id, blob] : op.extent_changes.new_blobs) {
        op.kv.Put(KvSpace::kMeta, kReplicationPrefix + BlobKey(id),
                  ReplicationValue(now, blob.record.length));
      }
    }
    for (InodeId ino : op.dirty) {
      op.kv.Put(KvSpace::kInodes, InodeKey(ino), EncodeInode(op.inodes[ino]));
    }
    if (op.inode_count_delta != 0) op.kv.AddToCounter(kInodeCountKey, op.inode_count_delta);
    if (op.data_bytes_delta != 0) op.kv.AddToCounter(kDataBytesKey, op.data_bytes_delta);
    return absl::OkStatus();
  }

  // A new inode number into `*ino`, unless a previous run of the body took
  // one already. From the pool; a failed call skips the number (harmless:
  // a reused one would not be).
  absl::Status TakeInodeNumber(InodeId* ino) {
    if (*ino != 0) return absl::OkStatus();
    absl::MutexLock lock(&inode_pool_mu_);
    if (next_inode_ == inode_pool_end_) {
      absl::StatusOr<uint64_t> first = kv_->Allocate(kNextInodeKey, kFirstInode, kInodeRange);
      if (!first.ok()) return first.status();
      next_inode_ = *first;
      inode_pool_end_ = *first + kInodeRange;
    }
    *ino = next_inode_++;
    return absl::OkStatus();
  }

  absl::Status ListOrphans(std::vector<InodeId>* orphans) {
    return kv_->Reader().Scan(KvSpace::kOrphans, "", "",
                              [&](std::string_view key, std::string_view) {
                                orphans->push_back(KeyNumberAt(key, 0));
                                return true;
                              });
  }

  absl::StatusOr<InodeAttr> RemoveEntry(InodeId parent, std::string_view name, bool want_dir,
                                        const ReleaseCheck& release_check) {
    if (absl::Status s = CheckName(name); !s.ok()) return s;
    ReleaseOnce release_now(release_check);
    InodeAttr result;
    std::optional<EntryGuesses::Guess> guess;
    if (Guessing()) guess = guesses_.Find(parent, name);
    absl::Status s = Mutate([&](Op& op) -> absl::Status {
      std::vector<KvReader::SpaceKey> keys = {{KvSpace::kInodes, InodeKey(parent)},
                                              {KvSpace::kDentries, DentryKey(parent, name)}};
      std::vector<KvTxn::SpaceRange> scans;
      if (guess) AddRemovalReads(op, guess->ino, guess->mode, &keys, &scans);
      op.kv.Prefetch(keys, scans);
      absl::StatusOr<InodeRecord*> dir = LoadDir(op, parent);
      if (!dir.ok()) return dir.status();
      absl::StatusOr<std::optional<DentryValue>> entry = ReadDentry(op.kv, parent, name);
      if (!entry.ok()) return entry.status();
      if (!entry->has_value()) return NotFound("no such entry");
      const DentryValue found = **entry;
      if (!guess || guess->ino != found.ino || guess->mode != found.mode) {
        keys.clear();
        scans.clear();
        AddRemovalReads(op, found.ino, found.mode, &keys, &scans);
        op.kv.Prefetch(keys, scans);
      }
      if (want_dir && !IsDir(found.mode)) {
        return FsError(FsErrorKind::kNotDirectory, "not a directory");
      }
      if (!want_dir && IsDir(found.mode)) return FsError(FsErrorKind::kIsDirectory, "is a directory");
      if (want_dir) {
        absl::StatusOr<bool> empty = DirIsEmpty(op.kv, found.ino);
        if (!empty.ok()) return empty.status();
        if (!*empty) return FsError(FsErrorKind::kNotEmpty, "directory not empty");
        (*dir)->attr.nlink--;
      }
      absl::StatusOr<InodeRecord*> child = Load(op, found.ino);
      if (!child.ok()) return child.status();
      Timespec now = options_.clock->NowTimespec();
      DeleteEntry(op, parent, name, found.cookie);
      DropLink(op, **child, now);
      Touch(**dir, now, true);
      if (absl::Status s = FreeIfReleasable(op, **child, release_now); !s.ok()) return s;
      result = op.inodes[found.ino].attr;
      return absl::OkStatus();
    });
    if (guess) guesses_.Forget(parent, name);
    if (!s.ok()) return s;
    return result;
  }

  absl::Status RenameBody(Op& op, InodeId old_parent, std::string_view old_name,
                          InodeId new_parent, std::string_view new_name, RenameMode mode,
                          ReleaseOnce& release_now, std::optional<InodeAttr>* result);

  std::unique_ptr<KvStore> kv_;
  const NamespaceOptions options_;

  // Whether to keep EntryGuesses: where reads are round trips (a shared
  // namespace), not where they are a local lookup.
  bool Guessing() const { return kv_->session_id() != 0; }
  EntryGuesses guesses_;

  // Directories this host committed, for GetAttrRecent. The generation
  // counts mutations begun and changes of other hosts received.
  struct RecentDir {
    InodeAttr attr;
    std::chrono::steady_clock::time_point at;
  };
  static constexpr size_t kMaxRecentDirs = 4096;
  std::atomic<int> watches_{0};
  absl::Mutex recent_mu_;
  absl::flat_hash_map<InodeId, RecentDir> recent_dirs_ ABSL_GUARDED_BY(recent_mu_);
  uint64_t recent_generation_ ABSL_GUARDED_BY(recent_mu_) = 0;
  int mutations_in_flight_ ABSL_GUARDED_BY(recent_mu_) = 0;

  // Inode numbers taken from the store and not yet used: [next, end).
  absl::Mutex inode_pool_mu_;
  uint64_t next_inode_ ABSL_GUARDED_BY(inode_pool_mu_) = 0;
  uint64_t inode_pool_end_ ABSL_GUARDED_BY(inode_pool_mu_) = 0;
};

absl::Status KvNamespace::RenameBody(Op& op, InodeId old_parent, std::string_view old_name,
                                     InodeId new_parent, std::string_view new_name,
                                     RenameMode mode, ReleaseOnce& release_now,
                                     std::optional<InodeAttr>* result) {
  // The moved inode and a replaced one's removal reads, where this host
  // knows what the names hold, go with the entries' reads; otherwise in
  // one more round trip once the entries are read.
  std::vector<KvReader::SpaceKey> keys = {{KvSpace::kInodes, InodeKey(old_parent)},
                                          {KvSpace::kInodes, InodeKey(new_parent)},
                                          {KvSpace::kDentries, DentryKey(old_parent, old_name)},
                                          {KvSpace::kDentries, DentryKey(new_parent, new_name)}};
  std::vector<KvTxn::SpaceRange> scans;
  std::optional<EntryGuesses::Guess> src_guess, dst_guess;
  if (Guessing()) {
    src_guess = guesses_.Find(old_parent, old_name);
    dst_guess = guesses_.Find(new_parent, new_name);
  }
  if (src_guess) keys.push_back({KvSpace::kInodes, InodeKey(src_guess->ino)});
  if (dst_guess) AddRemovalReads(op, dst_guess->ino, dst_guess->mode, &keys, &scans);
  op.kv.Prefetch(keys, scans);
  absl::StatusOr<InodeRecord*> from_dir = LoadDir(op, old_parent);
  if (!from_dir.ok()) return from_dir.status();
  absl::StatusOr<std::optional<DentryValue>> src = ReadDentry(op.kv, old_parent, old_name);
  if (!src.ok()) return src.status();
  if (!src->has_value()) return NotFound("no such entry");
  absl::StatusOr<InodeRecord*> to_dir = LoadDir(op, new_parent);
  if (!to_dir.ok()) return to_dir.status();
  if (old_parent == new_parent && old_name == new_name) {
    op.unchanged = true;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<DentryValue>> dst = ReadDentry(op.kv, new_parent, new_name);
  if (!dst.ok()) return dst.status();
  keys.clear();
  scans.clear();
  if (!src_guess || src_guess->ino != (*src)->ino) {
    keys.push_back({KvSpace::kInodes, InodeKey((*src)->ino)});
  }
  if (dst->has_value() && (!dst_guess || dst_guess->ino != (*dst)->ino ||
                           dst_guess->mode != (*dst)->mode)) {
    AddRemovalReads(op, (*dst)->ino, (*dst)->mode, &keys, &scans);
  }
  op.kv.Prefetch(keys, scans);
  if (mode == RenameMode::kNoReplace && dst->has_value()) {
    return FsError(FsErrorKind::kExists, "target exists");
  }
  if (mode == RenameMode::kExchange && !dst->has_value()) {
    return NotFound("exchange target missing");
  }
  const DentryValue source = **src;
  const bool source_is_dir = IsDir(source.mode);
  if (dst->has_value() && (*dst)->ino == source.ino) {
    op.unchanged = true;  // two names of one inode: no-op
    return absl::OkStatus();
  }
  // A directory may not move below itself.
  auto inside = [&](InodeId start, InodeId dir) -> absl::StatusOr<bool> {
    for (InodeId p = start;;) {
      if (p == dir) return true;
      if (p == kRootInode) return false;
      absl::StatusOr<InodeRecord*> record = Load(op, p);
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
  absl::StatusOr<InodeRecord*> moved = Load(op, source.ino);
  if (!moved.ok()) return moved.status();

  if (mode == RenameMode::kExchange) {
    const DentryValue target = **dst;
    const bool target_is_dir = IsDir(target.mode);
    if (target_is_dir && old_parent != new_parent) {
      absl::StatusOr<bool> bad = inside(old_parent, target.ino);
      if (!bad.ok()) return bad.status();
      if (*bad) return FsError(FsErrorKind::kInvalid, "directory into itself");
    }
    absl::StatusOr<InodeRecord*> other = Load(op, target.ino);
    if (!other.ok()) return other.status();
    PutEntry(op, old_parent, old_name, DentryValue{target.ino, target.mode, source.cookie});
    PutEntry(op, new_parent, new_name, DentryValue{source.ino, source.mode, target.cookie});
    if (old_parent != new_parent) {
      if (source_is_dir) {
        (*moved)->attr.parent = new_parent;
        op.inodes[old_parent].attr.nlink--;
        op.inodes[new_parent].attr.nlink++;
      }
      if (target_is_dir) {
        (*other)->attr.parent = old_parent;
        op.inodes[new_parent].attr.nlink--;
        op.inodes[old_parent].attr.nlink++;
      }
    }
    (*moved)->attr.ctime = now;
    (*other)->attr.ctime = now;
    Touch(op.inodes[old_parent], now, true);
    Touch(op.inodes[new_parent], now, true);
    return absl::OkStatus();
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
      absl::StatusOr<bool> empty = DirIsEmpty(op.kv, target.ino);
      if (!empty.ok()) return empty.status();
      if (!*empty) return FsError(FsErrorKind::kNotEmpty, "target not empty");
      op.inodes[new_parent].attr.nlink--;
    }
    absl::StatusOr<InodeRecord*> victim = Load(op, target.ino);
    if (!victim.ok()) return victim.status();
    DeleteEntry(op, new_parent, new_name, target.cookie);
    DropLink(op, **victim, now);
    if (absl::Status s = FreeIfReleasable(op, **victim, release_now); !s.ok()) return s;
    replaced = target.ino;
  }
  DeleteEntry(op, old_parent, old_name, source.cookie);
  AddEntry(op, op.inodes[new_parent], new_name, source.ino, source.mode);
  if (source_is_dir && old_parent != new_parent) {
    (*moved)->attr.parent = new_parent;
    op.inodes[old_parent].attr.nlink--;
    op.inodes[new_parent].attr.nlink++;
  }
  (*moved)->attr.ctime = now;
  Touch(op.inodes[old_parent], now, true);
  Touch(op.inodes[new_parent], now, true);
  if (replaced) *result = op.inodes[*replaced].attr;
  return absl::OkStatus();
}

}  // namespace

std::vector<NamespaceChange> NamespaceChangesOf(const std::vector<KvStore::Change>& keys) {
  std::vector<NamespaceChange> out;
  std::set<InodeId> inodes;
  std::set<std::pair<InodeId, std::string>> entries;
  for (const KvStore::Change& c : keys) {
    if (c.key.size() < 8) continue;  // not a key of a per-inode record
    const InodeId ino = KeyNumberAt(c.key, 0);
    switch (c.space) {
      case KvSpace::kInodes:
      case KvSpace::kXattrs:
      case KvSpace::kExtents:
      case KvSpace::kCookies:  // the directory's listing
        if (inodes.insert(ino).second) out.push_back({NamespaceChange::Kind::kInode, ino, ""});
        break;
      case KvSpace::kDentries: {
        std::string name = c.key.substr(8);
        if (entries.emplace(ino, name).second) {
          out.push_back({NamespaceChange::Kind::kEntry, ino, std::move(name)});
        }
        break;
      }
      case KvSpace::kBlobs:
      case KvSpace::kGc:
      case KvSpace::kOrphans:
      case KvSpace::kMeta:
        break;
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenKvNamespace(std::unique_ptr<KvStore> kv,
                                                                const NamespaceOptions& options) {
  auto store = std::make_unique<KvNamespace>(std::move(kv), options);
  if (absl::Status init = store->Init(); !init.ok()) return init;
  return std::unique_ptr<NamespaceStore>(std::move(store));
}

}  // namespace cairn

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/base/parallel.h"
#include "cache/blob_read_cache.h"
#include "cache/readahead.h"
#include "cache/file_data_cache.h"

namespace cairn {
namespace {

// Disjoint byte ranges of a file, start -> end.
using Ranges = std::map<uint64_t, uint64_t>;

void AddRange(Ranges& ranges, uint64_t start, uint64_t end) {
  auto it = ranges.upper_bound(start);
  if (it != ranges.begin() && std::prev(it)->second >= start) --it;
  while (it != ranges.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    it = ranges.erase(it);
  }
  ranges.emplace(start, end);
}

bool Intersects(const Ranges& ranges, uint64_t start, uint64_t end) {
  auto it = ranges.upper_bound(start);
  if (it != ranges.begin() && std::prev(it)->second > start) return true;
  return it != ranges.end() && it->first < end;
}

// A large WRITE past a file's first blob is not journaled: it waits until
// its bytes are committed in a blob, then returns, so a large file's bytes
// are written once, not twice (journal, then blob). Its data is committed
// with the next store of the file (a writer's WRITE that brings the file to
// a blob's worth of dirty data starts one). If the file's writes pause
// first (a file ends inside a blob, a writer writes alone), its bytes that
// no record holds are journaled after all, and it returns:
// - after kStreamGap with no other write of the file under way and no store
//   about to take the data,
// - after kStreamPause without a new write of the file otherwise.
// A file smaller than a blob never waits.
constexpr absl::Duration kStreamGap = absl::Milliseconds(1);
constexpr absl::Duration kStreamPause = absl::Milliseconds(10);
constexpr uint64_t kLargeWriteMin = 128 << 10;
// Large WRITEs waiting at once, across files: the other FUSE threads stay
// free for other requests and for the WRITEs that fill a blob.
constexpr int kMaxWaitingLargeWrites = 24;

// Dirty bytes of one file: non-overlapping runs keyed by file offset.
struct InodeState {
  // Not held while a flush writes blobs (writes and reads of the file go
  // on meanwhile); one flush at a time per file (`storing`), and its
  // commit under the lock, keep the file's commits in the order its data
  // was written.
  absl::Mutex mu;
  std::map<uint64_t, std::string> runs ABSL_GUARDED_BY(mu);
  uint64_t dirty_bytes ABSL_GUARDED_BY(mu) = 0;  // in `runs`
  // The runs a flush is storing, taken out of `runs` (newer writes go
  // there, and win where they overlap); their journal records stay
  // referenced until the commit. Read by that flush without the lock:
  // nothing else changes them while `storing` is set.
  bool storing ABSL_GUARDED_BY(mu) = false;
  std::map<uint64_t, std::string> storing_runs;
  uint64_t storing_bytes ABSL_GUARDED_BY(mu) = 0;
  absl::flat_hash_map<uint64_t, uint64_t> storing_journal_refs ABSL_GUARDED_BY(mu);
  uint64_t storing_journal_seq ABSL_GUARDED_BY(mu) = 0;
  int64_t dirty_since ABSL_GUARDED_BY(mu) = 0;
  bool detached ABSL_GUARDED_BY(mu) = false;  // removed from the table
  // Journal records holding the dirty data: references per segment, and the
  // highest sequence number (the mark committed with the data).
  absl::flat_hash_map<uint64_t, uint64_t> journal_refs ABSL_GUARDED_BY(mu);
  uint64_t journal_seq ABSL_GUARDED_BY(mu) = 0;
  // Bytes in `runs` that no journal record holds (large WRITEs waiting
  // for their blob), and those in `storing_runs`.
  Ranges unjournaled ABSL_GUARDED_BY(mu);
  Ranges storing_unjournaled ABSL_GUARDED_BY(mu);
  absl::Time last_write ABSL_GUARDED_BY(mu);
  // A commit took unjournaled bytes, and the namespace may not have synced
  // it yet: the file's next journal record waits for a namespace sync.
  bool unsynced_large_write_commit ABSL_GUARDED_BY(mu) = false;
  // Writes of the file under way or waiting for `mu`, not counting the
  // large writes waiting for their blob: while there are some, a blob's
  // worth may still come in. Raised before taking `mu`, lowered under it
  // (so a waiter's condition sees the change).
  std::atomic<int> active_writes{0};
  // Why the last attempt to store the dirty runs failed (too few disks, a
  // full disk); fsync reports it rather than succeed on the journal alone.
  absl::Status store_error ABSL_GUARDED_BY(mu);
  // Readable without `mu` so getattr never waits behind a flush: where
  // the dirty data ends, and how many bytes of it there are.
  std::atomic<uint64_t> dirty_end{0};
  std::atomic<uint64_t> dirty_held{0};
};

uint64_t RunEnd(const std::pair<const uint64_t, std::string>& run) {
  return run.first + run.second.size();
}

}  // namespace

class FileDataCache::Impl {
 public:
  Impl(NamespaceStore& ns, BlobStore& blobs, const FileDataCacheOptions& options)
      : ns_(ns), blobs_(blobs), options_(options), journal_(options.journal),
        read_cache_(ns, blobs, options.read_cache_bytes, options.clock),
        readahead_(read_cache_, ReadaheadOptions{
            std::min<uint64_t>(32ull << 20, options.read_cache_bytes / 4),
            std::max(1, options.readahead_threads)}) {
    if (options_.background_threads) {
      background_ = std::thread([this] { BackgroundLoop(); });
    }
    for (int i = 0; i < options_.store_threads; ++i) {
      store_threads_.emplace_back([this] { StoreLoop(); });
    }
  }

  ~Impl() {
    stop_.Notify();
    {
      absl::MutexLock lock(&store_queue_mu_);
      stopping_ = true;
    }
    for (std::thread& thread : store_threads_) thread.join();
    if (background_.joinable()) background_.join();
  }

  absl::Status Write(InodeId ino, uint64_t offset, std::string_view data) {
    if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset) {
      return FsError(FsErrorKind::kFileTooBig, "write past the file size limit");
    }
    if (data.empty()) return absl::OkStatus();
    if (options_.room_for_data) {
      const uint64_t journal_bytes = journal_ != nullptr ? data.size() : 0;
      if (absl::Status room = options_.room_for_data(journal_bytes, 0); !room.ok()) return room;
    }
    // Over a limit and unable to make room (the data disk is full, say):
    // refuse the write rather than take more memory, or failing writes
    // would grow the cache without bound.
    if (total_dirty_.load() > options_.max_dirty_bytes || JournalOverLimit()) {
      absl::Status relieved = RelievePressure(ino);
      if (!relieved.ok() && total_dirty_.load() > options_.max_dirty_bytes) return relieved;
    }
    bool eager_flush = false;
    {
      std::shared_ptr<InodeState> state = LockedState(ino, /*writer=*/true);
      // LockedState returns with state->mu held. Journaling under the file's
      // lock keeps its records in the order its data is merged.
      const bool held = WaitsForItsBlob(*state, offset, data.size());
      bool journaled = held || Journal(ino, *state, offset, data);
      AddDirty(*state, offset, data);
      if (held) AddRange(state->unjournaled, offset, offset + data.size());
      // A whole blob's worth of data goes out at once rather than waiting
      // for the timer, unless a store of the file is under way: then this
      // write returns (its data is journaled), and the next one after that
      // store takes everything that came meanwhile. Waiting here would
      // hold every request the kernel has in flight for the file, and the
      // stores would alternate with the writes instead of overlapping them.
      // Unjournaled data is always stored before the write returns.
      eager_flush = (state->dirty_bytes >= kMaxBlobBytes && !state->storing) || !journaled;
      // A store thread takes it, unless the file's last store failed: then
      // this write tries again and reports the failure, as without them.
      const bool in_background = eager_flush && journaled && !store_threads_.empty() &&
                                 state->store_error.ok();
      absl::Status flushed = eager_flush && !in_background
                                 ? FlushLocked(ino, *state, /*while_a_blob_is_dirty=*/true)
                                 : absl::OkStatus();
      if (in_background) QueueStore(ino);
      state->active_writes--;
      if (held) {
        absl::Status stored = AwaitStoredOrJournaled(ino, *state, offset, offset + data.size());
        if (flushed.ok()) flushed = stored;
        waiting_large_writes_--;
      }
      state->mu.Unlock();
      if (!flushed.ok()) return flushed;
    }
    return RelievePressure(ino);
  }

  // Whether a write waits for its blob instead of a journal record (see
  // kStreamGap).
  bool WaitsForItsBlob(InodeState& state, uint64_t offset, uint64_t length)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    state.last_write = absl::Now();
    if (journal_ == nullptr || !store_threads_.empty() || length < kLargeWriteMin ||
        offset < kMaxBlobBytes) {
      return false;
    }
    if (waiting_large_writes_.fetch_add(1) >= kMaxWaitingLargeWrites) {
      waiting_large_writes_--;
      return false;
    }
    large_write_bytes_ += length;
    return true;
  }

  // Returns once [start, end) of the file is committed in a blob or held in
  // the journal: a WRITE is acknowledged only then, as a daemon crash must
  // not lose it. The file's lock is released while waiting.
  absl::Status AwaitStoredOrJournaled(InodeId ino, InodeState& state, uint64_t start,
                                      uint64_t end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    struct Wait {
      InodeState* state;
      uint64_t start, end;
      // Committed (or the file discarded).
      bool Settled() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return state->detached || (!Intersects(state->unjournaled, start, end) &&
                                   !Intersects(state->storing_unjournaled, start, end));
      }
      // Not yet taken by a store, and no store will take it soon (see
      // kStreamGap), or a store failed: the bytes no record holds are
      // journaled.
      bool Stranded() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
        if (!Intersects(state->unjournaled, start, end)) return false;
        if (!state->store_error.ok()) return true;
        // A writer's store under way goes on with everything dirty while
        // a blob's worth is.
        if (state->storing && state->dirty_bytes >= kMaxBlobBytes) return false;
        const absl::Duration idle = absl::Now() - state->last_write;
        return idle >= kStreamPause || (idle >= kStreamGap && state->active_writes.load() == 0);
      }
      bool operator()() const { return Settled() || Stranded(); }
    };
    Wait wait{&state, start, end};
    while (!wait.Settled()) {
      if (wait.Stranded()) {
        if (!JournalUnjournaled(ino, state)) {
          // The journal cannot take it either: store it now.
          if (absl::Status s = FlushLocked(ino, state); !s.ok()) return s;
        }
        continue;
      }
      state.mu.AwaitWithTimeout(absl::Condition(&wait), kStreamGap);
    }
    return absl::OkStatus();
  }

  // Journals the current bytes of every range of the file that no journal
  // record holds (they are the newest, so they go after every record of
  // the file), each range as one write would be. False if the journal
  // could not take them.
  bool JournalUnjournaled(InodeId ino, InodeState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    std::string bytes;
    for (auto range = state.unjournaled.begin(); range != state.unjournaled.end();) {
      bytes.assign(range->second - range->first, '\0');
      auto run = state.runs.upper_bound(range->first);
      if (run != state.runs.begin()) --run;
      for (; run != state.runs.end() && run->first < range->second; ++run) {
        const uint64_t from = std::max(range->first, run->first);
        const uint64_t to = std::min(range->second, RunEnd(*run));
        if (from >= to) continue;
        std::copy_n(run->second.data() + (from - run->first), to - from,
                    bytes.data() + (from - range->first));
      }
      if (!Journal(ino, state, range->first, bytes)) return false;
      large_write_journaled_bytes_ += bytes.size();
      range = state.unjournaled.erase(range);
    }
    return true;
  }

  absl::StatusOr<std::string> Read(InodeId ino, uint64_t offset, uint64_t length) {
    // Copy the dirty runs in range, then read committed data without holding
    // the file's lock, so reads do not queue behind a flush. A flush that
    // commits the copied runs meanwhile commits the same bytes.
    std::vector<std::pair<uint64_t, std::string>> overlay;
    uint64_t dirty_end = 0;
    if (std::shared_ptr<InodeState> state = Find(ino)) {
      absl::MutexLock lock(&state->mu);
      dirty_end = state->dirty_end.load();
      uint64_t end = offset + length;
      // Runs being stored first: the newer runs are laid over them.
      for (const auto* runs : {&state->storing_runs, &state->runs}) {
        if (runs == &state->storing_runs && !state->storing) continue;
        auto it = runs->upper_bound(offset);
        if (it != runs->begin()) --it;
        for (; it != runs->end() && it->first < end; ++it) {
          if (RunEnd(*it) <= offset) continue;
          uint64_t start = std::max(offset, it->first);
          uint64_t stop = std::min(end, RunEnd(*it));
          overlay.emplace_back(start, it->second.substr(start - it->first, stop - start));
        }
      }
    }
    absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
    if (!attr.ok()) return attr.status();
    uint64_t size = std::max(attr->size, dirty_end);
    if (offset >= size) return std::string();
    length = std::min(length, size - offset);
    std::string out(length, '\0');
    const uint64_t end = offset + length;
    const uint64_t window = readahead_.Observe(ino, offset, length);
    // The extents under the read and those of the window after it, in one
    // lookup (on a shared volume each is a round trip to the database).
    absl::StatusOr<std::vector<Extent>> extents = ns_.GetExtents(ino, offset, length + window);
    // Damage past the read is for the reader who gets there: this one is
    // answered from its own range, without readahead.
    if (!extents.ok() && window > 0) extents = ns_.GetExtents(ino, offset, length);
    if (!extents.ok()) return extents.status();
    if (window > 0) {
      // Queued before this read waits for anything, so the loads overlap it.
      BlobId last = kNoBlob;
      for (const Extent& extent : *extents) {
        if (extent.file_offset + extent.length <= end || extent.blob_id == kNoBlob ||
            extent.blob_id == last) {
          continue;
        }
        last = extent.blob_id;
        readahead_.Prefetch(extent.blob_id);
      }
    }
    for (const Extent& extent : *extents) {
      if (extent.file_offset >= end) break;  // the window's
      char* dest = out.data() + (extent.file_offset - offset);
      const uint64_t n = std::min(extent.length, end - extent.file_offset);
      if (extent.blob_id == kNoBlob) {
        std::copy_n(extent.inline_data.begin(), std::min<uint64_t>(n, extent.inline_data.size()),
                    dest);
        continue;
      }
      if (window == 0 && !read_cache_.Contains(extent.blob_id)) {
        // Random access: read and verify just the chunks under the range;
        // loading the whole blob would read 4 MiB for every 4 KiB asked.
        absl::StatusOr<std::string> piece =
            read_cache_.ReadRange(extent.blob_id, extent.blob_offset, n);
        if (!piece.ok()) return piece.status();
        ranged_reads_++;
        std::copy(piece->begin(), piece->end(), dest);
        continue;
      }
      absl::StatusOr<std::shared_ptr<const std::string>> blob =
          read_cache_.Get(extent.blob_id);
      if (!blob.ok()) return blob.status();
      if (extent.blob_offset + n > (*blob)->size()) {
        return FsError(FsErrorKind::kIo,
                       absl::StrCat("blob ", extent.blob_id,
                                    " is shorter than its extent; run cairn fsck"));
      }
      std::copy_n((*blob)->data() + extent.blob_offset, n, dest);
    }
    for (const auto& [start, bytes] : overlay) {
      if (start >= offset + length) continue;
      size_t n = std::min<uint64_t>(bytes.size(), offset + length - start);
      std::copy_n(bytes.data(), n, out.data() + (start - offset));
    }
    return out;
  }

  InodeAttr WithDirtySize(InodeAttr attr) {
    if (std::shared_ptr<InodeState> state = Find(attr.ino)) {
      attr.size = std::max(attr.size, state->dirty_end.load());
      // Data not yet stored counts in st_blocks too: tools read a size with
      // no blocks as all holes (tar -S archived such files empty). Dirty
      // bytes may overwrite stored ones, so never beyond the size.
      const uint64_t held = attr.allocated_bytes + state->dirty_held.load();
      attr.allocated_bytes = std::max(attr.allocated_bytes, std::min(held, attr.size));
    }
    return attr;
  }

  bool Tracks(InodeId ino) { return Find(ino) != nullptr; }

  bool HoldsUnstoredData(InodeId ino) {
    std::shared_ptr<InodeState> state = Find(ino);
    if (!state) return false;
    absl::MutexLock lock(&state->mu);
    return !state->runs.empty() || state->storing;
  }

  absl::StatusOr<InodeAttr> SetAttrWithSize(InodeId ino,
                                            const SetAttrRequest& request) {
    // Dirty data is committed first, even bytes the new size cuts off: the
    // journal records holding them are only released by a commit, and a
    // crash between the two commits leaves the file as it was before the
    // truncate, a state it really had.
    if (std::shared_ptr<InodeState> state = Find(ino)) {
      absl::MutexLock lock(&state->mu);
      if (absl::Status s = FlushLocked(ino, *state); !s.ok()) return s;
      return JournalAndSetSize(ino, state.get(), request);
    }
    return JournalAndSetSize(ino, nullptr, request);
  }

  // Commits a size change, recorded in the journal first: the file's later
  // writes are journal records, and a machine crash could keep them and
  // lose the namespace's commit of the truncate, so the replay must meet
  // the truncate in order. The record's number becomes the file's journal
  // mark in the same commit, so it is not applied again.
  absl::StatusOr<InodeAttr> JournalAndSetSize(InodeId ino, InodeState* state,
                                              const SetAttrRequest& request) {
    if (journal_ == nullptr || options_.read_only) return ns_.SetAttr(ino, request);
    if (state != nullptr && !SyncLargeWriteCommit(*state)) {
      return FsError(FsErrorKind::kIo, "could not sync the namespace before a truncate");
    }
    absl::StatusOr<WritebackJournal::Appended> record =
        journal_->AppendTruncate(ino, *request.size);
    if (!record.ok()) {
      // The journal cannot take it: the commit is made durable before any
      // later record of the file can be.
      absl::StatusOr<InodeAttr> attr = ns_.SetAttr(ino, request);
      if (!attr.ok()) return attr;
      if (absl::Status s = ns_.Sync(); !s.ok()) return s;
      return attr;
    }
    SetAttrRequest journaled = request;
    journaled.journal_mark = record->seq;
    absl::StatusOr<InodeAttr> attr = ns_.SetAttr(ino, journaled);
    journal_->Unref(record->segment);
    return attr;
  }

  // A commit of large writes (never journaled) must be durable before a
  // newer record of the file can be: a machine crash could otherwise keep
  // that record (the journal and the namespace log reach the disk in no
  // fixed order) and lose the older bytes, a state the file never had.
  // False if the namespace could not be synced.
  bool SyncLargeWriteCommit(InodeState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    if (!state.unsynced_large_write_commit) return true;
    if (absl::Status s = ns_.Sync(); !s.ok()) {
      LogWarning("could not sync the namespace before journaling: %s", s.ToString());
      return false;
    }
    state.unsynced_large_write_commit = false;
    return true;
  }

  absl::StatusOr<std::unique_ptr<BlobStreamWriter>> StreamNewFile(InodeId ino, bool touch) {
    if (options_.read_only) return FsError(FsErrorKind::kReadOnly, "the volume is read-only");
    if (Tracks(ino)) {
      return FsError(FsErrorKind::kBusy, "the write cache holds data of the file");
    }
    BlobStreamWriter::Options stream;
    stream.inline_threshold_bytes = options_.inline_threshold_bytes;
    stream.room_for_data = options_.room_for_data;
    stream.on_blob_stored = [this](uint64_t bytes) {
      blobs_written_++;
      streamed_bytes_ += bytes;
    };
    if (touch) stream.touch_clock = options_.clock;
    return std::make_unique<BlobStreamWriter>(ns_, blobs_, ino, std::move(stream));
  }

  absl::Status Flush(InodeId ino) {
    std::shared_ptr<InodeState> state = Find(ino);
    if (!state) return absl::OkStatus();
    absl::MutexLock lock(&state->mu);
    return FlushLocked(ino, *state);
  }

  absl::Status Fsync(InodeId ino) {
    if (journal_ == nullptr) {
      if (absl::Status s = Flush(ino); !s.ok()) return s;
      return ns_.Sync();
    }
    if (std::shared_ptr<InodeState> state = Find(ino)) {
      absl::MutexLock lock(&state->mu);
      // The data is durable in the journal, but the volume cannot store it
      // now: the writer hears of it (EIO, ENOSPC) instead of a success that
      // would hide the fault until the journal fills. One more try first.
      if (!state->store_error.ok() && !state->runs.empty()) {
        if (absl::Status s = FlushLocked(ino, *state); !s.ok()) return s;
      }
      // Records in a segment whose sync once failed may be gone from the
      // disk whatever a later sync says: store that data as blobs instead.
      bool failed_segment = false;
      for (const auto* refs : {&state->journal_refs, &state->storing_journal_refs}) {
        for (const auto& [segment, count] : *refs) {
          failed_segment = failed_segment || journal_->SegmentFailed(segment);
        }
      }
      // (A flush first waits for one under way, then stores the rest.)
      if (failed_segment) {
        if (absl::Status s = FlushLocked(ino, *state); !s.ok()) return s;
      }
    }
    if (absl::Status s = journal_->Sync(); !s.ok()) return s;
    return ns_.Sync();
  }

  absl::StatusOr<WritebackJournal::ReplayStats> ReplayJournal() {
    if (journal_ == nullptr) return WritebackJournal::ReplayStats{};
    uint64_t applied = 0;
    absl::Status store_error;
    absl::flat_hash_set<InodeId> written;
    absl::StatusOr<WritebackJournal::ReplayStats> stats =
        journal_->Replay([&](const JournalRecord& record) -> absl::Status {
          absl::StatusOr<uint64_t> mark = ns_.JournalMark(record.ino);
          if (absl::IsNotFound(mark.status())) return absl::OkStatus();  // deleted
          if (!mark.ok()) return mark.status();
          if (record.seq <= *mark) return absl::OkStatus();  // committed
          absl::StatusOr<InodeAttr> attr = ns_.GetAttr(record.ino);
          if (!attr.ok()) return attr.status();
          if (!S_ISREG(attr->mode)) return absl::OkStatus();
          applied++;
          if (record.truncate) return ReplayTruncate(record, &store_error);
          written.insert(record.ino);
          {
            std::shared_ptr<InodeState> state = LockedState(record.ino);
            journal_->Ref(record.segment);
            state->journal_refs[record.segment]++;
            state->journal_seq = std::max(state->journal_seq, record.seq);
            AddDirty(*state, record.offset, record.data);
            state->mu.Unlock();
          }
          // Data that cannot be stored now (a full or failed disk) stays
          // dirty and journaled: the mount must go on so that files can be
          // read and deleted to make room. Memory stays within what the
          // journal holds (max_journal_bytes).
          if (absl::Status s = RelievePressure(record.ino); !s.ok() && store_error.ok()) {
            store_error = s;
          }
          return absl::OkStatus();
        });
    if (!stats.ok()) return stats.status();
    stats->applied = applied;
    // The times of the writes the replay brings back died with the daemon
    // (the kernel, or on a shared volume the daemon, had not committed
    // them): a file must not keep a time older than its data, or tools
    // that look for changed files by their times (make, rsync) miss it.
    if (!options_.read_only) {
      const Timespec now = options_.clock->NowTimespec();
      for (InodeId ino : written) {
        SetAttrRequest touch;
        touch.mtime = touch.ctime = now;
        absl::Status s = ns_.SetAttr(ino, touch).status();
        if (!s.ok() && !absl::IsNotFound(s)) {
          LogWarning("replaying the writeback journal: could not set the times of inode %d, "
                     "whose writes it brought back: %s", ino, s.ToString());
        }
      }
    }
    // A file whose write was lost must not show its bytes without it.
    for (const DamagedWrite& write : stats->damaged_writes) {
      absl::StatusOr<uint64_t> mark = ns_.JournalMark(write.ino);
      if (absl::IsNotFound(mark.status())) continue;  // deleted since
      if (!mark.ok()) return mark.status();
      if (write.seq <= *mark) continue;  // stored before the crash after all
      absl::StatusOr<InodeAttr> attr = ns_.GetAttr(write.ino);
      if (!attr.ok()) return attr.status();
      if (!S_ISREG(attr->mode)) continue;
      if (std::find(stats->damaged_files.begin(), stats->damaged_files.end(), write.ino) !=
          stats->damaged_files.end()) {
        continue;
      }
      absl::Status marked =
          options_.read_only
              ? absl::OkStatus()
              : ns_.MarkDamaged(write.ino,
                                absl::StrCat("a write of ", write.length, " bytes at offset ",
                                             write.offset,
                                             " made before a crash was lost: its record in the "
                                             "writeback journal was damaged"));
      if (!marked.ok()) return marked;
      stats->damaged_files.push_back(write.ino);
    }
    if (absl::Status s = FlushAll(); !s.ok() && store_error.ok()) store_error = s;
    if (options_.read_only && total_dirty_.load() > 0) {
      stats->unstored_bytes = total_dirty_.load();
      stats->store_error = "the volume is mounted read-only";
    } else if (!store_error.ok()) {
      stats->unstored_bytes = total_dirty_.load();
      stats->store_error = std::string(store_error.message());
      LogWarning("replaying the writeback journal: %d bytes could not be stored yet (%s); they "
                 "stay in the journal, are read from memory, and are stored once the disks "
                 "take them", stats->unstored_bytes, stats->store_error);
    }
    return stats;
  }

  // A truncate the namespace had not committed (or had, without the journal
  // mark of a later commit): the file's data replayed so far is stored,
  // then the size set, as when it happened.
  absl::Status ReplayTruncate(const JournalRecord& record, absl::Status* store_error) {
    std::shared_ptr<InodeState> state = LockedState(record.ino);
    absl::Status flushed = FlushLocked(record.ino, *state);
    if (options_.read_only || !flushed.ok()) {
      // The earlier writes stay unstored (and journaled): cut in memory as
      // the truncate cut them; without the mark, the next replay meets them
      // and this record again.
      DropDirtyFrom(*state, record.offset);
    }
    absl::Status set = absl::OkStatus();
    if (options_.read_only) {
      LogWarning("the writeback journal holds a truncate of inode %d to %d bytes that the "
                 "namespace may lack; a read-only mount cannot apply it: the file may show "
                 "bytes past that size until a read-write mount", record.ino, record.offset);
    } else {
      SetAttrRequest request;
      request.size = record.offset;
      if (flushed.ok()) request.journal_mark = record.seq;
      set = ns_.SetAttr(record.ino, request).status();
    }
    state->mu.Unlock();
    if (!flushed.ok() && store_error->ok()) *store_error = flushed;
    return set;
  }

  // Forgets the file's dirty bytes at and past `size`.
  void DropDirtyFrom(InodeState& state, uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    auto it = state.runs.lower_bound(size);
    if (it != state.runs.begin() && RunEnd(*std::prev(it)) > size) --it;
    while (it != state.runs.end()) {
      uint64_t keep = it->first < size ? size - it->first : 0;
      uint64_t dropped = it->second.size() - keep;
      state.dirty_bytes -= dropped;
      total_dirty_ -= dropped;
      if (keep == 0) {
        it = state.runs.erase(it);
      } else {
        it->second.resize(keep);
        ++it;
      }
    }
    if (state.dirty_end.load() > size) state.dirty_end = size;
    state.dirty_held = state.dirty_bytes + state.storing_bytes;
  }

  absl::Status FlushAll() {
    absl::Status first;
    for (const auto& [ino, state] : Snapshot()) {
      absl::MutexLock lock(&state->mu);
      absl::Status s = FlushLocked(ino, *state);
      if (!s.ok() && first.ok()) first = s;
    }
    if (!first.ok()) return first;
    return ReclaimJournal();
  }

  void Discard(InodeId ino) {
    readahead_.Forget(ino);
    std::shared_ptr<InodeState> state;
    {
      absl::MutexLock lock(&table_mu_);
      auto it = states_.find(ino);
      if (it == states_.end()) return;
      state = it->second;
      states_.erase(it);
    }
    absl::MutexLock lock(&state->mu);
    state->detached = true;
    ReleaseJournalRefs(*state);
    total_dirty_ -= state->dirty_bytes;
    state->dirty_bytes = 0;
    state->dirty_held = 0;
    state->runs.clear();
    state->unjournaled.clear();
    state->dirty_end = 0;
  }

  void ForgetBlob(BlobId id) { read_cache_.Forget(id); }

  Stats GetStats() {
    Stats stats;
    stats.dirty_bytes = total_dirty_.load();
    BlobReadCache::Counters counters = read_cache_.GetCounters();
    stats.read_cache_bytes = counters.bytes;
    stats.read_cache_hits = counters.hits;
    stats.read_cache_misses = counters.misses;
    stats.blobs_written = blobs_written_.load();
    stats.streamed_bytes = streamed_bytes_.load();
    if (journal_ != nullptr) {
      WritebackJournal::Stats journal = journal_->GetStats();
      stats.journal_bytes = journal.bytes;
      stats.journal_segments = journal.segments;
    }
    stats.write_through = write_through_.load();
    stats.large_write_bytes = large_write_bytes_.load();
    stats.large_write_journaled_bytes = large_write_journaled_bytes_.load();
    stats.ranged_reads = ranged_reads_.load();
    Readahead::Counters ahead = readahead_.GetCounters();
    stats.readahead_sequential_reads = ahead.sequential_reads;
    stats.readahead_prefetched = ahead.prefetched;
    return stats;
  }

 private:
  std::shared_ptr<InodeState> Find(InodeId ino) {
    absl::MutexLock lock(&table_mu_);
    auto it = states_.find(ino);
    return it == states_.end() ? nullptr : it->second;
  }

  // The file's state with its mutex held; a state concurrently detached
  // (file discarded, or found clean and dropped) is replaced by a fresh one.
  // A `writer` is counted in the state's active_writes while it waits.
  std::shared_ptr<InodeState> LockedState(InodeId ino, bool writer = false)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (;;) {
      std::shared_ptr<InodeState> state;
      {
        absl::MutexLock lock(&table_mu_);
        std::shared_ptr<InodeState>& slot = states_[ino];
        if (!slot) slot = std::make_shared<InodeState>();
        state = slot;
      }
      if (writer) state->active_writes++;
      state->mu.Lock();
      if (!state->detached) return state;
      if (writer) state->active_writes--;
      state->mu.Unlock();
    }
  }

  std::vector<std::pair<InodeId, std::shared_ptr<InodeState>>> Snapshot() {
    absl::MutexLock lock(&table_mu_);
    return {states_.begin(), states_.end()};
  }

  // Makes `data` at `offset` part of the file's dirty data, with the
  // accounting that goes with it.
  void AddDirty(InodeState& state, uint64_t offset, std::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    total_dirty_ += Merge(state, offset, data);
    if (state.dirty_since == 0) state.dirty_since = options_.clock->NowSeconds();
    uint64_t end = offset + data.size();
    if (end > state.dirty_end.load()) state.dirty_end = end;
  }

  // Adds `data` at `offset` to the runs, merging with runs it overlaps or
  // touches within the same blob-sized slot of the file. Returns how many
  // dirty bytes were added.
  //
  // No run crosses a kMaxBlobBytes boundary. A sequential writer's data
  // used to be one run that grew by reallocation: at 40 MiB each 1 MiB
  // WRITE copied the whole run into a fresh mapping with the file's lock
  // held, and the flush waiting for that lock to commit waited 100-200 ms
  // behind the WRITEs handed it in turn. Bounded runs also make a slot's
  // run exactly one blob when stored (no gathering copy), and cap what an
  // overlapping write has to copy.
  static uint64_t Merge(InodeState& state, uint64_t offset, std::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    uint64_t added = 0;
    while (!data.empty()) {
      const uint64_t slot_start = offset - offset % kMaxBlobBytes;
      const uint64_t n = std::min<uint64_t>(data.size(), slot_start + kMaxBlobBytes - offset);
      added += MergeInSlot(state, slot_start, offset, data.substr(0, n));
      offset += n;
      data.remove_prefix(n);
    }
    state.dirty_bytes += added;
    state.dirty_held = state.dirty_bytes + state.storing_bytes;
    return added;
  }

  // Merge for `data` that lies inside the slot starting at `slot_start`.
  static uint64_t MergeInSlot(InodeState& state, uint64_t slot_start, uint64_t offset,
                              std::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    const uint64_t end = offset + data.size();
    auto first = state.runs.upper_bound(offset);
    if (first != state.runs.begin()) {
      auto prev = std::prev(first);
      if (prev->first >= slot_start && RunEnd(*prev) >= offset) first = prev;
    }
    auto last = first;
    while (last != state.runs.end() && last->first <= end &&
           last->first < slot_start + kMaxBlobBytes) {
      ++last;
    }
    if (first != last && std::next(first) == last && first->first <= offset) {
      std::string& run = first->second;
      const uint64_t run_offset = offset - first->first;
      // Overwriting bytes the run already holds: in place.
      if (end <= RunEnd(*first)) {
        std::copy(data.begin(), data.end(), run.begin() + run_offset);
        return 0;
      }
      // Extending the run: grow it geometrically up to the slot's end, so a
      // sequential writer reallocates a run once or twice, not per write.
      const uint64_t grown = run_offset + data.size();
      if (grown > run.capacity()) {
        run.reserve(std::min<uint64_t>(slot_start + kMaxBlobBytes - first->first,
                                       std::max<uint64_t>(grown, 2 * run.capacity())));
      }
      const uint64_t added = grown - run.size();
      run.resize(run_offset);
      run.append(data.data(), data.size());
      return added;
    }
    uint64_t start = offset, stop = end;
    uint64_t old_bytes = 0;
    for (auto it = first; it != last; ++it) {
      start = std::min(start, it->first);
      stop = std::max(stop, RunEnd(*it));
      old_bytes += it->second.size();
    }
    std::string merged(stop - start, '\0');
    for (auto it = first; it != last; ++it) {
      std::copy(it->second.begin(), it->second.end(), merged.begin() + (it->first - start));
    }
    std::copy(data.begin(), data.end(), merged.begin() + (offset - start));
    state.runs.erase(first, last);
    state.runs.emplace(start, std::move(merged));
    return (stop - start) - old_bytes;
  }

  // Stores the file's dirty runs as blobs (or inline) and commits them in
  // one namespace batch; returns once they are committed. The blobs are
  // written without the file's lock, so its writes and reads go on (they
  // used to queue behind every 4 MiB store); a flush already under way is
  // waited for first. On failure the runs stay dirty and the error is kept
  // for fsync.
  //
  // `while_a_blob_is_dirty` (a writer's flush): goes on storing while a
  // whole blob's worth has come in meanwhile, so a writer's full blocks go
  // out while it writes, as they did when each write stored its own, and
  // are not left dirty (their journal segment unreclaimable) until the
  // timer.
  absl::Status FlushLocked(InodeId ino, InodeState& state, bool while_a_blob_is_dirty = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    absl::Status status = FlushOnce(ino, state);
    while (status.ok() && while_a_blob_is_dirty && !state.detached &&
           state.dirty_bytes >= kMaxBlobBytes) {
      status = FlushOnce(ino, state);
    }
    return status;
  }

  absl::Status FlushOnce(InodeId ino, InodeState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    if (options_.read_only) return absl::OkStatus();  // kept journaled
    const bool waited = state.storing;
    state.mu.Await(absl::Condition(&NotStoring, &state));
    // The store this waited for just failed (its runs are dirty again):
    // starting another at once would cost a failing remote's whole retry
    // budget a second time before the caller hears of it. The next flush
    // tries again.
    if (waited && !state.store_error.ok()) return state.store_error;
    if (state.runs.empty() || state.detached) {
      state.store_error = absl::OkStatus();
      return absl::OkStatus();
    }
    state.storing = true;
    state.storing_runs = std::move(state.runs);
    state.runs.clear();
    state.storing_bytes = state.dirty_bytes;
    state.dirty_bytes = 0;
    state.storing_journal_refs = std::move(state.journal_refs);
    state.journal_refs.clear();
    state.storing_journal_seq = state.journal_seq;
    state.storing_unjournaled = std::move(state.unjournaled);
    state.unjournaled.clear();
    state.dirty_since = 0;
    const uint64_t dirty_end = state.dirty_end.load();
    std::vector<NewBlob> new_blobs;
    std::vector<Extent> extents;
    state.mu.Unlock();
    absl::Status stored = StoreRuns(ino, state.storing_runs, dirty_end, &new_blobs, &extents);
    state.mu.Lock();
    absl::Status status = CommitStored(ino, state, std::move(stored), new_blobs, extents);

    state.store_error = status;
    return status;
  }

  static bool NotStoring(InodeState* state) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !state->storing;
  }

  // Writes `runs` of file `ino` as blobs (or inline extents), filling in
  // the extents and blobs to commit.
  absl::Status StoreRuns(InodeId ino, const std::map<uint64_t, std::string>& runs,
                         uint64_t dirty_end, std::vector<NewBlob>* new_blobs_out,
                         std::vector<Extent>* extents_out) {
    absl::StatusOr<InodeAttr> attr = ns_.GetAttr(ino);
    if (!attr.ok()) return attr.status();
    if (options_.room_for_data) {
      uint64_t stored_bytes = 0;
      for (const auto& [start, bytes] : runs) stored_bytes += bytes.size();
      if (absl::Status room = options_.room_for_data(0, stored_bytes); !room.ok()) return room;
    }
    uint64_t final_size = std::max(attr->size, dirty_end);
    std::vector<Extent>& extents = *extents_out;
    std::vector<NewBlob>& new_blobs = *new_blobs_out;
    if (final_size <= options_.inline_threshold_bytes) {
      for (const auto& [start, bytes] : runs) {
        Extent extent;
        extent.file_offset = start;
        extent.length = bytes.size();
        extent.inline_data = bytes;
        extents.push_back(std::move(extent));
      }
    } else {
      // Runs are packed into blobs of up to kMaxBlobBytes, each extent
      // pointing at its place in its blob: scattered small writes cost one
      // blob per 4 MiB, not one per run. A blob is planned as pieces of runs
      // and gathered only when it is stored, one at a time, and not at all
      // when it is one piece (a sequential writer's run): gathering the whole
      // flush up front held a second copy of the file's dirty data per
      // flushing thread (46 of 302 MiB at the peak under 8 writers).
      std::vector<std::vector<std::string_view>> planned(1);
      uint64_t planned_bytes = 0;  // in planned.back()
      for (const auto& [start, bytes] : runs) {
        // A whole slot (a sequential writer's) is a blob of its own rather
        // than split over two and gathered.
        if (bytes.size() == kMaxBlobBytes && planned_bytes > 0) {
          planned.emplace_back();
          planned_bytes = 0;
        }
        for (uint64_t done = 0; done < bytes.size();) {
          if (planned_bytes == kMaxBlobBytes) {
            planned.emplace_back();
            planned_bytes = 0;
          }
          uint64_t n = std::min<uint64_t>(kMaxBlobBytes - planned_bytes, bytes.size() - done);
          Extent extent;
          extent.file_offset = start + done;
          extent.length = n;
          extent.blob_id = planned.size() - 1;  // index until ids are allocated
          extent.blob_offset = planned_bytes;
          planned.back().push_back(std::string_view(bytes).substr(done, n));
          extents.push_back(std::move(extent));
          planned_bytes += n;
          done += n;
        }
      }
      absl::StatusOr<BlobId> first = ns_.AllocateBlobIds(planned.size());
      if (!first.ok()) return first.status();
      for (Extent& extent : extents) extent.blob_id += *first;
      // Several blobs go out at once with store threads: each is an upload
      // that mostly waits. Those stored before a failure are still listed,
      // so that a file deleted meanwhile frees them.
      std::vector<std::optional<NewBlob>> stored(planned.size());
      absl::Status put = RunInParallel(
          planned.size(), std::max(1, options_.store_threads), [&](size_t i) -> absl::Status {
            std::string gathered;
            std::string_view data = planned[i].front();
            if (planned[i].size() > 1) {
              for (std::string_view piece : planned[i]) gathered.append(piece);
              data = gathered;
            }
            const BlobId id = *first + i;
            UploadSlot slot(*this);
            absl::StatusOr<BlobInfo> info = blobs_.Put(id, data);
            if (!info.ok()) return info.status();
            stored[i] = NewBlob{id, info->length, info->crc32c};
            blobs_written_++;
            return absl::OkStatus();
          });
      for (const std::optional<NewBlob>& blob : stored) {
        if (blob) new_blobs.push_back(*blob);
      }
      if (!put.ok()) return put;
    }
    return absl::OkStatus();
  }

  // The second half of a flush, with the file's lock held again: commits
  // what StoreRuns wrote, or puts the runs back under the newer ones.
  absl::Status CommitStored(InodeId ino, InodeState& state, absl::Status stored,
                            const std::vector<NewBlob>& new_blobs,
                            const std::vector<Extent>& extents)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    absl::Status status = std::move(stored);
    if (status.ok() && !state.detached) {
      status = ns_.CommitWrite(ino, new_blobs, extents, state.storing_journal_seq).status();
    }
    // Discarded meanwhile, or deleted: the file's data goes with it. (Only
    // the namespace says the file is gone: a kNotFound from a disk is an
    // error like any other, and the data stays.)
    if (state.detached || (!status.ok() && absl::IsNotFound(ns_.GetAttr(ino).status()))) {
      // The file is gone: so is its data, and nothing references the blobs.
      for (const NewBlob& blob : new_blobs) {
        if (absl::Status s = blobs_.Delete(blob.id); !s.ok()) {
          LogWarning("could not delete blob %d of a deleted file: %s (the next mount's sweep "
                     "does)", blob.id, s.ToString());
        }
      }
      status = absl::OkStatus();
    } else if (!status.ok()) {
      // Kept dirty, under what was written meanwhile; blobs written but not
      // committed are swept at the next mount.
      std::map<uint64_t, std::string> newer = std::move(state.runs);
      const uint64_t counted = state.dirty_bytes + state.storing_bytes;
      state.runs = std::move(state.storing_runs);
      state.dirty_bytes = state.storing_bytes;
      state.storing_bytes = 0;
      for (const auto& [offset, bytes] : newer) Merge(state, offset, bytes);
      total_dirty_ -= counted;
      total_dirty_ += state.dirty_bytes;
      for (const auto& [segment, refs] : state.storing_journal_refs) {
        state.journal_refs[segment] += refs;
      }
      for (const auto& [start, end] : state.storing_unjournaled) {
        AddRange(state.unjournaled, start, end);
      }
      if (state.dirty_since == 0) state.dirty_since = options_.clock->NowSeconds();
      EndStoring(state);
      return status;
    }
    if (journal_ != nullptr) {
      for (const auto& [segment, refs] : state.storing_journal_refs) journal_->Unref(segment, refs);
    }
    if (!state.storing_unjournaled.empty()) state.unsynced_large_write_commit = true;
    total_dirty_ -= state.storing_bytes;
    state.storing_bytes = 0;
    if (state.runs.empty()) state.dirty_end = 0;
    EndStoring(state);
    return status;
  }

  static void EndStoring(InodeState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    state.storing_runs.clear();
    state.storing_unjournaled.clear();
    state.storing_journal_refs.clear();
    state.dirty_held = state.dirty_bytes;
    state.storing = false;
  }

  bool JournalOverLimit() {
    return journal_ != nullptr &&
           journal_->GetStats().bytes > options_.max_journal_bytes;
  }

  // Over the dirty or journal limit, the writer pays: it flushes files,
  // oldest dirty first, until the cache is back under the limits.
  absl::Status RelievePressure(InodeId writer) {
    // Read-only: only the replay adds dirty data, bounded by the journal.
    if (options_.read_only) return absl::OkStatus();
    bool journal_full = JournalOverLimit();
    while (total_dirty_.load() > options_.max_dirty_bytes || journal_full) {
      std::shared_ptr<InodeState> victim;
      InodeId victim_ino = 0;
      int64_t oldest = INT64_MAX;
      for (const auto& [ino, state] : Snapshot()) {
        absl::MutexLock lock(&state->mu);
        if (state->dirty_bytes == 0) continue;
        int64_t since = ino == writer && !journal_full ? INT64_MIN : state->dirty_since;
        if (since < oldest) {
          oldest = since;
          victim = state;
          victim_ino = ino;
        }
      }
      if (victim) {
        absl::MutexLock lock(&victim->mu);
        // A store of the file under way frees memory when it commits: wait
        // for it and look again, rather than start a store of what came in
        // since (every writer over the limit did, so a file went out as
        // many small blobs, each its own fdatasync).
        if (victim->storing) {
          victim->mu.Await(absl::Condition(&NotStoring, victim.get()));
          continue;
        }
        if (absl::Status s = FlushLocked(victim_ino, *victim); !s.ok()) return s;
      }
      if (journal_full) {
        if (absl::Status s = ReclaimJournal(); !s.ok()) return s;
        journal_full = JournalOverLimit();
        // Only the active segment is left: nothing more to free.
        if (!victim) break;
      } else if (!victim) {
        break;
      }
    }
    return absl::OkStatus();
  }

  // Deletes journal segments whose records are all committed, after making
  // those commits durable.
  absl::Status ReclaimJournal() {
    if (journal_ == nullptr) return absl::OkStatus();
    std::vector<uint64_t> segments = journal_->Reclaimable();
    if (segments.empty()) return absl::OkStatus();
    if (absl::Status s = ns_.Sync(); !s.ok()) return s;
    return journal_->Remove(segments);
  }

  // Appends the write to the journal, split into records it accepts. False
  // when the journal could not take it: the caller stores the data as blobs
  // at once.
  bool Journal(InodeId ino, InodeState& state, uint64_t offset,
               std::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    if (journal_ == nullptr) return true;
    if (!SyncLargeWriteCommit(state)) return false;
    for (uint64_t done = 0; done < data.size();) {
      uint64_t n = std::min<uint64_t>(data.size() - done,
                                      WritebackJournal::kMaxRecordData);
      absl::StatusOr<WritebackJournal::Appended> appended =
          journal_->Append(ino, offset + done, data.substr(done, n));
      if (!appended.ok()) {
        write_through_++;
        if (!journal_warned_.exchange(true)) {
          LogWarning("the writeback journal cannot take writes (%s); writes "
                     "go straight to blobs until it can",
                     appended.status().ToString());
        }
        return false;
      }
      journal_warned_ = false;
      state.journal_refs[appended->segment]++;
      state.journal_seq = appended->seq;
      done += n;
    }
    return true;
  }

  void ReleaseJournalRefs(InodeState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
    if (journal_ != nullptr) {
      for (const auto& [segment, refs] : state.journal_refs) {
        journal_->Unref(segment, refs);
      }
    }
    state.journal_refs.clear();
  }

  // One of the store_threads puts allowed in flight across the whole cache
  // (each holds a blob's copy until it is uploaded): what stores hold
  // beside the dirty data stays bounded however many files flush at once.
  class UploadSlot {
   public:
    explicit UploadSlot(Impl& impl) : impl_(impl) {
      if (impl_.options_.store_threads <= 0) return;
      absl::MutexLock lock(&impl_.uploads_mu_);
      auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_.uploads_mu_) {
        return impl_.uploads_ < impl_.options_.store_threads;
      };
      impl_.uploads_mu_.Await(absl::Condition(&free));
      impl_.uploads_++;
    }
    ~UploadSlot() {
      if (impl_.options_.store_threads <= 0) return;
      absl::MutexLock lock(&impl_.uploads_mu_);
      impl_.uploads_--;
    }

   private:
    Impl& impl_;
  };

  void QueueStore(InodeId ino) {
    absl::MutexLock lock(&store_queue_mu_);
    if (queued_.insert(ino).second) store_queue_.push_back(ino);
  }

  // Stores of files whose writer filled a blob (store_threads). A failure
  // stays in the file's store_error, and its data dirty and journaled:
  // the file's next write that fills a blob, its fsync or close tries
  // again and reports it.
  void StoreLoop() {
    for (;;) {
      InodeId ino;
      {
        absl::MutexLock lock(&store_queue_mu_);
        auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_queue_mu_) {
          return stopping_ || !store_queue_.empty();
        };
        store_queue_mu_.Await(absl::Condition(&has_work));
        if (stopping_) return;  // what is dirty stays journaled (FlushAll stores it)
        ino = store_queue_.front();
        store_queue_.pop_front();
        queued_.erase(ino);
      }
      std::shared_ptr<InodeState> state = Find(ino);
      if (!state) continue;
      absl::MutexLock lock(&state->mu);
      if (absl::Status s = FlushLocked(ino, *state, /*while_a_blob_is_dirty=*/true); !s.ok()) {
        LogWarning("storing inode %d failed: %s (its data stays in memory and the journal; the "
                   "next write, fsync or close tries again)", ino, s.ToString());
      }
    }
  }

  void BackgroundLoop() {
    // A full disk fails every file's flush every round: one line a minute
    // (or when the reason changes) says so, not one per file per second.
    int64_t last_warning = INT64_MIN / 2;
    std::string last_reason;
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      int64_t now = options_.clock->NowSeconds();
      uint64_t failed = 0;
      InodeId first_failed = 0;
      absl::Status first_error;
      for (const auto& [ino, state] : Snapshot()) {
        absl::MutexLock lock(&state->mu);
        if (state->runs.empty()) {
          // The flag must not be dropped with the state: a sync first (one
          // log sync at most; no-op once nothing changed since).
          if (!state->storing && !SyncLargeWriteCommit(*state)) continue;
          DropIfClean(ino, state);
          continue;
        }
        if (now - state->dirty_since < options_.dirty_flush_seconds) continue;
        absl::Status s = FlushLocked(ino, *state);
        if (!s.ok() && failed++ == 0) {  // kept dirty; the next round tries again
          first_failed = ino;
          first_error = s;
        }
      }
      if (failed > 0 && (now - last_warning >= 60 || first_error.message() != last_reason)) {
        LogWarning("background flush of %d files failed (inode %d: %s); their data stays in "
                   "memory and the journal and is tried again",
                   failed, first_failed, first_error.ToString());
        last_warning = now;
        last_reason = std::string(first_error.message());
      }
      if (absl::Status s = ReclaimJournal(); !s.ok()) {
        LogWarning("could not reclaim journal space: %s", s.ToString());
      }
    }
  }

  // Clean states are dropped from the table so it tracks only files with
  // dirty data; a writer holding the pointer sees `detached` and retries.
  void DropIfClean(InodeId ino, const std::shared_ptr<InodeState>& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
    absl::MutexLock lock(&table_mu_);
    if (state->storing || state->unsynced_large_write_commit) return;
    auto it = states_.find(ino);
    if (it != states_.end() && it->second == state) {
      states_.erase(it);
      state->detached = true;
    }
  }

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const FileDataCacheOptions options_;
  WritebackJournal* const journal_;
  std::atomic<uint64_t> write_through_{0};
  std::atomic<int> waiting_large_writes_{0};
  std::atomic<uint64_t> large_write_bytes_{0};
  std::atomic<uint64_t> large_write_journaled_bytes_{0};
  std::atomic<uint64_t> ranged_reads_{0};
  std::atomic<bool> journal_warned_{false};
  BlobReadCache read_cache_;
  Readahead readahead_;

  absl::Mutex table_mu_;
  absl::flat_hash_map<InodeId, std::shared_ptr<InodeState>> states_
      ABSL_GUARDED_BY(table_mu_);
  std::atomic<uint64_t> total_dirty_{0};
  std::atomic<uint64_t> blobs_written_{0};
  std::atomic<uint64_t> streamed_bytes_{0};

  absl::Notification stop_;
  std::thread background_;
  absl::Mutex store_queue_mu_;
  std::deque<InodeId> store_queue_ ABSL_GUARDED_BY(store_queue_mu_);
  absl::flat_hash_set<InodeId> queued_ ABSL_GUARDED_BY(store_queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(store_queue_mu_) = false;
  std::vector<std::thread> store_threads_;
  absl::Mutex uploads_mu_;
  int uploads_ ABSL_GUARDED_BY(uploads_mu_) = 0;
};

FileDataCache::FileDataCache(NamespaceStore& ns, BlobStore& blobs,
                             const FileDataCacheOptions& options)
    : impl_(std::make_unique<Impl>(ns, blobs, options)) {}
FileDataCache::~FileDataCache() = default;

absl::Status FileDataCache::Write(InodeId ino, uint64_t offset,
                                  std::string_view data) {
  return impl_->Write(ino, offset, data);
}
absl::StatusOr<std::string> FileDataCache::Read(InodeId ino, uint64_t offset,
                                                uint64_t length) {
  return impl_->Read(ino, offset, length);
}
InodeAttr FileDataCache::WithDirtySize(InodeAttr attr) {
  return impl_->WithDirtySize(attr);
}
bool FileDataCache::HoldsUnstoredData(InodeId ino) { return impl_->HoldsUnstoredData(ino); }
bool FileDataCache::Tracks(InodeId ino) { return impl_->Tracks(ino); }
absl::StatusOr<InodeAttr> FileDataCache::SetAttrWithSize(
    InodeId ino, const SetAttrRequest& request) {
  return impl_->SetAttrWithSize(ino, request);
}
absl::StatusOr<WritebackJournal::ReplayStats> FileDataCache::ReplayJournal() {
  return impl_->ReplayJournal();
}
absl::StatusOr<std::unique_ptr<BlobStreamWriter>> FileDataCache::StreamNewFile(InodeId ino,
                                                                              bool touch) {
  return impl_->StreamNewFile(ino, touch);
}
absl::Status FileDataCache::Flush(InodeId ino) { return impl_->Flush(ino); }
absl::Status FileDataCache::Fsync(InodeId ino) { return impl_->Fsync(ino); }
absl::Status FileDataCache::FlushAll() { return impl_->FlushAll(); }
void FileDataCache::Discard(InodeId ino) { impl_->Discard(ino); }
void FileDataCache::ForgetBlob(BlobId id) { impl_->ForgetBlob(id); }
FileDataCache::Stats FileDataCache::GetStats() { return impl_->GetStats(); }

}  // namespace cairn

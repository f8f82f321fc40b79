// KvStore on RocksDB (rocks_kv_store.h).
#include "backend/namespace/rocks_kv_store.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/base/coding.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/namespace/rocksdb_env.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "rocksdb/write_buffer_manager.h"

namespace cairn {
namespace {

rocksdb::Slice S(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view V(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  FsErrorKind kind = s.IsNoSpace() ? FsErrorKind::kNoSpace : FsErrorKind::kIo;
  return FsError(kind, absl::StrCat("namespace database: ",
                                    absl::string_view(what.data(), what.size()), ": ",
                                    s.ToString()));
}

absl::StatusOr<std::optional<std::string>> Found(const rocksdb::Status& got,
                                                 std::string&& value) {
  if (got.IsNotFound()) return std::optional<std::string>();
  if (!got.ok()) return FromRocks(got, "reading a record");
  return std::optional<std::string>(std::move(value));
}

// Read options confined to [start, end): without bounds a seek walks over
// every deleted key (tombstone) next to the range until it finds a live
// one, so after a big file or directory is deleted each seek near it would
// cost time proportional to what was deleted.
class Bounds {
 public:
  Bounds(std::string_view start, std::string_view end)
      : start_(start), end_(end), start_slice_(start_), end_slice_(end_) {
    options_.iterate_lower_bound = &start_slice_;
    if (!end_.empty()) options_.iterate_upper_bound = &end_slice_;
  }
  Bounds(const Bounds&) = delete;
  Bounds& operator=(const Bounds&) = delete;
  const rocksdb::ReadOptions& options() const { return options_; }
  const rocksdb::ReadOptions* pointer() const { return &options_; }

 private:
  std::string start_, end_;
  rocksdb::Slice start_slice_, end_slice_;
  rocksdb::ReadOptions options_;
};

// Walks `it` from `start` to its upper bound.
absl::Status Walk(rocksdb::Iterator* it, std::string_view start, std::string_view end,
                  const KvScanFn& fn, const char* what) {
  for (it->Seek(S(start)); it->Valid(); it->Next()) {
    std::string_view key = V(it->key());
    // A batch iterator over the base may show the batch's keys past the
    // base's bound.
    if (!end.empty() && key >= end) break;
    if (!fn(key, V(it->value()))) return absl::OkStatus();
  }
  return FromRocks(it->status(), what);
}

absl::StatusOr<std::optional<KvReader::KeyValue>> SeekLast(rocksdb::Iterator* it,
                                                           std::string_view start,
                                                           std::string_view end) {
  if (end.empty()) {
    it->SeekToLast();
  } else {
    // The last key below `end`: at or before it, and not it.
    it->SeekForPrev(S(end));
    if (it->Valid() && V(it->key()) >= end) it->Prev();
  }
  // A damaged block must end the read here, not read as "no such key".
  if (!it->status().ok()) return FromRocks(it->status(), "reading a record");
  if (!it->Valid() || V(it->key()) < start) return std::optional<KvReader::KeyValue>();
  return std::optional<KvReader::KeyValue>(
      KvReader::KeyValue(std::string(V(it->key())), std::string(V(it->value()))));
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

class RocksKvStore;

class RocksReader final : public KvReader {
 public:
  RocksReader(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles)
      : db_(db), handles_(handles) {}

  absl::StatusOr<std::optional<std::string>> Get(KvSpace space, std::string_view key) override {
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf(space), S(key), &value);
    return Found(got, std::move(value));
  }

  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      KvSpace space, absl::Span<const std::string> keys) override {
    std::vector<std::optional<std::string>> out(keys.size());
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (const std::string& key : keys) slices.emplace_back(key);
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(rocksdb::ReadOptions(), cf(space), keys.size(), slices.data(), values.data(),
                  statuses.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) return FromRocks(statuses[i], "reading records");
      out[i] = values[i].ToString();
    }
    return out;
  }

  absl::Status Scan(KvSpace space, std::string_view start, std::string_view end,
                    const KvScanFn& fn) override {
    Bounds bounds(start, end);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(bounds.options(), cf(space)));
    return Walk(it.get(), start, end, fn, "listing records");
  }

  absl::StatusOr<std::optional<KeyValue>> Last(KvSpace space, std::string_view start,
                                              std::string_view end) override {
    Bounds bounds(start, end);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(bounds.options(), cf(space)));
    return SeekLast(it.get(), start, end);
  }

 private:
  rocksdb::ColumnFamilyHandle* cf(KvSpace space) const {
    return handles_[static_cast<int>(space)];
  }
  rocksdb::DB* db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>& handles_;
};

// One transaction: its writes go into a plain WriteBatch, and its reads
// straight to the database, except reads of a space it has written: those
// look through an index of the batch, built the first time one is needed.
// The namespace rarely reads what it wrote (it caches the inodes it
// changes), and indexing every write as it is made cost rename and unlink
// about a tenth of their time.
class RocksTxn final : public KvTxn {
 public:
  RocksTxn(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles)
      : db_(db), handles_(handles), reader_(db, handles) {}

  absl::StatusOr<std::optional<std::string>> Get(KvSpace space, std::string_view key) override {
    if (!wrote(space)) return reader_.Get(space, key);
    std::string value;
    rocksdb::Status got =
        Index().GetFromBatchAndDB(db_, rocksdb::ReadOptions(), cf(space), S(key), &value);
    return Found(got, std::move(value));
  }

  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      KvSpace space, absl::Span<const std::string> keys) override {
    if (!wrote(space)) return reader_.MultiGet(space, keys);
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (const std::string& key : keys) {
      absl::StatusOr<std::optional<std::string>> value = Get(space, key);
      if (!value.ok()) return value.status();
      out.push_back(std::move(*value));
    }
    return out;
  }

  absl::Status Scan(KvSpace space, std::string_view start, std::string_view end,
                    const KvScanFn& fn) override {
    if (!wrote(space)) return reader_.Scan(space, start, end, fn);
    Bounds bounds(start, end);
    std::unique_ptr<rocksdb::Iterator> it(Index().NewIteratorWithBase(
        cf(space), db_->NewIterator(bounds.options(), cf(space)), bounds.pointer()));
    return Walk(it.get(), start, end, fn, "listing records");
  }

  absl::StatusOr<std::optional<KeyValue>> Last(KvSpace space, std::string_view start,
                                              std::string_view end) override {
    if (!wrote(space)) return reader_.Last(space, start, end);
    Bounds bounds(start, end);
    std::unique_ptr<rocksdb::Iterator> it(Index().NewIteratorWithBase(
        cf(space), db_->NewIterator(bounds.options(), cf(space)), bounds.pointer()));
    return SeekLast(it.get(), start, end);
  }

  void Put(KvSpace space, std::string_view key, std::string_view value) override {
    written_ |= 1u << static_cast<int>(space);
    batch_.Put(cf(space), S(key), S(value)).PermitUncheckedError();
    if (index_ != nullptr) index_->Put(cf(space), S(key), S(value)).PermitUncheckedError();
  }
  void Delete(KvSpace space, std::string_view key) override {
    written_ |= 1u << static_cast<int>(space);
    batch_.Delete(cf(space), S(key)).PermitUncheckedError();
    if (index_ != nullptr) index_->Delete(cf(space), S(key)).PermitUncheckedError();
  }
  void AddToCounter(std::string_view counter, int64_t delta) override {
    counter_deltas_[std::string(counter)] += delta;
  }

  rocksdb::WriteBatch& batch() { return batch_; }
  const std::map<std::string, int64_t>& counter_deltas() const { return counter_deltas_; }

 private:
  // Replays the batch so far into an index; later writes go to both.
  rocksdb::WriteBatchWithIndex& Index() {
    if (index_ != nullptr) return *index_;
    index_ = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(), 0,
                                                            /*overwrite_key=*/true);
    class Replay final : public rocksdb::WriteBatch::Handler {
     public:
      Replay(rocksdb::WriteBatchWithIndex& index,
             const std::vector<rocksdb::ColumnFamilyHandle*>& handles)
          : index_(index), handles_(handles) {}
      rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                            const rocksdb::Slice& value) override {
        return index_.Put(Handle(id), key, value);
      }
      rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
        return index_.Delete(Handle(id), key);
      }

     private:
      rocksdb::ColumnFamilyHandle* Handle(uint32_t id) const {
        for (rocksdb::ColumnFamilyHandle* handle : handles_) {
          if (handle->GetID() == id) return handle;
        }
        return nullptr;  // not ours: RocksTxn writes only these
      }
      rocksdb::WriteBatchWithIndex& index_;
      const std::vector<rocksdb::ColumnFamilyHandle*>& handles_;
    } replay(*index_, handles_);
    batch_.Iterate(&replay).PermitUncheckedError();
    return *index_;
  }
  bool wrote(KvSpace space) const { return (written_ >> static_cast<int>(space)) & 1; }
  rocksdb::ColumnFamilyHandle* cf(KvSpace space) const {
    return handles_[static_cast<int>(space)];
  }
  rocksdb::DB* db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>& handles_;
  RocksReader reader_;
  rocksdb::WriteBatch batch_;
  std::unique_ptr<rocksdb::WriteBatchWithIndex> index_;
  uint32_t written_ = 0;  // a bit per space this transaction wrote
  std::map<std::string, int64_t> counter_deltas_;
};

class RocksKvStore final : public KvStore {
 public:
  RocksKvStore(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles, bool read_only,
               std::function<bool()> make_room)
      : env_(std::move(env)),
        db_(std::move(db)),
        handles_(std::move(handles)),
        read_only_(read_only),
        make_room_(std::move(make_room)),
        reader_(db_.get(), handles_) {}

  ~RocksKvStore() override {
    // Everything into tables, so that the log a clean stop leaves behind is
    // empty: a log is only replayed after a crash, and what replay cannot
    // read is lost (tables carry block checksums that every read checks).
    if (!read_only_) {
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

  KvReader& Reader() override { return reader_; }

  absl::Status Run(const std::function<absl::Status(KvTxn&)>& body) override {
    // One writer at a time: nothing changes what the body read before its
    // batch is written, so the body runs exactly once.
    absl::MutexLock lock(&mu_);
    RocksTxn txn(db_.get(), handles_);
    if (absl::Status s = body(txn); !s.ok()) return s;
    rocksdb::WriteBatch* batch = &txn.batch();
    std::vector<std::pair<const std::string*, int64_t>> counted;
    for (const auto& [name, delta] : txn.counter_deltas()) {
      if (delta == 0) continue;
      absl::StatusOr<int64_t> now = ReadCounter(name);
      if (!now.ok()) return now.status();
      int64_t value = std::max<int64_t>(0, *now + delta);
      std::string encoded;
      PutFixed64(&encoded, static_cast<uint64_t>(value));
      batch->Put(handles_[static_cast<int>(KvSpace::kMeta)], S(name), S(encoded));
      counted.emplace_back(&name, value);
    }
    if (batch->Count() == 0) return absl::OkStatus();
    if (absl::Status s = WriteToLog(batch, "committing a change"); !s.ok()) return s;
    absl::MutexLock counters(&counters_mu_);
    for (const auto& [name, value] : counted) counters_[*name] = value;
    return absl::OkStatus();
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

  absl::StatusOr<int64_t> ReadCounter(std::string_view counter) override {
    absl::MutexLock lock(&counters_mu_);
    absl::StatusOr<uint64_t*> value = Loaded(counters_, counter, 0);
    if (!value.ok()) return value.status();
    return static_cast<int64_t>(**value);
  }

  absl::StatusOr<uint64_t> Allocate(std::string_view sequence, uint64_t first_ever,
                                    uint64_t count) override {
    absl::MutexLock lock(&sequences_mu_);
    absl::StatusOr<uint64_t*> next = Loaded(sequences_, sequence, first_ever);
    if (!next.ok()) return next.status();
    const uint64_t first = **next;
    if (count == 0) return first;
    // The high-water mark reaches the log before any number of the range
    // is handed out, so every commit using one follows it in the log.
    rocksdb::WriteBatch batch;
    std::string value;
    PutFixed64(&value, first + count);
    batch.Put(handles_[static_cast<int>(KvSpace::kMeta)], S(sequence), S(value));
    if (absl::Status s = WriteToLog(&batch, "allocating numbers"); !s.ok()) return s;
    **next = first + count;
    return first;
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

  absl::StatusOr<EngineStats> GetEngineStats() override {
    EngineStats stats;
    stats.log_writes = log_writes_.load(std::memory_order_relaxed);
    stats.log_syncs = log_syncs_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  using Numbers = std::map<std::string, uint64_t, std::less<>>;

  // The in-memory value of a counter or sequence, read from its key the
  // first time (absent: `initial`).
  absl::StatusOr<uint64_t*> Loaded(Numbers& numbers, std::string_view name, uint64_t initial) {
    auto it = numbers.find(name);
    if (it != numbers.end()) return &it->second;
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(),
                                   handles_[static_cast<int>(KvSpace::kMeta)], S(name), &value);
    uint64_t loaded = initial;
    if (!got.IsNotFound()) {
      if (absl::Status s = FromRocks(got, "reading counters"); !s.ok()) return s;
      if (value.size() != 8) {
        return FsError(FsErrorKind::kIo,
                       absl::StrCat("counter ", absl::string_view(name.data(), name.size()),
                                    " is corrupt"));
      }
      loaded = DecodeFixed64(value.data());
    }
    return &numbers.emplace(std::string(name), loaded).first->second;
  }

  // Every change goes through here. A failed append (a full disk, say)
  // leaves RocksDB's log writer unusable; later writes and syncs recover
  // first (Resume: a new log, once there is room) or fail.
  absl::Status WriteToLog(rocksdb::WriteBatch* batch, const char* what) {
    if (absl::Status recovered = RecoverLog(); !recovered.ok()) return recovered;
    log_writes_.fetch_add(1, std::memory_order_relaxed);
    rocksdb::Status written = db_->Write(rocksdb::WriteOptions(), batch);
    if (written.IsNoSpace() && make_room_ && make_room_()) {
      // Writing the same batch again is safe even if the failed write left
      // it whole in the old log: every batch holds absolute values, and the
      // records another change could write in between are written under
      // the same lock this one holds (the writer's, or the sequences').
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

  // Declared before db_ so that it is destroyed after it: the database
  // calls it until it is closed.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // indexed by KvSpace
  const bool read_only_;
  const std::function<bool()> make_room_;
  RocksReader reader_;

  absl::Mutex mu_;  // the one writer
  absl::Mutex counters_mu_ ABSL_ACQUIRED_AFTER(mu_);
  Numbers counters_ ABSL_GUARDED_BY(counters_mu_);
  absl::Mutex sequences_mu_;
  Numbers sequences_ ABSL_GUARDED_BY(sequences_mu_);

  absl::Mutex sync_mu_;
  uint64_t synced_seq_ ABSL_GUARDED_BY(sync_mu_) = 0;
  std::atomic<bool> log_failed_{false};
  std::atomic<bool> log_failed_no_space_{false};  // the failure was a full disk
  std::atomic<uint64_t> log_writes_{0};
  std::atomic<uint64_t> log_syncs_{0};
  absl::Mutex recover_mu_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksKvStore(const std::string& db_dir,
                                                         const RocksKvOptions& options) {
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

  // The default column family is unused but RocksDB requires it.
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (int i = 0; i < kKvSpaceCount; ++i) {
    descriptors.emplace_back(KvSpaceName(static_cast<KvSpace>(i)), cf_options);
  }
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
                   absl::StrCat("cannot open the namespace database ", db_dir, ": ",
                                s.ToString()));
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
  return std::unique_ptr<KvStore>(std::make_unique<RocksKvStore>(
      std::move(env), std::move(db), std::move(handles), options.read_only, options.make_room));
}

}  // namespace cairn

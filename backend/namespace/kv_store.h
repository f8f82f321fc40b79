// The namespace's storage seam: ordered byte keys in a few key spaces,
// read alone or inside a transaction, written only by transactions. The
// namespace logic (records.h encodings, the operations of NamespaceStore)
// sits above it; engines sit below: RocksDB for a single-host volume (the
// default), PostgreSQL for a volume several hosts mount (issue 18), and
// later others (TiKV, FoundationDB) with the same promises:
//
//   - keys within a space are ordered bytewise; Scan walks that order;
//   - a transaction is serializable: the values it read are still the
//     committed ones when it commits, or it is run again;
//   - a committed transaction survives a crash once Sync has returned
//     (an engine may make every commit durable at once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cairn {

// One per kind of record (records.h). RocksDB keeps each in a column
// family; a SQL engine in one table, the space a column or a key prefix.
enum class KvSpace : uint8_t {
  kInodes,
  kDentries,
  kCookies,
  kXattrs,
  kExtents,
  kBlobs,
  kGc,
  kOrphans,
  kMeta,
};
inline constexpr int kKvSpaceCount = 9;
// The name RocksDB gives the space's column family ("inodes", ...).
const char* KvSpaceName(KvSpace space);
// The first key past every key that starts with `prefix` (which must not
// be all 0xff bytes): the `end` of a Scan over that prefix.
std::string KvPrefixEnd(std::string_view prefix);

// Called for each pair of a scan in key order; false stops the scan.
using KvScanFn = std::function<bool(std::string_view key, std::string_view value)>;

class KvReader {
 public:
  virtual ~KvReader() = default;
  // The value of `key`; nullopt when there is none.
  virtual absl::StatusOr<std::optional<std::string>> Get(KvSpace space,
                                                         std::string_view key) = 0;
  // The values of `keys`, in their order: one round trip where the engine
  // allows it.
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      KvSpace space, absl::Span<const std::string> keys) = 0;
  // A key and the space it is in.
  struct SpaceKey {
    KvSpace space;
    std::string key;
  };
  // The values of `keys`, which may be in different spaces, in their
  // order: one round trip where the engine allows it.
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> GetEach(
      absl::Span<const SpaceKey> keys) {
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (const SpaceKey& k : keys) {
      absl::StatusOr<std::optional<std::string>> value = Get(k.space, k.key);
      if (!value.ok()) return value.status();
      out.push_back(*std::move(value));
    }
    return out;
  }
  // The pairs with start <= key < end in key order (an empty `end`: to the
  // end of the space), until `fn` returns false. An engine may fetch ahead
  // in pages; it must not hold the whole range in memory. `fn` may make
  // other reads through the same reader (readdir looks up what it lists).
  virtual absl::Status Scan(KvSpace space, std::string_view start, std::string_view end,
                            const KvScanFn& fn) = 0;
  // The last pair with start <= key < end (an empty `end`: to the end of
  // the space); nullopt when there is none. The extent covering an offset
  // is the last one starting at or before it.
  using KeyValue = std::pair<std::string, std::string>;
  virtual absl::StatusOr<std::optional<KeyValue>> Last(KvSpace space, std::string_view start,
                                                      std::string_view end) = 0;
  // Last(space, floor, start), handed to `fn` if there is one, then
  // Scan(space, start, end, fn): the extents under a read, the first of
  // which may begin before it. One round trip where the engine allows it;
  // the two parts may see different commits, as two calls would. `start`
  // is not empty.
  virtual absl::Status ScanFromLastBefore(KvSpace space, std::string_view floor,
                                          std::string_view start, std::string_view end,
                                          const KvScanFn& fn) {
    absl::StatusOr<std::optional<KeyValue>> last = Last(space, floor, start);
    if (!last.ok()) return last.status();
    if (last->has_value() && !fn((*last)->first, (*last)->second)) return absl::OkStatus();
    return Scan(space, start, end, fn);
  }
};

// A transaction: its reads see the committed state plus its own writes.
class KvTxn : public KvReader {
 public:
  virtual void Put(KvSpace space, std::string_view key, std::string_view value) = 0;
  virtual void Delete(KvSpace space, std::string_view key) = 0;
  // Adds `delta` to a named counter (inode count, data bytes): counters are
  // kept apart from keys so that engines with many writers need not
  // serialize every transaction on one hot row. A counter never goes below
  // zero: a sum that would is kept at zero.
  virtual void AddToCounter(std::string_view counter, int64_t delta) = 0;
  // A range of one space: the pairs with start <= key < end (an empty
  // `end`: to the end of the space).
  struct SpaceRange {
    KvSpace space;
    std::string start;
    std::string end;
  };
  // A hint: the body is about to read these keys and scan these ranges,
  // in any spaces. An engine whose reads are round trips fetches them
  // together now and answers the later Gets, and Scans of exactly these
  // ranges, from what it fetched (a transaction's reads are repeatable,
  // so they cannot have changed); others ignore it. A failure here shows
  // again at the read.
  virtual void Prefetch(absl::Span<const SpaceKey> keys, absl::Span<const SpaceRange> scans) {}
  void Prefetch(absl::Span<const SpaceKey> keys) { Prefetch(keys, {}); }
  // A hint: these ranges held no key before this transaction (the records
  // of an inode number never handed out before). An engine that keeps
  // what it knew of recent state may remember them, once the transaction
  // commits, as empty (less what the transaction put there), to answer a
  // later scan of them without a round trip and check that answer at its
  // commit; others ignore it. Never trusted for an answer.
  virtual void NoteNewRanges(absl::Span<const SpaceRange> ranges) {}
};

class KvStore {
 public:
  virtual ~KvStore() = default;

  // Reads outside any transaction; each call sees committed data and
  // never waits for a writer. Two calls may see different states.
  virtual KvReader& Reader() = 0;

  // Runs `body` in a transaction and commits what it wrote, atomically.
  // The body may run more than once (a conflict with another writer; the
  // engine retries a bounded number of times, then returns kAborted), so
  // it must have no effect outside the transaction until Run returns OK.
  // A body returning an error aborts: nothing it wrote is kept, and Run
  // returns that error.
  virtual absl::Status Run(const std::function<absl::Status(KvTxn&)>& body) = 0;

  // Makes every transaction committed so far durable.
  virtual absl::Status Sync() = 0;

  // The current value of a counter (AddToCounter).
  virtual absl::StatusOr<int64_t> ReadCounter(std::string_view counter) = 0;

  // Hands out `count` consecutive numbers of the named sequence (inode
  // numbers, blob ids), starting at `first_ever` for a new sequence: never
  // the same number twice, across crashes and hosts; numbers may be
  // skipped. Returns the first of the range. It is not part of any
  // transaction: a body may call it (a create takes its inode number
  // there), and a range it took stays taken whatever the body does. With
  // `count` 0 it takes nothing and returns where the next range would
  // start: every number handed out so far is below it (fsck checks the
  // records against it).
  virtual absl::StatusOr<uint64_t> Allocate(std::string_view sequence, uint64_t first_ever,
                                            uint64_t count) = 0;

  // --- Optional engine operations: Unimplemented where the engine has
  // none (its own tools take their place).

  // A consistent copy of everything, as of one instant, in the new
  // directory `dir`, that the same engine opens read-only (backups).
  virtual absl::Status CreateCheckpoint(const std::string& dir) {
    return absl::UnimplementedError("this namespace engine makes no checkpoints");
  }
  // Since open: commits (and other writes) appended to the engine's log,
  // and syncs of it (cairn status, the metrics).
  struct EngineStats {
    uint64_t log_writes = 0;
    uint64_t log_syncs = 0;
  };
  virtual absl::StatusOr<EngineStats> GetEngineStats() {
    return absl::UnimplementedError("this namespace engine keeps no statistics");
  }

  // --- Engines several hosts share (PostgreSQL). Each daemon that opens
  // the store for writing holds a session (a row with a heartbeat and an
  // expiry kept by the server's clock); a transaction commits only while
  // its session is alive, so a host paused past its expiry cannot commit.
  // This host's session; 0 for an engine only one host opens (RocksDB),
  // and for a store opened without a session (format, fsck, status).
  virtual uint64_t session_id() const { return 0; }
  // The sessions whose rows are still there. A session past its expiry
  // stays listed until a live daemon deletes its row, which happens only
  // once no transaction of it is in flight (so nothing it may still commit
  // races a release): what a session held may be released once it is not
  // listed.
  virtual absl::StatusOr<std::vector<uint64_t>> LiveSessions() {
    return std::vector<uint64_t>{};
  }
  // Every session row, for `cairn status`. Times are the server's clock.
  struct SessionInfo {
    uint64_t id = 0;
    std::string host;
    int pid = 0;
    std::string mountpoint;
    int64_t started_unix_ms = 0;
    int64_t heartbeat_unix_ms = 0;
    int64_t expires_unix_ms = 0;
    uint64_t journal_backlog = 0;  // bytes, as the daemon last reported
    bool alive = false;            // expiry not passed
  };
  virtual absl::StatusOr<std::vector<SessionInfo>> ListSessions() {
    return std::vector<SessionInfo>{};
  }
  // The journal bytes this host has not yet stored, reported with its next
  // heartbeat (cairn status shows them). A no-op without a session.
  virtual void SetSessionBacklog(uint64_t bytes) {}

  // Whether this daemon runs the volume's background services (GC,
  // compaction, tiering, replication, backups): exactly one daemon of a
  // shared volume at a time. An engine only one host opens always leads.
  // It may turn false at any time (leadership lost): a service checks it
  // before each round of work.
  virtual bool IsLeader() { return true; }

  // The keys other hosts' transactions changed (put or deleted), so this
  // host can drop what it cached of them. `session` is the writer's.
  struct Change {
    KvSpace space;
    std::string key;
  };
  using ChangeFn = std::function<void(uint64_t session, const std::vector<Change>& changes)>;
  // Ends a subscription when destroyed (waiting for a call of its callback
  // in progress); it must go before the store.
  class Watch {
   public:
    virtual ~Watch() = default;
  };
  // Calls `fn` from a thread of the engine, in commit order as far as the
  // engine can tell, for every committed transaction of another session,
  // typically within a second. Unimplemented for engines only one host
  // opens, and for a store without a session.
  virtual absl::StatusOr<std::unique_ptr<Watch>> WatchChanges(ChangeFn fn) {
    return absl::UnimplementedError("this namespace engine has no change feed");
  }
};

}  // namespace cairn

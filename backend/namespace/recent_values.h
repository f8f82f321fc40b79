// What one host last knew of some keys of a store several hosts share:
// values it read or committed moments ago, and the whole contents of some
// small ranges (a new inode's extents, xattrs and open holds, kept up to
// date by this host's commits).
//
// PgKvStore runs a transaction's first attempt on these instead of asking
// the server (a speculative run) and has the server check each of them in
// the commit's round trip, failing the commit when one differs; the run is
// then thrown away and done again from the server. So an entry may be
// stale without harm beyond that wasted run, and nothing here is trusted
// for an answer. Staleness is kept rare: the change feed's reports and this
// host's commits drop or replace what they touch, and a value read or
// committed while something else changed that key is not kept at all (it
// may predate that change).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

class RecentValues {
 public:
  struct Options {
    // Entries (values, ranges and the pairs ranges hold) kept at most;
    // all are dropped when full. With max_value_bytes, about 16 MiB.
    size_t max_entries = 16384;
    // Larger values are not kept (an extent map's record, a long xattr).
    size_t max_value_bytes = 1024;
    // A range with more keys than this is no longer kept.
    size_t max_range_keys = 16;
    // An entry older than this is not used: if the feed stalls, a stale
    // entry costs a wasted run at most for this long.
    absl::Duration max_age = absl::Seconds(10);
  };
  explicit RecentValues(Options options) : options_(options) {}
  RecentValues() : RecentValues(Options{}) {}

  // Moves on with every change this host learns of (a feed report, a
  // commit of this host). A read or transaction takes the epoch before it
  // starts and passes it to Note*: what it saw of a key is kept only when
  // no change of that key (or of the range holding it) came since.
  uint64_t Epoch();

  // The value of a key as last known (nullopt inside: known absent);
  // nullopt when not known.
  std::optional<std::optional<std::string>> Find(KvSpace space, std::string_view key);
  // The pairs [start, end) of `space` was known to hold, in key order;
  // nullopt when not known.
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  std::optional<Pairs> FindRange(KvSpace space, std::string_view start, std::string_view end);

  // A read from the server that started at `epoch`.
  void NoteRead(uint64_t epoch, KvSpace space, std::string_view key,
                const std::optional<std::string>& value);

  // A committed transaction of this host that started at `epoch`: what it
  // read and did not write, what it wrote (nullopt: deleted), and the
  // ranges that held no key before it (NoteNewRanges hints), which now
  // hold what it put there. Known ranges follow its writes. Moves the
  // epoch on.
  struct Value {
    KvSpace space;
    std::string key;
    std::optional<std::string> value;
  };
  void NoteCommit(uint64_t epoch, absl::Span<const Value> reads, absl::Span<const Value> writes,
                  absl::Span<const KvTxn::SpaceRange> empty);

  // Keys that changed in a way this host does not know the outcome of
  // (another host's commit, a commit whose answer was lost): forgotten,
  // with every range holding one. Moves the epoch on.
  void Changed(absl::Span<const KvStore::Change> changes);
  // Forgets these keys and ranges (a speculative run found them stale).
  void Forget(absl::Span<const KvStore::Change> keys, absl::Span<const KvTxn::SpaceRange> ranges);
  // Forgets everything (the feed was lost, or nobody watches it).
  void Clear();

  // Entries kept: values, ranges and the pairs ranges hold.
  size_t size();

 private:
  struct Entry {
    std::optional<std::string> value;
    absl::Time at;
  };
  struct Range {
    std::string end;
    std::map<std::string, std::string> pairs;
    absl::Time at;
    uint64_t changed = 0;  // the epoch of the last change in it
  };
  using Key = std::pair<KvSpace, std::string>;
  using RangeMap = std::map<Key, Range>;

  // Whether `key` changed after `epoch`.
  bool ChangedSinceLocked(const Key& key, uint64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkChangedLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool Fresh(absl::Time at, absl::Time now) const { return now - at <= options_.max_age; }
  void PutLocked(KvSpace space, std::string_view key, const std::optional<std::string>& value,
                 absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetKeyLocked(KvSpace space, std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The range holding `key`; ranges_.end() if none.
  RangeMap::iterator RangeHoldingLocked(
      KvSpace space, std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropRangeHoldingLocked(KvSpace space, std::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddRangeLocked(const KvTxn::SpaceRange& range, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RangeMap::iterator EraseRangeLocked(RangeMap::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeRoomLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  // The epoch of each key's last change, since `changes_floor_`: a key not
  // listed may have changed at any epoch before that (the list is emptied
  // when it grows past max_entries).
  absl::flat_hash_map<Key, uint64_t> changes_ ABSL_GUARDED_BY(mu_);
  uint64_t changes_floor_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<Key, Entry> values_ ABSL_GUARDED_BY(mu_);
  // Per space, non-overlapping ranges by start (an empty end: to the end
  // of the space).
  RangeMap ranges_ ABSL_GUARDED_BY(mu_);
  size_t range_pairs_ ABSL_GUARDED_BY(mu_) = 0;  // held by all of ranges_
};

}  // namespace cairn

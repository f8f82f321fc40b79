#include "backend/namespace/recent_values.h"

namespace cairn {

uint64_t RecentValues::Epoch() {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

std::optional<std::optional<std::string>> RecentValues::Find(KvSpace space,
                                                             std::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(Key(space, std::string(key)));
  if (it == values_.end() || !Fresh(it->second.at, absl::Now())) return std::nullopt;
  return it->second.value;
}

std::optional<RecentValues::Pairs> RecentValues::FindRange(KvSpace space,
                                                           std::string_view start,
                                                           std::string_view end) {
  absl::MutexLock lock(&mu_);
  auto it = RangeHoldingLocked(space, start);
  if (it == ranges_.end() || !Fresh(it->second.at, absl::Now())) return std::nullopt;
  const std::string& known_end = it->second.end;
  if (!known_end.empty() && (end.empty() || end > known_end)) return std::nullopt;
  Pairs pairs;
  for (auto p = it->second.pairs.lower_bound(std::string(start));
       p != it->second.pairs.end() && (end.empty() || p->first < end); ++p) {
    pairs.emplace_back(p->first, p->second);
  }
  return pairs;
}

void RecentValues::NoteRead(uint64_t epoch, KvSpace space, std::string_view key,
                            const std::optional<std::string>& value) {
  absl::MutexLock lock(&mu_);
  if (ChangedSinceLocked(Key(space, std::string(key)), epoch)) return;
  PutLocked(space, key, value, absl::Now());
}

void RecentValues::NoteCommit(uint64_t epoch, absl::Span<const Value> reads,
                              absl::Span<const Value> writes,
                              absl::Span<const KvTxn::SpaceRange> empty) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  // What changed after `epoch` was changed by a commit that overlapped
  // this one, and which of the two wrote last is unknown here.
  for (const Value& r : reads) {
    if (!ChangedSinceLocked(Key(r.space, r.key), epoch)) PutLocked(r.space, r.key, r.value, now);
  }
  ++epoch_;
  for (const KvTxn::SpaceRange& range : empty) AddRangeLocked(range, now);
  for (const Value& w : writes) {
    Key key(w.space, w.key);
    const bool overlapped = ChangedSinceLocked(key, epoch);
    if (overlapped) {
      ForgetKeyLocked(w.space, w.key);
    } else {
      PutLocked(w.space, w.key, w.value, now);  // may empty everything: look up the range after
    }
    MarkChangedLocked(key);
    auto range = RangeHoldingLocked(w.space, w.key);
    if (range == ranges_.end()) continue;
    if (overlapped || (range->second.changed > epoch && range->second.changed != epoch_) ||
        (w.value.has_value() && (w.value->size() > options_.max_value_bytes ||
                                 range->second.pairs.size() >= options_.max_range_keys))) {
      EraseRangeLocked(range);
      continue;
    }
    std::map<std::string, std::string>& pairs = range->second.pairs;
    if (w.value.has_value()) {
      range_pairs_ += pairs.count(w.key) ? 0 : 1;
      pairs[w.key] = *w.value;
    } else {
      range_pairs_ -= pairs.erase(w.key);
    }
    range->second.changed = epoch_;
  }
}

void RecentValues::Changed(absl::Span<const KvStore::Change> changes) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  for (const KvStore::Change& c : changes) {
    ForgetKeyLocked(c.space, c.key);
    DropRangeHoldingLocked(c.space, c.key);
    MarkChangedLocked(Key(c.space, c.key));
  }
}

void RecentValues::Forget(absl::Span<const KvStore::Change> keys,
                          absl::Span<const KvTxn::SpaceRange> ranges) {
  absl::MutexLock lock(&mu_);
  for (const KvStore::Change& c : keys) ForgetKeyLocked(c.space, c.key);
  for (const KvTxn::SpaceRange& r : ranges) DropRangeHoldingLocked(r.space, r.start);
}

void RecentValues::Clear() {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  values_.clear();
  ranges_.clear();
  range_pairs_ = 0;
  changes_.clear();
  changes_floor_ = epoch_;
}

size_t RecentValues::size() {
  absl::MutexLock lock(&mu_);
  return values_.size() + ranges_.size() + range_pairs_;
}

void RecentValues::PutLocked(KvSpace space, std::string_view key,
                             const std::optional<std::string>& value, absl::Time now) {
  if (value.has_value() && value->size() > options_.max_value_bytes) {
    ForgetKeyLocked(space, key);
    return;
  }
  MakeRoomLocked();
  values_[Key(space, std::string(key))] = Entry{value, now};
}

void RecentValues::ForgetKeyLocked(KvSpace space, std::string_view key) {
  values_.erase(Key(space, std::string(key)));
}

RecentValues::RangeMap::iterator RecentValues::RangeHoldingLocked(KvSpace space, std::string_view key) {
  auto it = ranges_.upper_bound(Key(space, std::string(key)));
  if (it == ranges_.begin()) return ranges_.end();
  --it;
  if (it->first.first == space && (it->second.end.empty() || key < it->second.end)) return it;
  return ranges_.end();
}

void RecentValues::DropRangeHoldingLocked(KvSpace space, std::string_view key) {
  auto it = RangeHoldingLocked(space, key);
  if (it != ranges_.end()) EraseRangeLocked(it);
}

void RecentValues::AddRangeLocked(const KvTxn::SpaceRange& range, absl::Time now) {
  // Ranges stay disjoint, so the one holding a key is the last starting at
  // or before it: an overlapped older range gives way to the new one.
  auto it = ranges_.lower_bound(Key(range.space, range.start));
  if (it != ranges_.begin()) {
    auto before = std::prev(it);
    if (before->first.first == range.space &&
        (before->second.end.empty() || before->second.end > range.start)) {
      it = before;
    }
  }
  while (it != ranges_.end() && it->first.first == range.space &&
         (range.end.empty() || it->first.second < range.end)) {
    it = EraseRangeLocked(it);
  }
  MakeRoomLocked();
  ranges_[Key(range.space, range.start)] = Range{range.end, {}, now, epoch_};
}

bool RecentValues::ChangedSinceLocked(const Key& key, uint64_t epoch) {
  if (epoch < changes_floor_) return true;
  auto it = changes_.find(key);
  return it != changes_.end() && it->second > epoch;
}

void RecentValues::MarkChangedLocked(const Key& key) {
  if (changes_.size() >= options_.max_entries) {
    changes_.clear();
    changes_floor_ = epoch_;
  }
  changes_[key] = epoch_;
}

RecentValues::RangeMap::iterator RecentValues::EraseRangeLocked(RangeMap::iterator it) {
  range_pairs_ -= it->second.pairs.size();
  return ranges_.erase(it);
}

void RecentValues::MakeRoomLocked() {
  if (values_.size() + ranges_.size() + range_pairs_ < options_.max_entries) return;
  values_.clear();
  ranges_.clear();
  range_pairs_ = 0;
}

}  // namespace cairn

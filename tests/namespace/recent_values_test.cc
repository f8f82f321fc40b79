// RecentValues keeps what a host last knew only while nothing it heard of
// since could have changed it: a stale entry costs a shared volume a
// wasted transaction run, so these tests hold it to dropping what it must.
#include "backend/namespace/recent_values.h"

#include <thread>

#include "gtest/gtest.h"

namespace cairn {
namespace {

using Pairs = RecentValues::Pairs;
constexpr KvSpace kSpace = KvSpace::kMeta;

std::optional<std::optional<std::string>> Known(std::optional<std::string> value) {
  return std::optional<std::optional<std::string>>(std::move(value));
}

TEST(RecentValuesTest, AReadIsKeptUnlessItsKeyChangedWhileItRan) {
  RecentValues recent;
  uint64_t epoch = recent.Epoch();
  recent.NoteRead(epoch, kSpace, "a", "1");
  recent.NoteRead(epoch, kSpace, "absent", std::nullopt);
  EXPECT_EQ(recent.Find(kSpace, "a"), Known("1"));
  EXPECT_EQ(recent.Find(kSpace, "absent"), Known(std::nullopt));
  EXPECT_EQ(recent.Find(KvSpace::kInodes, "a"), std::nullopt) << "another space";

  // A read that started before another host's change of its key may hold
  // the value from before: not kept. One of another key is.
  epoch = recent.Epoch();
  recent.Changed({{kSpace, "b"}});
  recent.NoteRead(epoch, kSpace, "b", "old");
  recent.NoteRead(epoch, kSpace, "c", "3");
  EXPECT_EQ(recent.Find(kSpace, "b"), std::nullopt);
  EXPECT_EQ(recent.Find(kSpace, "c"), Known("3"));
  // The change also forgets what was known.
  recent.Changed({{kSpace, "a"}});
  EXPECT_EQ(recent.Find(kSpace, "a"), std::nullopt);
}

TEST(RecentValuesTest, OverlappingCommitsOfOneKeyLeaveItUnknown) {
  RecentValues recent;
  const uint64_t first = recent.Epoch();
  const uint64_t second = recent.Epoch();
  recent.NoteCommit(second, {}, {{kSpace, "k", "from second"}}, {});
  EXPECT_EQ(recent.Find(kSpace, "k"), Known("from second"));
  // The first started before the second committed: which wrote last is
  // unknown here.
  recent.NoteCommit(first, {{kSpace, "r", "read"}},
                    {{kSpace, "k", "from first"}, {kSpace, "other", "x"}}, {});
  EXPECT_EQ(recent.Find(kSpace, "k"), std::nullopt);
  EXPECT_EQ(recent.Find(kSpace, "other"), Known("x"));
  EXPECT_EQ(recent.Find(kSpace, "r"), Known("read"));
  // A delete is known as absent.
  recent.NoteCommit(recent.Epoch(), {}, {{kSpace, "other", std::nullopt}}, {});
  EXPECT_EQ(recent.Find(kSpace, "other"), Known(std::nullopt));
}

TEST(RecentValuesTest, ANewRangeFollowsThisHostsCommitsUntilAnotherHostWrites) {
  RecentValues::Options options;
  options.max_range_keys = 2;
  RecentValues recent(options);
  const KvTxn::SpaceRange range{kSpace, "r/", "r0"};
  // Unknown until a commit says it is new; then it holds what that put.
  EXPECT_EQ(recent.FindRange(kSpace, "r/", "r0"), std::nullopt);
  recent.NoteCommit(recent.Epoch(), {}, {{kSpace, "r/a", "1"}, {kSpace, "s", "2"}}, {range});
  EXPECT_EQ(recent.FindRange(kSpace, "r/", "r0"), (Pairs{{"r/a", "1"}}));
  EXPECT_EQ(recent.FindRange(kSpace, "r/b", "r0"), Pairs{}) << "a part of it";
  EXPECT_EQ(recent.FindRange(kSpace, "r/", "s"), std::nullopt) << "wider than known";
  recent.NoteCommit(recent.Epoch(), {}, {{kSpace, "r/a", std::nullopt}, {kSpace, "r/b", "3"}},
                    {});
  EXPECT_EQ(recent.FindRange(kSpace, "r/", "r0"), (Pairs{{"r/b", "3"}}));
  // Past max_range_keys it is no longer kept.
  recent.NoteCommit(recent.Epoch(), {}, {{kSpace, "r/c", "4"}, {kSpace, "r/d", "5"}}, {});
  EXPECT_EQ(recent.FindRange(kSpace, "r/", "r0"), std::nullopt);

  // Another host's write into it, or a commit overlapping this host's
  // own change of it, leaves it unknown.
  const KvTxn::SpaceRange other{kSpace, "t/", "t0"};
  recent.NoteCommit(recent.Epoch(), {}, {}, {other});
  EXPECT_EQ(recent.FindRange(kSpace, "t/", "t0"), Pairs{});
  recent.Changed({{kSpace, "t/x"}});
  EXPECT_EQ(recent.FindRange(kSpace, "t/", "t0"), std::nullopt);
  recent.NoteCommit(recent.Epoch(), {}, {}, {other});
  const uint64_t early = recent.Epoch();
  recent.NoteCommit(recent.Epoch(), {}, {{kSpace, "t/y", "1"}}, {});
  recent.NoteCommit(early, {}, {{kSpace, "t/z", "2"}}, {});
  EXPECT_EQ(recent.FindRange(kSpace, "t/", "t0"), std::nullopt);
}

TEST(RecentValuesTest, OldEntriesAreNotUsedAndTheSizeIsBounded) {
  RecentValues::Options options;
  options.max_age = absl::Milliseconds(20);
  options.max_entries = 8;
  RecentValues recent(options);
  recent.NoteRead(recent.Epoch(), kSpace, "a", "1");
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  EXPECT_EQ(recent.Find(kSpace, "a"), std::nullopt);
  for (int i = 0; i < 100; ++i) {
    recent.NoteRead(recent.Epoch(), kSpace, "k" + std::to_string(i), "v");
    EXPECT_LE(recent.size(), 8u);
  }
  // The pairs ranges hold count too.
  RecentValues ranged(options);
  for (char c = 'a'; c <= 'z'; ++c) {
    const std::string prefix = std::string(1, c) + "/";
    ranged.NoteCommit(ranged.Epoch(), {},
                      {{kSpace, prefix + "1", "v"}, {kSpace, prefix + "2", "v"}},
                      {{kSpace, prefix, std::string(1, c) + "0"}});
    EXPECT_LE(ranged.size(), 9u);
  }
  options.max_age = absl::Seconds(10);
  options.max_value_bytes = 4;
  RecentValues small(options);
  small.NoteRead(small.Epoch(), kSpace, "big", "12345");
  EXPECT_EQ(small.Find(kSpace, "big"), std::nullopt);
  small.Clear();
  EXPECT_EQ(small.size(), 0u);
}

}  // namespace
}  // namespace cairn

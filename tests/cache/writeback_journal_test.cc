#include "cache/writeback_journal.h"

#include <atomic>
#include <iostream>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "cache/file_data_cache.h"
#include "gtest/gtest.h"
#include "tests/support/file_bytes.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fault_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

constexpr char kVolumeId[] = "0123456789abcdef0123456789abcdef";

class WritebackJournalTest : public ::testing::Test {
 protected:
  std::unique_ptr<WritebackJournal> OpenJournal(uint64_t first_seq,
                                                uint64_t segment_bytes = 1 << 20,
                                                const std::string& volume_id = kVolumeId) {
    JournalOptions options;
    options.dir = Dir();
    options.volume_id = volume_id;
    options.segment_bytes = segment_bytes;
    absl::StatusOr<std::unique_ptr<WritebackJournal>> journal =
        WritebackJournal::Open(&env_, options, first_seq);
    EXPECT_TRUE(journal.ok()) << journal.status();
    return journal.ok() ? std::move(*journal) : nullptr;
  }
  std::string Dir() { return dir_.path() + "/journal"; }
  std::vector<std::string> Segments() {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<std::string>> names = Env::Default()->ListDir(Dir());
    EXPECT_TRUE(names.ok()) << names.status();
    for (const std::string& name : names.value_or(std::vector<std::string>{})) {
      out.push_back(Dir() + "/" + name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<JournalRecord> ReplayAll(WritebackJournal& journal,
                                       WritebackJournal::ReplayStats* stats = nullptr) {
    std::vector<JournalRecord> records;
    absl::StatusOr<WritebackJournal::ReplayStats> result =
        journal.Replay([&](const JournalRecord& r) {
          records.push_back(r);
          return absl::OkStatus();
        });
    EXPECT_TRUE(result.ok()) << result.status();
    if (stats != nullptr && result.ok()) *stats = *result;
    return records;
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
};

TEST_F(WritebackJournalTest, RecordsComeBackInOrderAfterReopen) {
  std::vector<std::string> written;
  {
    auto journal = OpenJournal(100, /*segment_bytes=*/4096);
    std::mt19937 rng(1);
    for (int i = 0; i < 50; ++i) {
      std::string data(rng() % 1500 + 1, static_cast<char>('a' + i % 26));
      absl::StatusOr<WritebackJournal::Appended> appended =
          journal->Append(7 + i % 3, i * 1000, data);
      ASSERT_TRUE(appended.ok()) << appended.status();
      EXPECT_EQ(appended->seq, 100u + i);
      written.push_back(data);
    }
    ASSERT_TRUE(journal->Sync().ok());
    EXPECT_GT(journal->GetStats().segments, 5u) << "small segments roll over";
  }
  auto journal = OpenJournal(1000);
  WritebackJournal::ReplayStats stats;
  std::vector<JournalRecord> records = ReplayAll(*journal, &stats);
  ASSERT_EQ(records.size(), written.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].seq, 100 + i);
    EXPECT_EQ(records[i].ino, 7 + i % 3);
    EXPECT_EQ(records[i].offset, i * 1000);
    EXPECT_EQ(records[i].data, written[i]);
  }
  EXPECT_EQ(stats.damaged_segments, 0u);
  // New records continue from the new base, in a new segment.
  absl::StatusOr<WritebackJournal::Appended> next = journal->Append(1, 0, "x");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->seq, 1000u);
}

// A truncate is a record too, so a replay meets it in order with the
// file's writes (a namespace log that lost its commit cannot reorder them).
TEST_F(WritebackJournalTest, ATruncateComesBackInOrderWithTheWrites) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, std::string(3000, 'a')).ok());
    absl::StatusOr<WritebackJournal::Appended> truncate = journal->AppendTruncate(5, 100);
    ASSERT_TRUE(truncate.ok()) << truncate.status();
    EXPECT_EQ(truncate->seq, 2u);
    ASSERT_TRUE(journal->Append(5, 200, "b").ok());
  }
  auto journal = OpenJournal(100);
  WritebackJournal::ReplayStats stats;
  std::vector<JournalRecord> records = ReplayAll(*journal, &stats);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_FALSE(records[0].truncate);
  EXPECT_TRUE(records[1].truncate);
  EXPECT_EQ(records[1].offset, 100u);
  EXPECT_EQ(records[1].data, "");
  EXPECT_EQ(records[2].data, "b");
  EXPECT_EQ(stats.damaged_segments, 0u);
}

TEST_F(WritebackJournalTest, TornTailRecordIsDroppedAndEarlierOnesKept) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, std::string(3000, 'a')).ok());
    ASSERT_TRUE(journal->Append(5, 3000, std::string(3000, 'b')).ok());
    ASSERT_TRUE(journal->Append(5, 6000, std::string(3000, 'c')).ok());
  }
  std::string segment = Segments().back();
  struct stat st;
  ASSERT_EQ(stat(segment.c_str(), &st), 0);
  // A crash in the middle of writing the last record.
  ASSERT_EQ(truncate(segment.c_str(), st.st_size - 1000), 0);
  auto journal = OpenJournal(100);
  WritebackJournal::ReplayStats stats;
  std::vector<JournalRecord> records = ReplayAll(*journal, &stats);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].data, std::string(3000, 'b'));
  EXPECT_EQ(stats.damaged_segments, 1u);
}

// A damaged record used to end its segment: 26 of 30 fsynced files came
// back empty from one flipped byte. Replay now goes on at the next intact
// record and says how many it lost.
TEST_F(WritebackJournalTest, ADamagedRecordIsSkippedAndEveryIntactOneAfterItKept) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, std::string(100, 'a')).ok());
    ASSERT_TRUE(journal->Append(5, 100, std::string(100, 'b')).ok());
    ASSERT_TRUE(journal->Append(5, 200, std::string(100, 'c')).ok());
  }
  std::string segment = Segments().back();
  {
    // Flip one data byte of the second record (header 64, records 140).
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(64 + 140 + 40 + 50);
    f.put('X');
  }
  auto journal = OpenJournal(100);
  WritebackJournal::ReplayStats stats;
  std::vector<JournalRecord> records = ReplayAll(*journal, &stats);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].data, std::string(100, 'a'));
  EXPECT_EQ(records[1].data, std::string(100, 'c'));
  EXPECT_EQ(stats.damaged_segments, 1u);
  EXPECT_EQ(stats.damaged_bytes, 140u);
  EXPECT_EQ(stats.lost_records, 1u);
  // The damage is in the data: the header still names the write it lost.
  ASSERT_EQ(stats.damaged_writes.size(), 1u);
  EXPECT_EQ(stats.damaged_writes[0].ino, 5u);
  EXPECT_EQ(stats.damaged_writes[0].offset, 100u);
  EXPECT_EQ(stats.damaged_writes[0].length, 100u);
  EXPECT_EQ(stats.damaged_writes[0].seq, 2u);
}

// One flipped byte anywhere in a segment of 200 records (fixed seed, many
// positions): replay returns only records that were written, unchanged and
// in order, loses at most the record the byte was in, and counts the loss.
TEST_F(WritebackJournalTest, AFlippedByteAnywhereCostsAtMostItsOwnRecord) {
  std::vector<std::string> written;
  {
    auto journal = OpenJournal(1);
    for (int i = 0; i < 200; ++i) {
      written.push_back(std::string(50 + (i * 37) % 400, static_cast<char>('a' + i % 26)));
      ASSERT_TRUE(journal->Append(5, i * 1000, written.back()).ok());
    }
  }
  const std::string segment = Segments().back();
  const std::string pristine = ReadWholeFile(segment);
  std::mt19937_64 random(7);
  for (int round = 0; round < 100; ++round) {
    const uint64_t position = 64 + random() % (pristine.size() - 64);
    std::string damaged = pristine;
    damaged[position] ^= static_cast<char>(1 << (random() % 8));
    std::ofstream(segment, std::ios::binary | std::ios::trunc) << damaged;
    auto journal = OpenJournal(1000);
    WritebackJournal::ReplayStats stats;
    std::vector<JournalRecord> records = ReplayAll(*journal, &stats);
    journal.reset();
    for (const std::string& path : Segments()) {
      if (path != segment) std::filesystem::remove(path);  // the new, empty one
    }
    EXPECT_GE(records.size(), 199u) << "byte " << position;
    EXPECT_EQ(stats.damaged_segments, 1u) << "byte " << position;
    // A damaged last record has nothing after it to count the loss by.
    if (stats.torn_bytes == 0) {
      EXPECT_EQ(records.size() + stats.lost_records, 200u) << "byte " << position;
    }
    uint64_t previous = 0;
    for (const JournalRecord& r : records) {
      ASSERT_GE(r.seq, 1u);
      ASSERT_LE(r.seq, 200u);
      EXPECT_GT(r.seq, previous);
      previous = r.seq;
      EXPECT_EQ(r.data, written[r.seq - 1]) << "byte " << position;
      EXPECT_EQ(r.offset, (r.seq - 1) * 1000);
    }
  }
}

TEST_F(WritebackJournalTest, JournalOfAnotherVolumeIsRefused) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, "data").ok());
  }
  JournalOptions options;
  options.dir = Dir();
  options.volume_id = "ffffffffffffffffffffffffffffffff";
  absl::StatusOr<std::unique_ptr<WritebackJournal>> other =
      WritebackJournal::Open(&env_, options, 1);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("another volume"), std::string::npos)
      << other.status();
  EXPECT_NE(other.status().message().find("cache_dir"), std::string::npos);
}

TEST_F(WritebackJournalTest, SegmentWithoutCompleteHeaderIsRemoved) {
  ASSERT_TRUE(Env::Default()->CreateDir(Dir()).ok());
  std::string stray = Dir() + "/seg-0000000000000009.jnl";
  std::ofstream(stray) << "CAIRN";  // crash while creating it
  auto journal = OpenJournal(1);
  ASSERT_NE(journal, nullptr);
  EXPECT_FALSE(Env::Default()->Exists(stray));
  EXPECT_TRUE(ReplayAll(*journal).empty());
  absl::StatusOr<WritebackJournal::Appended> next = journal->Append(1, 0, "x");
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->segment, 9u) << "segment numbers never go back";
}

// A disk filled to 100% and a power cut left a segment of zeros (its blocks
// allocated, its data never written); the next mount refused it ("bad
// magic; move it out"). Never synced, it held nothing acknowledged.
TEST_F(WritebackJournalTest, AZeroFilledSegmentIsTreatedAsNeverWritten) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, "kept").ok());
    ASSERT_TRUE(journal->Sync().ok());
  }
  std::string zeros = Dir() + "/seg-0000000000000009.jnl";
  std::ofstream(zeros, std::ios::binary) << std::string(8192, '\0');
  auto journal = OpenJournal(100);
  ASSERT_NE(journal, nullptr);
  EXPECT_FALSE(Env::Default()->Exists(zeros));
  std::vector<JournalRecord> records = ReplayAll(*journal);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].data, "kept");
  // A header that is not zeros but wrong still refuses: that is damage, or
  // a file that is not ours.
  journal.reset();
  std::string foreign = Dir() + "/seg-0000000000000099.jnl";
  std::ofstream(foreign, std::ios::binary) << std::string(8192, 'z');
  JournalOptions options;
  options.dir = Dir();
  options.volume_id = kVolumeId;
  EXPECT_FALSE(WritebackJournal::Open(&env_, options, 200).ok());
}

TEST_F(WritebackJournalTest, AReadOnlyJournalReplaysAndChangesNothing) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, "kept").ok());
    ASSERT_TRUE(journal->Sync().ok());
  }
  std::string zeros = Dir() + "/seg-0000000000000009.jnl";
  std::ofstream(zeros, std::ios::binary) << std::string(8192, '\0');
  absl::StatusOr<std::vector<std::string>> before = Env::Default()->ListDir(Dir());
  ASSERT_TRUE(before.ok());
  JournalOptions options;
  options.dir = Dir();
  options.volume_id = kVolumeId;
  options.read_only = true;
  absl::StatusOr<std::unique_ptr<WritebackJournal>> journal =
      WritebackJournal::Open(&env_, options, 0);
  ASSERT_TRUE(journal.ok()) << journal.status();
  std::vector<JournalRecord> records = ReplayAll(**journal);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].data, "kept");
  absl::StatusOr<WritebackJournal::Appended> appended = (*journal)->Append(5, 4, "more");
  EXPECT_EQ(GetFsErrorKind(appended.status()), FsErrorKind::kReadOnly);
  EXPECT_TRUE((*journal)->Sync().ok());
  EXPECT_TRUE((*journal)->Roll().ok());
  EXPECT_TRUE((*journal)->Remove((*journal)->Reclaimable()).ok());
  journal->reset();
  absl::StatusOr<std::vector<std::string>> after = Env::Default()->ListDir(Dir());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *before) << "a segment was made or removed (the zero-filled one too)";
  // No journal directory at all: nothing to replay, and none is made.
  options.dir = Dir() + "/none";
  journal = WritebackJournal::Open(&env_, options, 0);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_TRUE(ReplayAll(**journal).empty());
  EXPECT_FALSE(Env::Default()->Exists(options.dir));
}

// A cache disk filled up while the daemon was down: the journal opens,
// replays, and takes appends again once there is room.
TEST_F(WritebackJournalTest, AJournalOnAFullDiskOpensAndReplays) {
  {
    auto journal = OpenJournal(1);
    ASSERT_TRUE(journal->Append(5, 0, "kept").ok());
    ASSERT_TRUE(journal->Sync().ok());
  }
  env_.space_left = 0;
  auto journal = OpenJournal(100);
  ASSERT_NE(journal, nullptr) << "a full disk refused the journal";
  std::vector<JournalRecord> records = ReplayAll(*journal);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].data, "kept");
  absl::StatusOr<WritebackJournal::Appended> full = journal->Append(5, 4, "more");
  EXPECT_EQ(GetFsErrorKind(full.status()), FsErrorKind::kNoSpace) << full.status();
  env_.space_left = -1;
  absl::StatusOr<WritebackJournal::Appended> room = journal->Append(5, 4, "more");
  ASSERT_TRUE(room.ok()) << room.status();
  ASSERT_TRUE(journal->Sync().ok());
}

TEST_F(WritebackJournalTest, FullDiskFailsTheAppendAndKeepsEarlierRecords) {
  auto journal = OpenJournal(1);
  ASSERT_TRUE(journal->Append(5, 0, std::string(1000, 'a')).ok());
  env_.space_left = 500;
  absl::StatusOr<WritebackJournal::Appended> full =
      journal->Append(5, 1000, std::string(1000, 'b'));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(GetFsErrorKind(full.status()), FsErrorKind::kNoSpace);
  env_.space_left = -1;
  // The half-written record is never followed in its segment: the next
  // record goes to a new one.
  absl::StatusOr<WritebackJournal::Appended> later =
      journal->Append(5, 2000, std::string(1000, 'c'));
  ASSERT_TRUE(later.ok()) << later.status();
  journal.reset();
  auto reopened = OpenJournal(100);
  std::vector<JournalRecord> records = ReplayAll(*reopened);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].data, std::string(1000, 'a'));
  EXPECT_EQ(records[1].data, std::string(1000, 'c'));
}

TEST_F(WritebackJournalTest, FailedSyncIsReportedAndNeverLaterClaimedDurable) {
  auto journal = OpenJournal(1);
  absl::StatusOr<WritebackJournal::Appended> first = journal->Append(5, 0, "a");
  ASSERT_TRUE(first.ok());
  env_.fail_sync_number = env_.syncs + 1;
  absl::Status synced = journal->Sync();
  EXPECT_FALSE(synced.ok());
  EXPECT_TRUE(journal->SegmentFailed(first->segment));
  // A second sync does not pretend the failed segment is now durable...
  EXPECT_TRUE(journal->SegmentFailed(first->segment));
  // ...and new records go to a healthy segment that syncs.
  absl::StatusOr<WritebackJournal::Appended> second = journal->Append(5, 1, "b");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->segment, first->segment);
  EXPECT_TRUE(journal->Sync().ok());
  EXPECT_FALSE(journal->SegmentFailed(second->segment));
}

TEST_F(WritebackJournalTest, OnlySealedUnreferencedSegmentsAreReclaimed) {
  auto journal = OpenJournal(1, /*segment_bytes=*/200);
  absl::StatusOr<WritebackJournal::Appended> a = journal->Append(5, 0, std::string(100, 'a'));
  absl::StatusOr<WritebackJournal::Appended> b = journal->Append(5, 0, std::string(100, 'b'));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_NE(a->segment, b->segment);
  EXPECT_TRUE(journal->Reclaimable().empty()) << "both still referenced";
  journal->Unref(b->segment);
  EXPECT_TRUE(journal->Reclaimable().empty()) << "the active segment stays";
  journal->Unref(a->segment);
  EXPECT_EQ(journal->Reclaimable(), std::vector<uint64_t>{a->segment});
  size_t before = Segments().size();
  ASSERT_TRUE(journal->Remove(journal->Reclaimable()).ok());
  EXPECT_EQ(Segments().size(), before - 1);
}

TEST_F(WritebackJournalTest, RollLetsTheLastSegmentGoOnceItsRecordsAreCommitted) {
  auto journal = OpenJournal(1);
  absl::StatusOr<WritebackJournal::Appended> a = journal->Append(5, 0, "data");
  ASSERT_TRUE(a.ok());
  journal->Unref(a->segment);
  EXPECT_TRUE(journal->Reclaimable().empty()) << "the active segment is never reclaimed";
  ASSERT_TRUE(journal->Roll().ok());
  EXPECT_EQ(journal->Reclaimable(), std::vector<uint64_t>{a->segment});
  ASSERT_TRUE(journal->Remove(journal->Reclaimable()).ok());
  ASSERT_TRUE(journal->Roll().ok());  // an empty active segment stays as it is
  EXPECT_EQ(Segments().size(), 1u);
}

// fsync racing the reclaim of segments: a sync that picked a segment and
// waited for its turn while the segment was reclaimed must skip it, not
// fdatasync a closed file and report EIO (seen once as a failed fsync in
// bench/disks.sh).
TEST_F(WritebackJournalTest, SyncRacingSegmentReclaimNeverFails) {
  auto journal = OpenJournal(1);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, syncs{0};
  std::vector<std::thread> syncers;
  for (int t = 0; t < 2; ++t) {
    syncers.emplace_back([&] {
      while (!stop) {
        if (!journal->Sync().ok()) failures++;
        syncs++;
      }
    });
  }
  for (int round = 0; round < 300; ++round) {
    absl::StatusOr<WritebackJournal::Appended> a = journal->Append(5, round, "data");
    ASSERT_TRUE(a.ok());
    journal->Unref(a->segment);  // committed at once
    ASSERT_TRUE(journal->Roll().ok());
    ASSERT_TRUE(journal->Remove(journal->Reclaimable()).ok());
  }
  stop = true;
  for (std::thread& t : syncers) t.join();
  EXPECT_EQ(failures.load(), 0) << "of " << syncs.load() << " syncs";
}

// The cache over a journal: what a crashed daemon leaves is replayed.
// A blob store that can be told to refuse every Put, like a striped store
// with too few working disks.
class RefusingBlobStore : public BlobStore {
 public:
  BlobStore* base = nullptr;
  std::atomic<bool> refuse{false};
  // Each Put takes at least this long (an upload), and counts as in flight.
  absl::Duration put_time = absl::ZeroDuration();
  std::atomic<int> puts_in_flight{0};
  std::atomic<int> most_puts_in_flight{0};
  std::atomic<int> puts{0};
  // While set, Puts wait at the door.
  std::atomic<absl::Notification*> held{nullptr};
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override {
    if (absl::Notification* door = held.load()) door->WaitForNotification();
    ++puts;
    const int in_flight = ++puts_in_flight;
    for (int most = most_puts_in_flight; in_flight > most &&
                                         !most_puts_in_flight.compare_exchange_weak(most, in_flight);) {
    }
    absl::SleepFor(put_time);
    --puts_in_flight;
    if (refuse) return FsError(FsErrorKind::kIo, "cannot store data: too few disks work");
    return base->Put(id, data);
  }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override {
    return base->Read(id, offset, length);
  }
  absl::Status Delete(BlobId id) override { return base->Delete(id); }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return base->ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override { return base->Usage(); }
};

class JournaledCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    ns_options.gc_grace_seconds = 0;
    ns_ = std::move(*NamespaceStore::Open(dir_.path() + "/ns", ns_options));
    blobs_ = std::move(*LocalBlobStore::Open(dir_.path() + "/data"));
    store_.base = blobs_.get();
    Start();
  }
  // A new "mount": journal with a new epoch, cache, replay.
  void Start() {
    cache_.reset();
    journal_.reset();
    JournalOptions options;
    options.dir = dir_.path() + "/journal";
    options.volume_id = kVolumeId;
    options.segment_bytes = 1 << 20;
    journal_ = std::move(*WritebackJournal::Open(&env_, options, ++epoch_ << 40));
    FileDataCacheOptions cache_options;
    cache_options.background_threads = false;
    cache_options.journal = journal_.get();
    cache_options.store_threads = store_threads_;
    cache_options.clock = cache_clock_;
    cache_options.room_for_data = room_for_data_;
    cache_ = std::make_unique<FileDataCache>(*ns_, store_, cache_options);
    absl::StatusOr<WritebackJournal::ReplayStats> replayed = cache_->ReplayJournal();
    ASSERT_TRUE(replayed.ok()) << replayed.status();
    last_replay_ = *replayed;
  }
  // The daemon dies: nothing is flushed, memory is gone.
  void Crash() { Start(); }
  InodeId NewFile(const std::string& name) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    return ns_->MakeNode(kRootInode, name, node, {})->ino;
  }
  std::string ReadAll(InodeId ino) {
    auto data = cache_->Read(ino, 0, 1ull << 40);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.value_or("");
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
  uint64_t epoch_ = 0;
  int store_threads_ = 0;
  Clock* cache_clock_ = Clock::Default();
  std::function<absl::Status(uint64_t journal_bytes, uint64_t stored_bytes)> room_for_data_;
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<LocalBlobStore> blobs_;
  RefusingBlobStore store_;
  std::unique_ptr<WritebackJournal> journal_;
  std::unique_ptr<FileDataCache> cache_;
  WritebackJournal::ReplayStats last_replay_;
};

TEST_F(JournaledCacheTest, UnflushedWritesSurviveACrash) {
  InodeId small = NewFile("small"), big = NewFile("big");
  ASSERT_TRUE(cache_->Write(small, 0, "hello").ok());
  std::string expected(3 << 20, 'z');
  for (size_t i = 0; i < expected.size(); i += 4096) expected[i] = static_cast<char>(i / 4096);
  for (size_t off = 0; off < expected.size(); off += 128 << 10) {
    ASSERT_TRUE(cache_->Write(big, off, std::string_view(expected).substr(off, 128 << 10)).ok());
  }
  Crash();
  EXPECT_EQ(last_replay_.records, 1u + 24u);
  EXPECT_EQ(last_replay_.applied, 1u + 24u);
  EXPECT_EQ(ReadAll(small), "hello");
  EXPECT_EQ(ReadAll(big), expected);
  // The replay stored everything: a second crash applies nothing.
  Crash();
  EXPECT_EQ(last_replay_.applied, 0u);
  EXPECT_EQ(ReadAll(big), expected);
}

// With store threads (a shared volume's mount, no kernel writeback cache),
// a write that fills a blob returns once it is journaled: the store (an
// upload) overlaps the writer's next writes instead of holding it.
TEST_F(JournaledCacheTest, WithStoreThreadsAWriteReturnsBeforeTheStoreItStarts) {
  store_threads_ = 2;
  Start();
  InodeId f = NewFile("f");
  absl::Notification open_the_door;
  store_.held = &open_the_door;
  std::string expected(2 * kMaxBlobBytes, 'w');
  for (size_t i = 0; i < expected.size(); i += 4096) expected[i] = static_cast<char>(i / 4096);
  absl::Notification written;
  std::thread writer([&] {
    for (size_t off = 0; off < expected.size(); off += 1 << 20) {
      EXPECT_TRUE(cache_->Write(f, off, std::string_view(expected).substr(off, 1 << 20)).ok());
    }
    written.Notify();
  });
  const bool returned = written.WaitForNotificationWithTimeout(absl::Seconds(30));
  EXPECT_TRUE(returned) << "a write waited for the store it started";
  EXPECT_EQ(ReadAll(f), expected) << "the data not yet stored is read from memory";
  open_the_door.Notify();
  writer.join();
  store_.held = nullptr;
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  EXPECT_FALSE(cache_->HoldsUnstoredData(f));
  Crash();
  EXPECT_EQ(last_replay_.applied, 0u) << "everything was committed";
  EXPECT_EQ(ReadAll(f), expected);
}

// A store thread's failure loses nothing: the data stays in memory and the
// journal, the file's next store (its flush, or a write that fills a blob)
// tries again and reports the failure, and a crash replays the journal.
TEST_F(JournaledCacheTest, WithStoreThreadsAFailedStoreIsReportedAndReplayed) {
  store_threads_ = 2;
  Start();
  InodeId f = NewFile("f");
  store_.refuse = true;
  const std::string first(kMaxBlobBytes, 'a');
  for (size_t off = 0; off < first.size(); off += 1 << 20) {
    ASSERT_TRUE(cache_->Write(f, off, std::string_view(first).substr(off, 1 << 20)).ok())
        << "journaled: the store runs on a store thread";
  }
  EXPECT_FALSE(cache_->Flush(f).ok()) << "the flush waits for that store and reports it";
  absl::Status next_blob;
  const std::string second(kMaxBlobBytes, 'b');
  for (size_t off = 0; off < second.size() && next_blob.ok(); off += 1 << 20) {
    next_blob = cache_->Write(f, first.size() + off, std::string_view(second).substr(off, 1 << 20));
  }
  EXPECT_FALSE(next_blob.ok()) << "after a failed store, the write that fills a blob stores it";
  EXPECT_EQ(ReadAll(f).substr(0, first.size()), first);
  store_.refuse = false;
  Crash();
  EXPECT_EQ(ReadAll(f).substr(0, first.size()), first) << "replayed from the journal";
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_EQ(ReadAll(f).substr(0, first.size()), first);
}

// A close that waits for the file's store under way, which then fails
// (the bucket stopped answering and the client gave up), reports that
// failure rather than starting another store of everything: against a
// stalled bucket each attempt costs the client's whole retry budget
// (about 2 minutes), and close(2) took twice that. The next flush tries
// again.
TEST_F(JournaledCacheTest, AFlushThatWaitedForAFailedStoreReportsItWithoutStoringAgain) {
  store_threads_ = 2;
  Start();
  InodeId f = NewFile("f");
  store_.refuse = true;
  absl::Notification open_the_door;
  store_.held = &open_the_door;
  const std::string data(kMaxBlobBytes + (1 << 20), 'a');
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    ASSERT_TRUE(cache_->Write(f, off, std::string_view(data).substr(off, 1 << 20)).ok());
  }
  absl::Notification flushed;
  absl::Status flush_status;
  std::thread flusher([&] {
    flush_status = cache_->Flush(f);
    flushed.Notify();
  });
  // The flush waits for the store of the first blob, held at the door.
  EXPECT_FALSE(flushed.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  store_.held = nullptr;
  open_the_door.Notify();
  flusher.join();
  EXPECT_FALSE(flush_status.ok());
  // One store of at most the two blobs the 5 MiB make.
  EXPECT_LE(store_.puts.load(), 2) << "only the store it waited for ran";
  EXPECT_EQ(ReadAll(f), data) << "kept in memory";
  // The next flush tries again, and succeeds once the store takes data.
  store_.refuse = false;
  ASSERT_TRUE(cache_->Flush(f).ok());
  EXPECT_FALSE(cache_->HoldsUnstoredData(f));
  Crash();
  EXPECT_EQ(ReadAll(f), data);
}

// A store of several blobs sends them at once (each an upload that mostly
// waits), and commits them together.
TEST_F(JournaledCacheTest, WithStoreThreadsTheBlobsOfOneStoreGoOutAtOnce) {
  store_threads_ = 4;
  Start();
  store_.put_time = absl::Milliseconds(200);
  InodeId f = NewFile("f");
  const std::string data(3 * kMaxBlobBytes, 'p');
  ASSERT_TRUE(cache_->Write(f, 0, data).ok());
  ASSERT_TRUE(cache_->Flush(f).ok());
  store_.put_time = absl::ZeroDuration();
  EXPECT_GE(store_.most_puts_in_flight.load(), 2);
  EXPECT_EQ(ns_->GetExtents(f, 0, data.size())->size(), 3u);
  Crash();
  EXPECT_EQ(ReadAll(f), data);
}

// The times of writes the daemon had not committed die with it; the file
// whose writes a replay brings back takes the replay's time, never keeping
// one older than its data (make and rsync look for changes by it).
TEST_F(JournaledCacheTest, AFileWhoseWritesAReplayBringsBackTakesTheReplaysTime) {
  InodeId written = NewFile("written"), untouched = NewFile("untouched");
  const Timespec untouched_mtime = ns_->GetAttr(untouched)->mtime;
  ASSERT_TRUE(cache_->Write(written, 0, "bytes the replay brings back").ok());
  FakeClock replay_clock(Timespec{2000000000, 7});
  cache_clock_ = &replay_clock;
  Crash();
  EXPECT_EQ(ReadAll(written), "bytes the replay brings back");
  EXPECT_EQ(ns_->GetAttr(written)->mtime, (Timespec{2000000000, 7}));
  EXPECT_EQ(ns_->GetAttr(written)->ctime, (Timespec{2000000000, 7}));
  EXPECT_EQ(ns_->GetAttr(untouched)->mtime, untouched_mtime);
  cache_.reset();  // before the clock it uses goes
}

TEST_F(JournaledCacheTest, CommittedRecordsAreNotReappliedOverLaterChanges) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(10000, 'a')).ok());
  ASSERT_TRUE(cache_->Flush(f).ok());
  // Truncated after the flush: replaying the 'a' record would bring bytes
  // back that the file no longer has.
  SetAttrRequest shrink;
  shrink.size = 10;
  ASSERT_TRUE(cache_->SetAttrWithSize(f, shrink).ok());
  ASSERT_TRUE(cache_->Write(f, 5, "BB").ok());
  Crash();
  EXPECT_EQ(ReadAll(f), "aaaaaBBaaa");
}

// The truncate's record is committed with it (as the file's journal mark),
// so a replay does not apply it again over what was written after it: here
// large writes, committed in blobs with no record of their own.
TEST_F(JournaledCacheTest, ACommittedTruncateIsNotReplayedOverLargeWritesAfterIt) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, "head").ok());
  SetAttrRequest extend;
  extend.size = kMaxBlobBytes;
  ASSERT_TRUE(cache_->SetAttrWithSize(f, extend).ok());
  std::string tail(8 << 20, 't');
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      for (uint64_t off; (off = next.fetch_add(1 << 20)) < tail.size();) {
        EXPECT_TRUE(cache_->Write(f, kMaxBlobBytes + off, std::string_view(tail).substr(off, 1 << 20))
                        .ok());
      }
    });
  }
  for (std::thread& t : writers) t.join();
  ASSERT_TRUE(cache_->Flush(f).ok());
  Crash();
  std::string expected = "head" + std::string(kMaxBlobBytes - 4, '\0') + tail;
  std::string content = ReadAll(f);
  ASSERT_EQ(content.size(), expected.size()) << "the truncate was applied again";
  EXPECT_TRUE(content == expected);
}

TEST_F(JournaledCacheTest, TruncateOfDirtyDataSurvivesACrash) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(10000, 'a')).ok());
  SetAttrRequest shrink;
  shrink.size = 3;
  ASSERT_TRUE(cache_->SetAttrWithSize(f, shrink).ok());
  Crash();
  EXPECT_EQ(ReadAll(f), "aaa");
}

TEST_F(JournaledCacheTest, RecordsOfDeletedFilesAreSkipped) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, "doomed").ok());
  ASSERT_TRUE(ns_->Unlink(kRootInode, "f").ok());
  ASSERT_TRUE(ns_->ReleaseInode(f).ok());
  Crash();
  EXPECT_EQ(last_replay_.records, 1u);
  EXPECT_FALSE(ns_->GetAttr(f).ok());
}

TEST_F(JournaledCacheTest, FullCacheDiskSendsWritesStraightToBlobs) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, "before-").ok());
  env_.space_left = 0;
  ASSERT_TRUE(cache_->Write(f, 7, "during-full-disk").ok())
      << "a full cache disk slows writes down, it does not refuse them";
  EXPECT_GE(cache_->GetStats().write_through, 1u);
  env_.space_left = -1;
  Crash();
  EXPECT_EQ(ReadAll(f), "before-during-full-disk");
}

TEST_F(JournaledCacheTest, FsyncReportsAJournalSyncFailureAndLaterFsyncStoresTheData) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, "precious").ok());
  env_.fail_sync_number = env_.syncs + 1;
  EXPECT_FALSE(cache_->Fsync(f).ok()) << "a failed fsync is reported, never swallowed";
  // Retrying the fsync must not trust the journal segment that failed: the
  // data is stored as blobs, and then the fsync may succeed.
  ASSERT_TRUE(cache_->Fsync(f).ok());
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  Crash();
  EXPECT_EQ(ReadAll(f), "precious");
}

TEST_F(JournaledCacheTest, FsyncReportsThatDataCouldNotBeStoredAndSucceedsOnceItIs) {
  InodeId f = NewFile("f");
  std::string data(200 << 10, 'd');  // past the inline limit: needs a blob
  ASSERT_TRUE(cache_->Write(f, 0, data).ok());
  store_.refuse = true;
  EXPECT_FALSE(cache_->Flush(f).ok());
  absl::Status fsynced = cache_->Fsync(f);
  EXPECT_EQ(GetFsErrorKind(fsynced), FsErrorKind::kIo) << "the failure must reach the writer";
  store_.refuse = false;
  ASSERT_TRUE(cache_->Fsync(f).ok());
  EXPECT_EQ(cache_->GetStats().dirty_bytes, 0u);
  Crash();
  EXPECT_EQ(ReadAll(f), data);
}

// A data disk full (or too few disks) when the daemon died with journaled
// data: every later mount was refused ("could not replay the writeback
// journal"), so nothing could be deleted to make room. The replay now
// keeps what it cannot store dirty and journaled, and goes on.
TEST_F(JournaledCacheTest, AReplayThatCannotStoreKeepsTheDataJournaledAndGoesOn) {
  InodeId f = NewFile("f");
  std::string data(200 << 10, 'd');  // past the inline limit: needs a blob
  ASSERT_TRUE(cache_->Write(f, 0, data).ok());
  store_.refuse = true;
  Crash();  // Start() asserts that the replay succeeds
  EXPECT_EQ(last_replay_.unstored_bytes, data.size());
  EXPECT_NE(last_replay_.store_error.find("too few disks"), std::string::npos)
      << last_replay_.store_error;
  EXPECT_EQ(ReadAll(f), data) << "the replayed data is read from memory";
  EXPECT_FALSE(cache_->Fsync(f).ok()) << "fsync must not claim the data stored";
  // Still unstored at the next crash: it is replayed again, not lost.
  Crash();
  EXPECT_EQ(ReadAll(f), data);
  store_.refuse = false;
  ASSERT_TRUE(cache_->Fsync(f).ok());
  Crash();
  EXPECT_EQ(last_replay_.applied, 0u);
  EXPECT_EQ(last_replay_.unstored_bytes, 0u);
  EXPECT_EQ(ReadAll(f), data);
}

// The volume's floor (backend/volume/space_reserve.h) is asked for the
// bytes each step puts on disk: a write for what it journals, a store for
// what it stores. A refused write journals nothing and changes nothing; a
// refused store keeps the data journaled, and it is stored once there is
// room.
TEST_F(JournaledCacheTest, TheRoomAskedForIsWhatIsJournaledAndWhatIsStored) {
  std::vector<std::pair<uint64_t, uint64_t>> asked;
  std::atomic<bool> full{false};
  room_for_data_ = [&](uint64_t journal_bytes, uint64_t stored_bytes) -> absl::Status {
    asked.emplace_back(journal_bytes, stored_bytes);
    if (full) return FsError(FsErrorKind::kNoSpace, "the test's floor");
    return absl::OkStatus();
  };
  ASSERT_NO_FATAL_FAILURE(Start());
  InodeId f = NewFile("f");
  const std::string first(300 << 10, 'a'), second(200 << 10, 'b');
  ASSERT_TRUE(cache_->Write(f, 0, first).ok());
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], std::make_pair(uint64_t{300 << 10}, uint64_t{0}));
  ASSERT_TRUE(cache_->Fsync(f).ok());
  ASSERT_TRUE(cache_->Write(f, first.size(), second).ok());
  asked.clear();
  ASSERT_TRUE(cache_->Flush(f).ok());
  ASSERT_FALSE(asked.empty());
  // The file is stored whole again: its one small blob takes the new bytes.
  EXPECT_EQ(asked.back(), std::make_pair(uint64_t{0}, uint64_t{500 << 10}));

  full = true;
  const uint64_t appended = journal_->GetStats().appended_records;
  absl::Status refused = cache_->Write(f, 0, std::string(4096, 'x'));
  EXPECT_EQ(GetFsErrorKind(refused), FsErrorKind::kNoSpace) << refused;
  EXPECT_EQ(journal_->GetStats().appended_records, appended) << "a refused write was journaled";
  EXPECT_EQ(ReadAll(f), first + second);

  // Room for the journal, none for stores: the write waits in the journal.
  room_for_data_ = [&](uint64_t, uint64_t stored_bytes) -> absl::Status {
    if (stored_bytes > 0 && full) return FsError(FsErrorKind::kNoSpace, "the test's floor");
    return absl::OkStatus();
  };
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(cache_->Write(f, 0, std::string(4096, 'y')).ok());
  EXPECT_EQ(GetFsErrorKind(cache_->Flush(f)), FsErrorKind::kNoSpace);
  full = false;
  Crash();
  std::string expected = first + second;
  expected.replace(0, 4096, std::string(4096, 'y'));
  EXPECT_EQ(ReadAll(f), expected);
  ASSERT_TRUE(cache_->Flush(f).ok());
  Crash();
  EXPECT_EQ(last_replay_.applied, 0u) << "stored once there was room, nothing left to replay";
  EXPECT_EQ(ReadAll(f), expected);
}

TEST_F(JournaledCacheTest, FsyncDoesNotWaitForBlobs) {
  InodeId f = NewFile("f");
  ASSERT_TRUE(cache_->Write(f, 0, std::string(1 << 20, 'q')).ok());
  ASSERT_TRUE(cache_->Fsync(f).ok());
  EXPECT_EQ(cache_->GetStats().blobs_written, 0u) << "fsync is a journal sync";
  EXPECT_GT(cache_->GetStats().dirty_bytes, 0u);
  Crash();
  EXPECT_EQ(ReadAll(f), std::string(1 << 20, 'q'));
}

// Past its first blob, a sequential stream's WRITEs wait for their blob
// instead of being journaled too; a writer alone (nothing else will fill
// the blob) has its bytes journaled at once, never waiting for the pause.
TEST_F(JournaledCacheTest, AStreamWrittenByOneThreadIsJournaledAndSurvivesACrash) {
  InodeId f = NewFile("f");
  std::string data;
  for (int i = 0; i < 12; ++i) data += std::string(1 << 20, static_cast<char>('a' + i));
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    ASSERT_TRUE(cache_->Write(f, off, std::string_view(data).substr(off, 1 << 20)).ok());
  }
  FileDataCache::Stats stats = cache_->GetStats();
  EXPECT_EQ(stats.large_write_bytes, 8u << 20) << "all but the first blob's worth";
  EXPECT_EQ(stats.large_write_journaled_bytes, 6u << 20)
      << "each write but those that filled a blob: no other would have filled it";
  Crash();
  EXPECT_EQ(ReadAll(f), data);
}

// Writers in parallel, as the kernel's writeback sends them: a WRITE
// returns once its bytes are in a committed blob or in the journal, so a
// crash right after the last one loses nothing.
TEST_F(JournaledCacheTest, AParallelStreamSkipsTheJournalAndLosesNothingInACrash) {
  InodeId f = NewFile("f");
  constexpr uint64_t kPiece = 1 << 20;
  constexpr uint64_t kSize = 40ull << 20;
  std::string data(kSize, '\0');
  for (uint64_t i = 0; i < kSize; i += 4096) data[i] = static_cast<char>(i / 4096 * 7);
  std::atomic<uint64_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      for (uint64_t off; (off = next.fetch_add(kPiece)) < kSize;) {
        if (!cache_->Write(f, off, std::string_view(data).substr(off, kPiece)).ok()) failures++;
      }
    });
  }
  for (std::thread& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  FileDataCache::Stats stats = cache_->GetStats();
  EXPECT_GT(stats.large_write_bytes, 0u);
  std::cout << "stream bytes " << stats.large_write_bytes << ", journaled after all "
            << stats.large_write_journaled_bytes << "\n";
  Crash();
  EXPECT_EQ(ReadAll(f), data);
}

// A stream whose blobs cannot be stored (too few disks) still has every
// WRITE acknowledged only once it is safe: its bytes go to the journal.
TEST_F(JournaledCacheTest, AStreamWhoseStoresFailFallsBackToTheJournal) {
  InodeId f = NewFile("f");
  std::string data(12 << 20, 's');
  for (size_t i = 0; i < data.size(); i += 1 << 20) data[i] = static_cast<char>(i >> 20);
  store_.refuse = true;
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (uint64_t off; (off = next.fetch_add(1 << 20)) < data.size();) {
        (void)cache_->Write(f, off, std::string_view(data).substr(off, 1 << 20));
      }
    });
  }
  for (std::thread& t : writers) t.join();
  Crash();
  EXPECT_EQ(ReadAll(f), data) << "replayed from the journal";
  store_.refuse = false;
}

TEST_F(JournaledCacheTest, JournalLimitMakesWritersFlushAndFreeSegments) {
  cache_.reset();
  FileDataCacheOptions options;
  options.background_threads = false;
  options.journal = journal_.get();
  options.max_journal_bytes = 4 << 20;
  cache_ = std::make_unique<FileDataCache>(*ns_, *blobs_, options);
  InodeId f = NewFile("f");
  // Rewriting the same 64 KiB keeps little dirty data but grows the journal.
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(cache_->Write(f, 0, std::string(64 << 10, 'a' + i % 26)).ok());
  }
  EXPECT_LE(journal_->GetStats().bytes, (4u << 20) + (1u << 20))
      << "the journal stays near its limit (plus one segment)";
  Crash();
  EXPECT_EQ(ReadAll(f), std::string(64 << 10, 'a' + 199 % 26));
}

}  // namespace
}  // namespace cairn

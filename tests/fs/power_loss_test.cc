// Power loss through the whole stack, in the manner of leveldb's
// fault_injection_test: a seeded workload of creates, writes, truncates,
// renames, unlinks, fsyncs and flushes runs against a mounted volume (the
// filesystem over the write cache, the writeback journal, the erasure-coded
// striped store on three disks and the RocksDB namespace), all on a MemEnv.
// At a random point the power goes: everything not made durable is dropped
// (file data not fsynced, and names not covered by a directory fsync; with
// some seeds a torn prefix of the unsynced tail stays). The volume is opened
// again as a mount would and must:
// - open, and pass the namespace's own check;
// - show a namespace that existed at some instant since the last sync
//   (RocksDB's log is ordered, and every operation is one batch);
// - for every file it shows, hold the content the file had after one of its
//   writes at or after its last fsync: never older than what an fsync
//   acknowledged, never a mix that never existed, never bytes of a hole or
//   of another file; a write the journal split into records may be cut
//   between records, as a write(2) interrupted by a crash may be.
//
// The test fails when a durability step is removed. Measured on 200 seeds:
// without the File::Sync in WritebackJournal::Sync, 79 fail; without the
// directory sync after a journal segment is created, 85 fail, each with
//   "inode 5 (a): its content after the crash is none of the states since
//    its last fsync (0 bytes, expected one of 1 states)"
// It found one such gap when first written: the cache directory and the
// journal directory were created without syncing their parents, so the
// first mount's journal, fsynced records and all, could vanish.
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/volume/volume.h"
#include "cache/writeback_journal.h"
#include "fs/mounted_volume.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/mem_env.h"

namespace cairn {
namespace {

constexpr char kVolumeDir[] = "/vol";
// Sanitizer builds run several times slower: a quarter of the seeds there.
#ifdef CAIRN_SANITIZED
constexpr int kSeeds = 50;
#else
constexpr int kSeeds = 200;
#endif
// Past the first 4 MiB large writes skip the journal (they are committed in
// blobs before they return).
constexpr uint64_t kMaxFileBytes = 9 << 20;

// What the test knows of one file: the content its last fsync acknowledged,
// and each write and truncate since (kept as changes, not copies).
struct FileHistory {
  struct Change {
    uint64_t offset = 0;  // where `data` goes; for a truncate, the new size
    std::string data;
    bool truncate = false;
  };
  std::string durable;
  std::vector<Change> changes;
  std::string current;  // durable with every change applied

  static void Apply(const Change& change, std::string* content) {
    if (change.truncate) {
      content->resize(change.offset, '\0');
      return;
    }
    if (content->size() < change.offset + change.data.size()) {
      content->resize(change.offset + change.data.size(), '\0');
    }
    content->replace(change.offset, change.data.size(), change.data);
  }
  void Add(Change change) {
    Apply(change, &current);
    changes.push_back(std::move(change));
  }
  void Synced() {
    durable = current;
    changes.clear();
  }
  // Whether `content` is what the file held after one of its changes since
  // the last fsync, or at that fsync.
  bool HadContent(const std::string& content) const {
    std::string state = durable;
    if (state == content) return true;
    for (const Change& change : changes) {
      Apply(change, &state);
      if (state == content) return true;
    }
    return false;
  }
};

class PowerLossTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    rng_.seed(static_cast<uint32_t>(GetParam()) * 7919u + 1);
    io_.env = &env_;
    io_.clock = &clock_;
    // Room for the test's data; the namespace's reserve (1/64 of it) then
    // costs 4 MiB per open, not 64.
    env_.SetCapacity(256 << 20);
    FormatOptions format;
    format.disks = {"/disk0", "/disk1", "/disk2"};  // ec:2+1
    absl::StatusOr<VolumeConfig> config = FormatVolume(kVolumeDir, format, io_);
    ASSERT_TRUE(config.ok()) << config.status();
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  void Mount() {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(kVolumeDir, "", &env_);
    ASSERT_TRUE(config.ok()) << config.status();
    // A small journal segment size is not configurable; small dirty limits
    // make flushes (blob stores and namespace commits) happen mid-workload.
    config->max_dirty_bytes = 4 << 20;
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(kVolumeDir, *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    MountedVolume::Options options;
    options.background_flush = false;
    absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
        MountedVolume::Open(*volume_, options);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    mounted_ = std::move(*mounted);
  }

  // The power goes: nothing more reaches the disks, the daemon is gone
  // without closing anything, and what was not durable is dropped.
  void PowerCut() {
    env_.SetFilesystemActive(false);
    mounted_.reset();
    volume_.reset();
    env_.DropUnsyncedData(GetParam() % 3 == 0 ? GetParam() : 0);
    env_.SetFilesystemActive(true);
  }

  FileSystem& fs() { return mounted_->fs(); }

  std::string Pick(const std::vector<std::string>& names) {
    return names[rng_() % names.size()];
  }
  std::string RandomBytes(size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng_());
    return out;
  }

  // The namespace as names to inodes, for the paths the workload uses.
  std::map<std::string, InodeId> Names() {
    std::map<std::string, InodeId> names;
    for (const std::string& name : kNames) {
      absl::StatusOr<InodeAttr> attr = volume_->ns().Lookup(kRootInode, name);
      if (attr.ok()) names[name] = attr->ino;
    }
    return names;
  }

  void NoteNamespaceChange() { namespaces_.push_back(Names()); }
  // A sync point: the namespace as it is now is durable.
  void NoteSynced() { namespaces_ = {Names()}; }

  void Write(const std::string& name, InodeId ino) {
    uint64_t size = files_[ino].current.size();
    uint64_t offset = rng_() % 4 == 0 ? size : rng_() % (size + 1);
    // Mostly small writes; now and then more than a journal record (which
    // the cache splits) or a blob's worth, or a file growing by large
    // appends.
    uint64_t length = rng_() % 5 == 0 ? 1 + rng_() % (2 << 20) : 1 + rng_() % (64 << 10);
    if (large_append_one_in_ > 0 && rng_() % large_append_one_in_ == 0) {
      offset = size;
      length = (128 << 10) + rng_() % (2 << 20);
    }
    length = std::min<uint64_t>(length, kMaxFileBytes - std::min(offset, kMaxFileBytes));
    if (length == 0) return;
    std::string data = RandomBytes(length);
    absl::Status s = fs().Write(ino, offset, data);
    ASSERT_TRUE(s.ok()) << s;
    Note(absl::StrCat("write ", name, " (inode ", ino, ") ", length, " at ", offset));
    // One change per journal record the write became.
    for (uint64_t done = 0; done < length;) {
      uint64_t n = std::min<uint64_t>(length - done, WritebackJournal::kMaxRecordData);
      files_[ino].Add({offset + done, data.substr(done, n), false});
      done += n;
    }
  }

  void Note(const std::string& what) { log_.push_back(what); }

  void Step() {
    const int op = static_cast<int>(rng_() % 100);
    std::map<std::string, InodeId> names = Names();
    std::vector<std::string> present;
    for (const auto& [name, ino] : names) present.push_back(name);
    if (op < 15 || present.empty()) {  // create
      const std::string name = Pick(kNames);
      if (names.contains(name)) return;
      absl::StatusOr<InodeAttr> attr = fs().Create(kRootInode, name, 0644, Caller{});
      ASSERT_TRUE(attr.ok()) << attr.status();
      fs().Release(attr->ino, O_RDWR);
      fs().Forget(attr->ino, 1);
      files_[attr->ino] = FileHistory();
      Note(absl::StrCat("create ", name, " = inode ", attr->ino));
      NoteNamespaceChange();
    } else if (op < 55) {
      const std::string name = Pick(present);
      ASSERT_NO_FATAL_FAILURE(Write(name, names[name]));
    } else if (op < 65) {  // fsync: the file's content and the namespace
      const InodeId ino = names[Pick(present)];
      absl::Status s = fs().Fsync(ino);
      ASSERT_TRUE(s.ok()) << s;
      Note(absl::StrCat("fsync inode ", ino, " (", files_[ino].current.size(), " bytes)"));
      files_[ino].Synced();
      NoteSynced();
    } else if (op < 70) {  // truncate, through the cache as FUSE does
      const InodeId ino = names[Pick(present)];
      SetAttrRequest request;
      request.size = rng_() % (files_[ino].current.size() + 1);
      absl::StatusOr<InodeAttr> attr = fs().SetAttr(ino, request);
      ASSERT_TRUE(attr.ok()) << attr.status();
      files_[ino].Add({*request.size, "", true});
      Note(absl::StrCat("truncate inode ", ino, " to ", *request.size));
      NoteNamespaceChange();
    } else if (op < 78) {  // rename, over another file or not
      const std::string from = Pick(present), to = Pick(kNames);
      if (from == to) return;
      absl::Status s = fs().Rename(kRootInode, from, kRootInode, to, RenameMode::kReplace);
      ASSERT_TRUE(s.ok()) << s;
      Note(absl::StrCat("rename ", from, " to ", to));
      NoteNamespaceChange();
    } else if (op < 84) {  // unlink
      const std::string name = Pick(present);
      absl::Status s = fs().Unlink(kRootInode, name);
      ASSERT_TRUE(s.ok()) << s;
      Note("unlink " + name);
      NoteNamespaceChange();
    } else if (op < 92) {  // the flusher: blobs stored, commits made
      absl::Status s = mounted_->cache().FlushAll();
      ASSERT_TRUE(s.ok()) << s;
      Note("flush all");
    } else {  // fsync of the directory
      absl::Status s = fs().FsyncDir(kRootInode);
      ASSERT_TRUE(s.ok()) << s;
      Note("fsync /");
      NoteSynced();
    }
  }

  // The seed's workload, a power cut, a mount and the check; then the
  // volume goes on: what was recovered is stored and stays.
  void RunThenCutThePower() {
    const int steps = 20 + static_cast<int>(rng_() % 60);
    for (int i = 0; i < steps && !HasFatalFailure(); ++i) ASSERT_NO_FATAL_FAILURE(Step());
    PowerCut();
    ASSERT_NO_FATAL_FAILURE(Mount());
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash());
    absl::Status closed = mounted_->Close();
    EXPECT_TRUE(closed.ok()) << closed;
  }

  std::string Log() const {
    std::string out = "the workload:\n";
    for (const std::string& line : log_) absl::StrAppend(&out, "  ", line, "\n");
    return out;
  }

  void CheckAfterCrash() {
    SCOPED_TRACE(Log());
    absl::StatusOr<NamespaceCheckReport> check = volume_->ns().Check();
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_TRUE(check->problems.empty()) << check->problems.front();
    std::map<std::string, InodeId> names = Names();
    EXPECT_NE(std::find(namespaces_.begin(), namespaces_.end(), names), namespaces_.end())
        << "the namespace after the crash existed at no instant since the last sync ("
        << names.size() << " names)";
    for (const auto& [name, ino] : names) {
      auto known = files_.find(ino);
      ASSERT_NE(known, files_.end()) << name << " is inode " << ino << ", never created";
      absl::StatusOr<InodeAttr> attr = fs().GetAttr(ino);
      ASSERT_TRUE(attr.ok()) << attr.status();
      absl::StatusOr<std::string> content = fs().Read(ino, 0, attr->size + 1);
      ASSERT_TRUE(content.ok()) << name << ": " << content.status();
      EXPECT_TRUE(known->second.HadContent(*content))
          << "inode " << ino << " (" << name << "): its content after the crash is none of "
          << "the states since its last fsync (" << content->size() << " bytes, expected one "
          << "of " << known->second.changes.size() + 1 << " states)";
    }
  }

  const std::vector<std::string> kNames = {"a", "b", "c", "d", "e"};
  MemEnv env_;
  FakeClock clock_;
  Io io_;
  std::mt19937 rng_;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<MountedVolume> mounted_;
  std::map<InodeId, FileHistory> files_;
  std::vector<std::map<std::string, InodeId>> namespaces_{{}};
  std::vector<std::string> log_;
  // Files grow past 4 MiB by large appends (one write in this many; 0:
  // none), which skip the journal.
  uint32_t large_append_one_in_ = 0;
};

TEST_P(PowerLossTest, EveryAcknowledgedWriteSurvivesAPowerCut) {
  ASSERT_NO_FATAL_FAILURE(RunThenCutThePower());
}

// Large appends are committed in blobs without a journal record; a newer
// record of the file must never survive a power cut that loses them. With
// files this large, truncates followed by journaled writes also come up
// (seeds 45 and 72 lost a truncate before it was journaled).
TEST_P(PowerLossTest, LargeAppendsSurviveAPowerCutInOrder) {
  large_append_one_in_ = 6;
  ASSERT_NO_FATAL_FAILURE(RunThenCutThePower());
}

TEST_P(PowerLossTest, MostlyLargeAppendsSurviveAPowerCutInOrder) {
  large_append_one_in_ = 2;
  ASSERT_NO_FATAL_FAILURE(RunThenCutThePower());
}

INSTANTIATE_TEST_SUITE_P(Seeds, PowerLossTest, ::testing::Range(1, kSeeds + 1));

}  // namespace
}  // namespace cairn

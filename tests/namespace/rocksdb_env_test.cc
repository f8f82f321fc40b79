#include "backend/namespace/rocksdb_env.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/base/env_wrapper.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/namespace_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/file_system.h"
#include "rocksdb/system_clock.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fault_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

// Remembers every path the database asks the Env about, by kind of call.
class RecordingEnv : public EnvWrapper {
 public:
  explicit RecordingEnv(Env* base) : EnvWrapper(base) {}

  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                             uint32_t permissions) override {
    Record(mode == OpenMode::kRead ? reads_ : writes_, path);
    return EnvWrapper::Open(path, mode, permissions);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    Record(writes_, to);
    return EnvWrapper::Rename(from, to);
  }
  absl::Status Link(const std::string& existing, const std::string& new_path) override {
    Record(links_, new_path);
    return EnvWrapper::Link(existing, new_path);
  }
  absl::Status CreateDir(const std::string& path, uint32_t permissions) override {
    Record(writes_, path);
    return EnvWrapper::CreateDir(path, permissions);
  }
  absl::Status SyncDir(const std::string& path) override {
    Record(dir_syncs_, path);
    return EnvWrapper::SyncDir(path);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path,
                                                     uint32_t permissions) override {
    Record(writes_, path);
    return EnvWrapper::LockFile(path, permissions);
  }

  // Paths opened for reading.
  std::vector<std::string> reads() const { return Get(reads_); }
  // Paths opened for writing, created, renamed to, or locked.
  std::vector<std::string> writes() const { return Get(writes_); }
  std::vector<std::string> links() const { return Get(links_); }
  std::vector<std::string> dir_syncs() const { return Get(dir_syncs_); }

 private:
  void Record(std::vector<std::string>& list, const std::string& path) {
    absl::MutexLock lock(&mu_);
    list.push_back(path);
  }
  std::vector<std::string> Get(const std::vector<std::string>& list) const {
    absl::MutexLock lock(&mu_);
    return list;
  }

  mutable absl::Mutex mu_;
  std::vector<std::string> reads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> writes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> links_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> dir_syncs_ ABSL_GUARDED_BY(mu_);
};

std::set<std::string> NamesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

bool IsIn(const std::string& path, const std::string& dir) {
  return path == dir || path.rfind(dir + "/", 0) == 0;
}

class RocksDbEnvTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenStore(Env* env, Clock* clock,
                                                            bool read_only = false,
                                                            const std::string& path = "",
                                                            std::function<bool()> make_room = {}) {
    NamespaceOptions options;
    options.make_room = std::move(make_room);
    options.env = env;
    options.clock = clock;
    options.create_if_missing = !read_only;
    options.read_only = read_only;
    return NamespaceStore::Open(path.empty() ? db_dir_ : path, options);
  }
  static absl::Status MakeFile(NamespaceStore& store, const std::string& name) {
    NewNode node;
    node.mode = S_IFREG | 0644;
    return store.MakeNode(kRootInode, name, node, Caller{1000, 100}).status();
  }

  TempDir dir_;
  const std::string db_dir_ = dir_.path() + "/ns";
  FakeClock clock_;
};

TEST_F(RocksDbEnvTest, StoreOverFaultEnvCreatesClosesAndReopensWithItsData) {
  FaultEnv env(Env::Default());
  {
    auto store = OpenStore(&env, &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(MakeFile(**store, "kept").ok());
    ASSERT_TRUE((*store)->Sync().ok());
  }
  EXPECT_GT(env.writes.load(), 0);
  EXPECT_GT(env.syncs.load(), 0);
  const int reads_before = env.reads.load();
  auto store = OpenStore(&env, &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->Lookup(kRootInode, "kept").ok());
  EXPECT_GT(env.reads.load(), reads_before);
}

TEST_F(RocksDbEnvTest, EveryFileRocksDbUsesGoesThroughTheEnvAndStaysInTheDatabaseDirectory) {
  RecordingEnv env(Env::Default());
  for (int round = 0; round < 2; ++round) {
    // The second open replays the log into tables: reads and new tables.
    auto store = OpenStore(&env, &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(MakeFile(**store, "f" + std::to_string(round) + "-" + std::to_string(i)).ok());
    }
    ASSERT_TRUE((*store)->Sync().ok());
  }

  std::set<std::string> created;
  for (const std::string& path : env.writes()) {
    EXPECT_TRUE(IsIn(path, db_dir_)) << path;
    created.insert(BaseName(path));
  }
  for (const std::string& path : env.reads()) EXPECT_TRUE(IsIn(path, db_dir_)) << path;
  EXPECT_THAT(NamesIn(dir_.path()), ::testing::ElementsAre("ns"));
  for (const std::string& name : NamesIn(db_dir_)) {
    EXPECT_TRUE(created.count(name)) << name << " was not created through the Env";
  }
  EXPECT_FALSE(std::filesystem::exists(db_dir_ + "/LOG")) << "the info log must not be a file";

  std::set<std::string> read;
  for (const std::string& path : env.reads()) read.insert(BaseName(path));
  EXPECT_TRUE(read.count("CURRENT"));
  EXPECT_TRUE(std::any_of(read.begin(), read.end(),
                          [](const std::string& n) { return n.ends_with(".log"); }));
  EXPECT_TRUE(std::any_of(read.begin(), read.end(),
                          [](const std::string& n) { return n.ends_with(".sst"); }));
}

TEST_F(RocksDbEnvTest, CreatingTheDatabaseSyncsItsDirectory) {
  RecordingEnv env(Env::Default());
  auto store = OpenStore(&env, &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT(env.dir_syncs(), ::testing::Contains(db_dir_));
}

TEST_F(RocksDbEnvTest, FailedFsyncMakesSyncFailInsteadOfReportingSuccess) {
  FaultEnv env(Env::Default());
  auto store = OpenStore(&env, &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(MakeFile(**store, "synced").ok());
  ASSERT_TRUE((*store)->Sync().ok());
  ASSERT_TRUE(MakeFile(**store, "unsynced").ok());
  env.fail_sync_number = env.syncs.load() + 1;
  absl::Status synced = (*store)->Sync();

  EXPECT_FALSE(synced.ok());
  EXPECT_THAT(std::string(synced.message()), HasSubstr("injected fsync failure"));
  // The data may be gone whatever a later fsync says: asking again must
  // not turn the failure into a success.
  EXPECT_FALSE((*store)->Sync().ok());
}

TEST_F(RocksDbEnvTest, FullDiskFailsAChangeAndTheStoreReopensWithWhatWasSynced) {
  FaultEnv env(Env::Default());
  // The real clock: RocksDB's recovery from a full disk waits on deadlines
  // taken from this clock but measured in real time (see rocksdb_env.h).
  Clock* clock = Clock::Default();
  {
    auto store = OpenStore(&env, clock);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(MakeFile(**store, "synced" + std::to_string(i)).ok());
    ASSERT_TRUE((*store)->Sync().ok());

    env.space_left = 1000;
    // The loop stops at the first failure: after a failed log write, RocksDB
    // 7.8 as Debian builds it (assertions on) aborts the process in SyncWAL
    // (WritableFileWriter::AssertFalseAndGetStatusForPrevError, gone in 9.4).
    absl::Status failed;
    for (int i = 0; i < 1000 && failed.ok(); ++i) {
      failed = MakeFile(**store, "more" + std::to_string(i));
      if (failed.ok() && i % 10 == 9) failed = (*store)->Sync();
    }
    ASSERT_FALSE(failed.ok()) << "a full disk went unnoticed";

    EXPECT_EQ(GetFsErrorKind(failed), FsErrorKind::kNoSpace) << failed;
  }
  env.space_left = -1;
  auto store = OpenStore(&env, clock);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE((*store)->Lookup(kRootInode, "synced" + std::to_string(i)).ok()) << i;
  }
  EXPECT_TRUE(MakeFile(**store, "after").ok());
  EXPECT_TRUE((*store)->Sync().ok());
}

// A full disk must read as ENOSPC to every change while it lasts (not
// EIO), and changes go on by themselves once there is room: a volume that
// filled up once must not need a remount.
TEST_F(RocksDbEnvTest, ChangesOnAFullDiskFailWithNoSpaceAndGoOnOnceThereIsRoom) {
  FaultEnv env(Env::Default());
  auto store = OpenStore(&env, Clock::Default());  // RocksDB recovers in real time
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(MakeFile(**store, "before").ok());
  env.space_left = 1000;
  absl::Status failed;
  for (int i = 0; i < 1000 && failed.ok(); ++i) failed = MakeFile(**store, "f" + std::to_string(i));
  ASSERT_FALSE(failed.ok()) << "a full disk went unnoticed";
  EXPECT_EQ(GetFsErrorKind(failed), FsErrorKind::kNoSpace) << failed;
  for (int i = 0; i < 3; ++i) {
    absl::Status again = MakeFile(**store, "while-full" + std::to_string(i));
    EXPECT_EQ(GetFsErrorKind(again), FsErrorKind::kNoSpace) << again;
    EXPECT_EQ(GetFsErrorKind((*store)->Sync()), FsErrorKind::kNoSpace);
  }

  env.space_left = -1;
  absl::Status after;
  for (int i = 0; i < 200; ++i) {
    after = MakeFile(**store, "after" + std::to_string(i));
    if (after.ok()) break;
    EXPECT_EQ(GetFsErrorKind(after), FsErrorKind::kNoSpace) << after;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(after.ok()) << "changes did not go on within 10 s of room coming back: " << after;
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_TRUE((*store)->Lookup(kRootInode, "before").ok());
}

// The volume's reserve: the change that finds the disk full gets the room
// freed for it, and succeeds.
TEST_F(RocksDbEnvTest, TheChangeThatFindsTheDiskFullSucceedsWhenRoomIsMadeForIt) {
  FaultEnv env(Env::Default());
  int asked = 0;
  auto store = OpenStore(&env, Clock::Default(), false, "", [&] {
    ++asked;
    env.space_left = -1;
    return true;
  });
  ASSERT_TRUE(store.ok()) << store.status();
  env.space_left = 1000;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(MakeFile(**store, "f" + std::to_string(i)).ok()) << i;
  }
  EXPECT_EQ(asked, 1);
  ASSERT_TRUE((*store)->Sync().ok());
  store->reset();
  store = OpenStore(&env, Clock::Default());
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE((*store)->Lookup(kRootInode, "f" + std::to_string(i)).ok()) << i;
  }
}

TEST_F(RocksDbEnvTest, CheckpointLinksThroughTheEnvAndOpensReadOnly) {
  RecordingEnv env(Env::Default());
  const std::string checkpoint = dir_.path() + "/checkpoint";
  {
    auto store = OpenStore(&env, &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(MakeFile(**store, "f" + std::to_string(i)).ok());
    ASSERT_TRUE((*store)->CreateCheckpoint(checkpoint).ok());
  }
  // RocksDB builds the checkpoint in a staging directory, then renames it.
  EXPECT_FALSE(env.links().empty()) << "table files are hard-linked, through the Env";
  for (const std::string& path : env.links()) {
    EXPECT_TRUE(IsIn(path, checkpoint + ".tmp")) << path;
  }
  EXPECT_THAT(env.dir_syncs(), ::testing::Contains(checkpoint));

  const std::set<std::string> files = NamesIn(checkpoint);
  {
    auto copy = OpenStore(&env, &clock_, /*read_only=*/true, checkpoint);
    ASSERT_TRUE(copy.ok()) << copy.status();
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE((*copy)->Lookup(kRootInode, "f" + std::to_string(i)).ok()) << i;
    }
    EXPECT_FALSE(MakeFile(**copy, "refused").ok());
  }
  EXPECT_EQ(NamesIn(checkpoint), files) << "opening read-only must not add files";
}

TEST_F(RocksDbEnvTest, RocksDbTimeIsTheCairnClock) {
  std::unique_ptr<rocksdb::Env> rocks = NewRocksDbEnv(Env::Default(), &clock_);
  const int64_t start_sec = clock_.NowSeconds();
  const std::shared_ptr<rocksdb::SystemClock>& clock = rocks->GetSystemClock();
  EXPECT_EQ(clock->NowMicros(), static_cast<uint64_t>(start_sec) * 1000000);
  int64_t now = 0;
  ASSERT_TRUE(rocks->GetCurrentTime(&now).ok());
  EXPECT_EQ(now, start_sec);
  const uint64_t nanos = clock->NowNanos();
  rocks->SleepForMicroseconds(3000000);  // a fake clock moves on at once
  EXPECT_EQ(clock_.NowSeconds(), start_sec + 3);
  EXPECT_EQ(clock->NowNanos() - nanos, 3000000000u);
  EXPECT_EQ(rocks->NowMicros(), static_cast<uint64_t>(start_sec + 3) * 1000000);
}

TEST_F(RocksDbEnvTest, ErrorsKeepTheirKindAndMessage) {
  FaultEnv env(Env::Default());
  std::unique_ptr<rocksdb::Env> rocks = NewRocksDbEnv(&env, &clock_);
  const std::shared_ptr<rocksdb::FileSystem>& fs = rocks->GetFileSystem();
  const rocksdb::IOOptions io;
  const std::string absent = dir_.path() + "/absent";

  uint64_t size = 0;
  rocksdb::IOStatus s = fs->GetFileSize(absent, io, &size, nullptr);
  EXPECT_TRUE(s.IsPathNotFound()) << s.ToString();
  EXPECT_THAT(s.ToString(), HasSubstr(absent));
  EXPECT_TRUE(fs->FileExists(absent, io, nullptr).IsNotFound());
  std::vector<std::string> children;
  EXPECT_TRUE(fs->GetChildren(absent, io, &children, nullptr).IsNotFound());

  std::unique_ptr<rocksdb::FSWritableFile> file;
  ASSERT_TRUE(fs->NewWritableFile(dir_.path() + "/f", rocksdb::FileOptions(), &file, nullptr).ok());
  env.space_left = 3;
  s = file->Append("hello", io, nullptr);
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_THAT(s.ToString(), HasSubstr("injected ENOSPC"));

  env.space_left = -1;
  env.fail_sync_number = env.syncs.load() + 1;
  s = file->Sync(io, nullptr);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_THAT(s.ToString(), HasSubstr("injected fsync failure"));
}

TEST_F(RocksDbEnvTest, WritableFilesAppendReopenAndTruncateLikePosix) {
  std::unique_ptr<rocksdb::Env> rocks = NewRocksDbEnv(Env::Default(), &clock_);
  const std::shared_ptr<rocksdb::FileSystem>& fs = rocks->GetFileSystem();
  const rocksdb::IOOptions io;
  const rocksdb::FileOptions options;
  const std::string path = dir_.path() + "/f";
  auto contents = [&] {
    std::string data;
    EXPECT_TRUE(rocksdb::ReadFileToString(fs.get(), path, &data).ok());
    return data;
  };

  std::unique_ptr<rocksdb::FSWritableFile> file;
  ASSERT_TRUE(fs->NewWritableFile(path, options, &file, nullptr).ok());
  ASSERT_TRUE(file->Append("abc", io, nullptr).ok());
  ASSERT_TRUE(file->Append("def", io, nullptr).ok());
  EXPECT_EQ(file->GetFileSize(io, nullptr), 6u);
  ASSERT_TRUE(file->Close(io, nullptr).ok());

  ASSERT_TRUE(fs->ReopenWritableFile(path, options, &file, nullptr).ok());
  ASSERT_TRUE(file->Append("g", io, nullptr).ok());
  ASSERT_TRUE(file->Sync(io, nullptr).ok());
  ASSERT_TRUE(file->Close(io, nullptr).ok());
  EXPECT_EQ(contents(), "abcdefg");

  ASSERT_TRUE(fs->ReopenWritableFile(path, options, &file, nullptr).ok());
  ASSERT_TRUE(file->Truncate(2, io, nullptr).ok());
  ASSERT_TRUE(file->Append("X", io, nullptr).ok());
  ASSERT_TRUE(file->Close(io, nullptr).ok());
  EXPECT_EQ(contents(), "abX");

  ASSERT_TRUE(fs->NewWritableFile(path, options, &file, nullptr).ok());
  ASSERT_TRUE(file->Close(io, nullptr).ok());
  EXPECT_EQ(contents(), "") << "a new writable file replaces what was there";
}

TEST_F(RocksDbEnvTest, RandomAccessReadsRunConcurrently) {
  std::unique_ptr<rocksdb::Env> rocks = NewRocksDbEnv(Env::Default(), &clock_);
  const std::shared_ptr<rocksdb::FileSystem>& fs = rocks->GetFileSystem();
  const std::string path = dir_.path() + "/f";
  std::string data;
  for (int i = 0; i < 65536; ++i) data.push_back(static_cast<char>(i * 7 + i / 256));
  ASSERT_TRUE(rocksdb::WriteStringToFile(fs.get(), data, path, /*should_sync=*/true).ok());

  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  ASSERT_TRUE(fs->NewRandomAccessFile(path, rocksdb::FileOptions(), &file, nullptr).ok());
  std::vector<std::thread> readers;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      char scratch[512];
      for (int i = 0; i < 500; ++i) {
        const uint64_t offset = (i * 997 + t * 131) % (data.size() - 100);
        rocksdb::Slice got;
        if (!file->Read(offset, 512, rocksdb::IOOptions(), &got, scratch, nullptr).ok() ||
            got.ToString() != data.substr(offset, 512)) {
          ++mismatches;
        }
      }
    });
  }
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(mismatches.load(), 0);

  rocksdb::Slice tail;
  char scratch[512];
  ASSERT_TRUE(file->Read(data.size() - 10, 512, rocksdb::IOOptions(), &tail, scratch, nullptr).ok());
  EXPECT_EQ(tail.size(), 10u) << "a short read only at the end of the file";
}

}  // namespace
}  // namespace cairn

#include "backend/namespace/rocksdb_env.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

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

class RocksDbEnvTest : public ::testing::Test {
 protected:
  TempDir dir_;
  FakeClock clock_;
};

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

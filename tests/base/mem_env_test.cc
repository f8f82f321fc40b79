#include "tests/support/mem_env.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"

namespace cairn {
namespace {

constexpr char kMissing[] = "<missing>";

class MemEnvTest : public ::testing::Test {
 protected:
  // Creates (or empties) `path` with `content`, syncing neither the data
  // nor the name.
  void Write(const std::string& path, const std::string& content) {
    absl::StatusOr<std::unique_ptr<File>> file = env_.Open(path, OpenMode::kCreateOrTruncate);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->PWrite(0, content).ok());
  }
  // The data of `path` durable, its name not.
  void WriteSynced(const std::string& path, const std::string& content) {
    ASSERT_TRUE(WriteFileSynced(&env_, path, content).ok());
  }
  std::string Read(const std::string& path) {
    absl::StatusOr<std::string> content = ReadFileToString(&env_, path);
    if (IsNotFoundError(content.status())) return kMissing;
    if (!content.ok()) return std::string(content.status().message());
    return *content;
  }
  std::vector<std::string> List(const std::string& path) {
    absl::StatusOr<std::vector<std::string>> names = env_.ListDir(path);
    EXPECT_TRUE(names.ok()) << names.status();
    return names.ok() ? *names : std::vector<std::string>{};
  }
  std::unique_ptr<File> OpenOrDie(const std::string& path, OpenMode mode) {
    absl::StatusOr<std::unique_ptr<File>> file = env_.Open(path, mode);
    EXPECT_TRUE(file.ok()) << file.status();
    return file.ok() ? std::move(*file) : nullptr;
  }
  uint64_t Available() { return env_.StatFs("/")->available_bytes; }

  FakeClock clock_;
  MemEnv env_{&clock_};
};

// --- Power cuts

TEST_F(MemEnvTest, DataWrittenButNotSyncedIsGoneAfterAPowerCut) {
  WriteSynced("/f", "durable");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(file->PWrite(0, "DUR").ok());
  ASSERT_TRUE(file->PWrite(7, " and more").ok());
  EXPECT_EQ(Read("/f"), "DURable and more");

  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/f"), "durable");
}

TEST_F(MemEnvTest, FileNeverSyncedIsEmptyAfterAPowerCut) {
  Write("/f", "lost");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/f"), "");
}

TEST_F(MemEnvTest, TruncationNotSyncedIsUndoneByAPowerCut) {
  WriteSynced("/f", "0123456789");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kReadWrite)->Truncate(3).ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/f"), "0123456789");
}

TEST_F(MemEnvTest, FileCreatedWithoutDirectorySyncVanishesAfterAPowerCut) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  WriteSynced("/d/f", "synced data, unsynced name");
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/d/f"), kMissing);
  EXPECT_TRUE(List("/d").empty());
}

TEST_F(MemEnvTest, DirectoryNotSyncedInItsParentVanishesWithItsContents) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  WriteSynced("/d/f", "x");
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  env_.DropUnsyncedData();
  EXPECT_FALSE(env_.Exists("/d"));
  EXPECT_TRUE(List("/").empty());
}

TEST_F(MemEnvTest, RemovedFileComesBackWithoutDirectorySync) {
  WriteSynced("/f", "still here");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(env_.Remove("/f").ok());
  ASSERT_FALSE(env_.Exists("/f"));
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/f"), "still here");

  ASSERT_TRUE(env_.Remove("/f").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/f"), kMissing);
}

TEST_F(MemEnvTest, RemovedDirectoryComesBackWithoutParentSync) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(env_.RemoveDir("/d").ok());
  env_.DropUnsyncedData();
  EXPECT_TRUE(env_.Stat("/d")->is_directory);
}

TEST_F(MemEnvTest, RenameNotCoveredByDirectorySyncReverts) {
  WriteSynced("/a", "A");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(env_.Rename("/a", "/b").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/a"), "A");
  EXPECT_EQ(Read("/b"), kMissing);

  ASSERT_TRUE(env_.Rename("/a", "/b").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/a"), kMissing);
  EXPECT_EQ(Read("/b"), "A");
}

TEST_F(MemEnvTest, RenameOverAFileRevertsToTheOldTargetWithoutDirectorySync) {
  WriteSynced("/target", "old");
  WriteSynced("/temp", "new");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(env_.Rename("/temp", "/target").ok());
  EXPECT_EQ(Read("/target"), "new");
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/target"), "old");
  EXPECT_EQ(Read("/temp"), "new");
}

TEST_F(MemEnvTest, RenameBetweenDirectoriesRevertsWhereItWasNotSynced) {
  for (const char* dir : {"/from", "/to"}) ASSERT_TRUE(env_.CreateDir(dir).ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  WriteSynced("/from/f", "F");
  ASSERT_TRUE(env_.SyncDir("/from").ok());

  // Only the target synced: the file is found under both names.
  ASSERT_TRUE(env_.Rename("/from/f", "/to/f").ok());
  ASSERT_TRUE(env_.SyncDir("/to").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/from/f"), "F");
  EXPECT_EQ(Read("/to/f"), "F");
  EXPECT_EQ(env_.Stat("/from/f")->inode, env_.Stat("/to/f")->inode);

  // Only the source synced: the file is under neither.
  ASSERT_TRUE(env_.Remove("/to/f").ok());
  ASSERT_TRUE(env_.SyncDir("/to").ok());
  ASSERT_TRUE(env_.Rename("/from/f", "/to/f").ok());
  ASSERT_TRUE(env_.SyncDir("/from").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/from/f"), kMissing);
  EXPECT_EQ(Read("/to/f"), kMissing);
}

TEST_F(MemEnvTest, DirectoryThatAPartlySyncedRenameShowsTwiceKeepsOneName) {
  for (const char* dir : {"/a", "/b", "/a/sub"}) ASSERT_TRUE(env_.CreateDir(dir).ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  ASSERT_TRUE(env_.SyncDir("/a").ok());
  ASSERT_TRUE(env_.Rename("/a/sub", "/b/sub").ok());
  ASSERT_TRUE(env_.SyncDir("/b").ok());
  env_.DropUnsyncedData();
  EXPECT_TRUE(env_.Exists("/a/sub"));
  EXPECT_FALSE(env_.Exists("/b/sub"));
}

TEST_F(MemEnvTest, SyncedFileAndDirectorySurvive) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  WriteSynced("/d/f", "kept");
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  ASSERT_TRUE(env_.Link("/d/f", "/d/g").ok());
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/d/f"), "kept");
  EXPECT_EQ(Read("/d/g"), "kept");
  EXPECT_EQ(List("/d"), (std::vector<std::string>{"f", "g"}));
}

TEST_F(MemEnvTest, SyncFilesystemMakesEverythingDurable) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.CreateDir("/d/e").ok());
  Write("/d/e/f", "all of it");
  ASSERT_TRUE(env_.SyncFilesystem("/d").ok());
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/d/e/f"), "all of it");
}

TEST_F(MemEnvTest, TornWriteKeepsASeededPrefixOfTheUnsyncedTail) {
  const std::string synced = "0123456789";
  std::string tail;
  for (int i = 0; i < 1000; ++i) tail += static_cast<char>('a' + i % 26);
  std::set<size_t> lengths;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    MemEnv env(&clock_);
    ASSERT_TRUE(WriteFileSynced(&env, "/f", synced).ok());
    ASSERT_TRUE(env.SyncDir("/").ok());
    std::unique_ptr<File> file = *env.Open("/f", OpenMode::kReadWrite);
    ASSERT_TRUE(file->PWrite(2, "XX").ok());  // inside the synced length: reverts
    ASSERT_TRUE(file->PWrite(synced.size(), tail).ok());

    env.DropUnsyncedData(seed);
    const std::string after = *ReadFileToString(&env, "/f");
    ASSERT_GE(after.size(), synced.size());
    EXPECT_EQ(after.substr(0, synced.size()), synced) << seed;
    EXPECT_EQ(after.substr(synced.size()), tail.substr(0, after.size() - synced.size()))
        << seed;
    lengths.insert(after.size());

    // The same seed over the same history tears the same way.
    MemEnv again(&clock_);
    ASSERT_TRUE(WriteFileSynced(&again, "/f", synced).ok());
    ASSERT_TRUE(again.SyncDir("/").ok());
    ASSERT_TRUE((*again.Open("/f", OpenMode::kReadWrite))->PWrite(synced.size(), tail).ok());
    again.DropUnsyncedData(seed);
    EXPECT_EQ(*ReadFileToString(&again, "/f"), after) << seed;
  }
  EXPECT_GT(lengths.size(), 5u) << "seeds should tear at different places";
}

TEST_F(MemEnvTest, FileHandlesFromBeforeAPowerCutFailWithIo) {
  WriteSynced("/f", "data");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  absl::StatusOr<std::unique_ptr<Directory>> dir = env_.OpenDirectory("/d");
  ASSERT_TRUE(dir.ok());

  env_.DropUnsyncedData();
  EXPECT_EQ(GetFsErrorKind(file->PWrite(0, "x")), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(file->PRead(0, 4).status()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(file->Sync()), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(file->Truncate(0)), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(file->Size().status()), FsErrorKind::kIo);
  EXPECT_TRUE(file->Close().ok());
  EXPECT_EQ(GetFsErrorKind(env_.Stat((*dir)->path() + "/x").status()), FsErrorKind::kIo);
  file.reset();
  dir->reset();
  EXPECT_EQ(Read("/f"), "data");
}

// --- Files and links

TEST_F(MemEnvTest, HardLinkSharesData) {
  Write("/a", "shared");
  ASSERT_TRUE(env_.Link("/a", "/b").ok());
  EXPECT_EQ(env_.Stat("/a")->inode, env_.Stat("/b")->inode);
  ASSERT_TRUE(OpenOrDie("/b", OpenMode::kReadWrite)->PWrite(0, "SH").ok());
  EXPECT_EQ(Read("/a"), "SHared");
  ASSERT_TRUE(env_.Remove("/a").ok());
  EXPECT_EQ(Read("/b"), "SHared");

  EXPECT_EQ(GetFsErrorKind(env_.Link("/b", "/b")), FsErrorKind::kExists);
  EXPECT_EQ(GetFsErrorKind(env_.Link("/missing", "/c")), FsErrorKind::kNotFound);
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  EXPECT_EQ(GetFsErrorKind(env_.Link("/d", "/e")), FsErrorKind::kNotPermitted);
}

TEST_F(MemEnvTest, OpenModesFollowPosix) {
  EXPECT_EQ(GetFsErrorKind(env_.Open("/f", OpenMode::kRead).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.Open("/f", OpenMode::kWriteExisting).status()),
            FsErrorKind::kNotFound);
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kReadWrite)->PWrite(0, "kept").ok());
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kReadWrite) != nullptr);
  EXPECT_EQ(Read("/f"), "kept");
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kWriteExisting)->PWrite(0, "K").ok());
  EXPECT_EQ(Read("/f"), "Kept");
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kCreateOrTruncate) != nullptr);
  EXPECT_EQ(Read("/f"), "");
  EXPECT_EQ(GetFsErrorKind(env_.Open("/f", OpenMode::kCreateExclusive).status()),
            FsErrorKind::kExists);
  EXPECT_EQ(GetFsErrorKind(env_.Open("/f", OpenMode::kCreateExclusiveDirect).status()),
            FsErrorKind::kExists);
  EXPECT_TRUE(env_.Open("/g", OpenMode::kCreateExclusive).ok());

  EXPECT_EQ(GetFsErrorKind(env_.Open("/no/f", OpenMode::kReadWrite).status()),
            FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.Open("/f/g", OpenMode::kReadWrite).status()),
            FsErrorKind::kNotDirectory);
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  for (OpenMode mode : {OpenMode::kRead, OpenMode::kReadWrite, OpenMode::kCreateOrTruncate}) {
    EXPECT_EQ(GetFsErrorKind(env_.Open("/d", mode).status()), FsErrorKind::kIsDirectory);
  }

  std::unique_ptr<File> reader = OpenOrDie("/f", OpenMode::kRead);
  EXPECT_EQ(GetFsErrorKind(reader->PWrite(0, "x")), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(reader->Truncate(0)), FsErrorKind::kInvalid);
  std::unique_ptr<File> writer = OpenOrDie("/f", OpenMode::kWriteExisting);
  EXPECT_EQ(GetFsErrorKind(writer->PRead(0, 1).status()), FsErrorKind::kIo);
}

TEST_F(MemEnvTest, ReadsStopAtEndOfFileAndWritesPastItFillWithZeros) {
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(file->PWrite(4, "end").ok());
  EXPECT_EQ(*file->Size(), 7u);
  EXPECT_EQ(*file->PRead(0, 100), std::string("\0\0\0\0end", 7));
  EXPECT_EQ(*file->PRead(5, 100), "nd");
  EXPECT_EQ(*file->PRead(100, 1), "");
  ASSERT_TRUE(file->Truncate(2).ok());
  EXPECT_EQ(*file->Size(), 2u);
  ASSERT_TRUE(file->Close().ok());
  EXPECT_EQ(GetFsErrorKind(file->PRead(0, 1).status()), FsErrorKind::kIo);
}

TEST_F(MemEnvTest, RemovedFileStaysUsableThroughAnOpenHandle) {
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(env_.Remove("/f").ok());
  ASSERT_TRUE(file->PWrite(0, "orphan").ok());
  EXPECT_EQ(*file->PRead(0, 6), "orphan");
  EXPECT_FALSE(env_.Exists("/f"));
}

TEST_F(MemEnvTest, DirectFileRefusesUnalignedWrites) {
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kCreateExclusiveDirect);
  std::unique_ptr<char, decltype(&free)> buffer(static_cast<char*>(aligned_alloc(4096, 8192)),
                                                &free);
  memset(buffer.get(), 'z', 8192);
  EXPECT_EQ(GetFsErrorKind(file->PWrite(0, std::string_view(buffer.get(), 100))),
            FsErrorKind::kInvalid);
  EXPECT_EQ(GetFsErrorKind(file->PWrite(1, std::string_view(buffer.get(), 4096))),
            FsErrorKind::kInvalid);
  EXPECT_EQ(GetFsErrorKind(file->PWrite(0, std::string_view(buffer.get() + 1, 4096))),
            FsErrorKind::kInvalid);
  ASSERT_TRUE(file->PWrite(0, std::string_view(buffer.get(), 8192)).ok());
  ASSERT_TRUE(file->Truncate(5000).ok());
  EXPECT_EQ(Read("/f"), std::string(5000, 'z'));
}

TEST_F(MemEnvTest, StatDescribesTheNode) {
  clock_.Set(Timespec{1800000000, 0});
  Write("/f", "12345");
  ASSERT_TRUE(env_.CreateDir("/d", 0700).ok());
  absl::StatusOr<FileInfo> file = env_.Stat("/f");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(file->is_regular);
  EXPECT_FALSE(file->is_directory);
  EXPECT_FALSE(file->is_symlink);
  EXPECT_EQ(file->size, 5u);
  EXPECT_EQ(file->permissions, 0600u);
  EXPECT_EQ(file->uid, 0u);
  EXPECT_EQ(file->gid, 0u);
  EXPECT_EQ(file->device, 1u);
  EXPECT_EQ(file->modified_sec, 1800000000);
  absl::StatusOr<FileInfo> dir = env_.Stat("/d", /*follow_symlinks=*/false);
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE(dir->is_directory);
  EXPECT_EQ(dir->permissions, 0700u);
  EXPECT_NE(dir->inode, file->inode);
  EXPECT_NE(env_.Stat("/")->inode, file->inode);

  ASSERT_TRUE(env_.SetModifiedTime("/f", 12345).ok());
  ASSERT_TRUE(env_.SetPermissions("/f", 0600).ok());
  EXPECT_EQ(env_.Stat("/f")->modified_sec, 12345);
  EXPECT_EQ(env_.Stat("/f")->permissions, 0600u);
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(OpenOrDie("/f", OpenMode::kReadWrite)->PWrite(0, "x").ok());
  EXPECT_EQ(env_.Stat("/f")->modified_sec, 1800000010);

  EXPECT_EQ(GetFsErrorKind(env_.Stat("/missing").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.SetPermissions("/missing", 0600)), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.SetModifiedTime("/missing", 1)), FsErrorKind::kNotFound);
}

TEST_F(MemEnvTest, PathsAreNormalised) {
  ASSERT_TRUE(env_.CreateDir("/a").ok());
  Write("//a/./b/../c", "C");
  EXPECT_EQ(Read("/a/c"), "C");
  EXPECT_EQ(Read("a/c"), "C");
  EXPECT_EQ(Read("/../a//c/"), "C");
  EXPECT_EQ(List("/a/.."), (std::vector<std::string>{"a"}));
}

// --- Directories

TEST_F(MemEnvTest, DirectoryErrorsFollowPosix) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  EXPECT_TRUE(env_.CreateDir("/d").ok());
  EXPECT_EQ(GetFsErrorKind(env_.CreateDir("/no/d")), FsErrorKind::kNotFound);
  Write("/d/f", "");
  EXPECT_EQ(GetFsErrorKind(env_.RemoveDir("/d")), FsErrorKind::kNotEmpty);
  EXPECT_EQ(GetFsErrorKind(env_.RemoveDir("/d/f")), FsErrorKind::kNotDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.Remove("/d")), FsErrorKind::kIsDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.ListDir("/d/f").status()), FsErrorKind::kNotDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.ListDir("/no").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.SyncDir("/d/f")), FsErrorKind::kNotDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.SyncDir("/no")), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.OpenDirectory("/d/f").status()), FsErrorKind::kNotDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.RemoveDir("/")), FsErrorKind::kBusy);
  EXPECT_TRUE(env_.Remove("/d/absent").ok());
  EXPECT_TRUE(env_.Remove("/no/absent").ok());
  EXPECT_TRUE(env_.RemoveDir("/absent").ok());
  ASSERT_TRUE(env_.Remove("/d/f").ok());
  EXPECT_TRUE(env_.RemoveDir("/d").ok());
  EXPECT_FALSE(env_.Exists("/d"));
}

TEST_F(MemEnvTest, RenameReplacesTargetsAsPosixDoes) {
  Write("/a", "A");
  Write("/b", "B");
  ASSERT_TRUE(env_.Rename("/a", "/b").ok());
  EXPECT_EQ(Read("/b"), "A");
  EXPECT_FALSE(env_.Exists("/a"));

  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.CreateDir("/empty").ok());
  Write("/d/f", "F");
  ASSERT_TRUE(env_.Rename("/d", "/empty").ok());
  EXPECT_EQ(Read("/empty/f"), "F");
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.CreateDir("/d/sub").ok());

  EXPECT_EQ(GetFsErrorKind(env_.Rename("/empty", "/d")), FsErrorKind::kNotEmpty);
  EXPECT_EQ(GetFsErrorKind(env_.Rename("/b", "/d")), FsErrorKind::kIsDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.Rename("/d", "/b")), FsErrorKind::kNotDirectory);
  EXPECT_EQ(GetFsErrorKind(env_.Rename("/d", "/d/sub/d")), FsErrorKind::kInvalid);
  EXPECT_EQ(GetFsErrorKind(env_.Rename("/missing", "/x")), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.Rename("/b", "/no/x")), FsErrorKind::kNotFound);
  ASSERT_TRUE(env_.Link("/b", "/c").ok());
  EXPECT_TRUE(env_.Rename("/b", "/c").ok());  // two names of one file: nothing happens
  EXPECT_TRUE(env_.Exists("/b"));
}

TEST_F(MemEnvTest, DirectoryReplacedUnderItsPathHasANewIdentity) {
  ASSERT_TRUE(env_.CreateDir("/disk").ok());
  Write("/disk/marker", "first disk");
  absl::StatusOr<std::unique_ptr<Directory>> held = env_.OpenDirectory("/disk");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)->info().inode, env_.Stat("/disk")->inode);
  EXPECT_EQ((*held)->info().device, env_.Stat("/disk")->device);

  ASSERT_TRUE(env_.Rename("/disk", "/unmounted").ok());
  ASSERT_TRUE(env_.CreateDir("/disk").ok());
  EXPECT_NE(env_.Stat("/disk")->inode, (*held)->info().inode);

  // Paths through the handle still reach the directory that was opened.
  const std::string root = (*held)->path();
  EXPECT_EQ(Read(root + "/marker"), "first disk");
  Write(root + "/shard", "S");
  EXPECT_EQ(Read("/unmounted/shard"), "S");
  EXPECT_FALSE(env_.Exists("/disk/shard"));
  EXPECT_EQ(env_.Stat(root)->inode, (*held)->info().inode);

  // Once removed, nothing more can be made in it.
  ASSERT_TRUE(env_.Remove("/unmounted/shard").ok());
  ASSERT_TRUE(env_.Remove("/unmounted/marker").ok());
  ASSERT_TRUE(env_.RemoveDir("/unmounted").ok());
  EXPECT_EQ(GetFsErrorKind(env_.Open(root + "/late", OpenMode::kReadWrite).status()),
            FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(env_.CreateDir(root + "/late")), FsErrorKind::kNotFound);
}

// --- Locks

TEST_F(MemEnvTest, SecondLockOnAPathIsBusy) {
  EXPECT_FALSE(*env_.IsLocked("/lock"));
  absl::StatusOr<std::unique_ptr<FileLock>> first = env_.LockFile("/lock");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*env_.IsLocked("/lock"));
  EXPECT_EQ(GetFsErrorKind(env_.LockFile("/lock").status()), FsErrorKind::kBusy);
  EXPECT_EQ(GetFsErrorKind(env_.LockFile("//./lock").status()), FsErrorKind::kBusy);

  // The lock's file is an ordinary file on that path.
  ASSERT_TRUE((*first)->file().PWrite(0, "pid 42").ok());
  EXPECT_EQ(Read("/lock"), "pid 42");

  first->reset();
  EXPECT_FALSE(*env_.IsLocked("/lock"));
  absl::StatusOr<std::unique_ptr<FileLock>> second = env_.LockFile("/lock");
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*second)->file().Close().ok());  // closing the descriptor unlocks
  EXPECT_FALSE(*env_.IsLocked("/lock"));
}

TEST_F(MemEnvTest, PowerCutReleasesLocks) {
  absl::StatusOr<std::unique_ptr<FileLock>> before = env_.LockFile("/lock");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(env_.SyncDir("/").ok());
  env_.DropUnsyncedData();
  EXPECT_FALSE(*env_.IsLocked("/lock"));
  absl::StatusOr<std::unique_ptr<FileLock>> after = env_.LockFile("/lock");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(GetFsErrorKind((*before)->file().PWrite(0, "x")), FsErrorKind::kIo);
  before->reset();  // the dead holder going away does not free the new lock
  EXPECT_TRUE(*env_.IsLocked("/lock"));
}

// --- Space

TEST_F(MemEnvTest, FullDiskWritesWhatFitsThenFailsWithNoSpace) {
  env_.SetCapacity(100);
  EXPECT_EQ(env_.StatFs("/")->capacity_bytes, 100u);
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(file->PWrite(0, std::string(60, 'a')).ok());
  EXPECT_EQ(Available(), 40u);

  absl::Status full = file->PWrite(50, std::string(60, 'b'));
  EXPECT_EQ(GetFsErrorKind(full), FsErrorKind::kNoSpace);
  EXPECT_EQ(*file->Size(), 100u);
  EXPECT_EQ(Read("/f"), std::string(50, 'a') + std::string(50, 'b'));
  EXPECT_EQ(Available(), 0u);
  EXPECT_EQ(GetFsErrorKind(file->PWrite(100, "c")), FsErrorKind::kNoSpace);
  EXPECT_EQ(GetFsErrorKind(file->Truncate(101)), FsErrorKind::kNoSpace);
  EXPECT_TRUE(file->PWrite(0, "overwrite in place").ok());

  ASSERT_TRUE(file->Truncate(10).ok());
  EXPECT_EQ(Available(), 90u);
}

TEST_F(MemEnvTest, SpaceOfARemovedFileIsFreedWhenItsLastHandleCloses) {
  env_.SetCapacity(1000);
  std::unique_ptr<File> file = OpenOrDie("/f", OpenMode::kReadWrite);
  ASSERT_TRUE(file->PWrite(0, std::string(300, 'x')).ok());
  ASSERT_TRUE(env_.Link("/f", "/g").ok());
  EXPECT_EQ(Available(), 700u);
  ASSERT_TRUE(env_.Remove("/f").ok());
  ASSERT_TRUE(env_.Remove("/g").ok());
  EXPECT_EQ(Available(), 700u);
  file.reset();
  EXPECT_EQ(Available(), 1000u);

  Write("/h", std::string(200, 'h'));
  env_.DropUnsyncedData();  // neither data nor name was synced
  EXPECT_EQ(Available(), 1000u);
}

// --- Power switch

TEST_F(MemEnvTest, InactiveFilesystemRefusesEveryChange) {
  ASSERT_TRUE(env_.CreateDir("/d").ok());
  ASSERT_TRUE(env_.CreateDir("/empty").ok());
  Write("/d/f", "content");
  std::unique_ptr<File> file = OpenOrDie("/d/f", OpenMode::kReadWrite);
  const uint64_t written = env_.bytes_written();

  env_.SetFilesystemActive(false);
  auto io = [](const absl::Status& status) { return GetFsErrorKind(status) == FsErrorKind::kIo; };
  EXPECT_TRUE(io(file->PWrite(0, "X")));
  EXPECT_TRUE(io(file->Truncate(0)));
  EXPECT_TRUE(io(file->Sync()));
  EXPECT_TRUE(io(env_.Open("/d/new", OpenMode::kReadWrite).status()));
  EXPECT_TRUE(io(env_.Open("/d/f", OpenMode::kCreateOrTruncate).status()));
  EXPECT_TRUE(io(env_.Open("/d/new", OpenMode::kCreateExclusive).status()));
  EXPECT_TRUE(io(env_.Rename("/d/f", "/d/g")));
  EXPECT_TRUE(io(env_.Link("/d/f", "/d/g")));
  EXPECT_TRUE(io(env_.Remove("/d/f")));
  EXPECT_TRUE(io(env_.SetPermissions("/d/f", 0600)));
  EXPECT_TRUE(io(env_.SetModifiedTime("/d/f", 1)));
  EXPECT_TRUE(io(env_.CreateDir("/d/sub")));
  EXPECT_TRUE(io(env_.RemoveDir("/empty")));
  EXPECT_TRUE(io(env_.SyncDir("/d")));
  EXPECT_TRUE(io(env_.SyncFilesystem("/")));
  EXPECT_TRUE(io(env_.LockFile("/lock").status()));

  // Nothing changed, and reads still work.
  EXPECT_EQ(Read("/d/f"), "content");
  EXPECT_EQ(*file->PRead(0, 7), "content");
  EXPECT_EQ(List("/d"), std::vector<std::string>{"f"});
  EXPECT_EQ(List("/"), (std::vector<std::string>{"d", "empty"}));
  EXPECT_EQ(env_.Stat("/d/f")->permissions, 0600u);
  EXPECT_EQ(env_.bytes_written(), written);

  env_.SetFilesystemActive(true);
  EXPECT_TRUE(file->PWrite(0, "C").ok());
}

TEST_F(MemEnvTest, DeactivateAfterMutationsCutsPowerAtTheNextChangeBeyondTheCount) {
  env_.DeactivateAfterMutations(2);
  EXPECT_TRUE(env_.CreateDir("/a").ok());
  EXPECT_EQ(List("/"), std::vector<std::string>{"a"});  // reads do not count
  EXPECT_TRUE(env_.CreateDir("/b").ok());
  EXPECT_EQ(GetFsErrorKind(env_.CreateDir("/c")), FsErrorKind::kIo);
  EXPECT_EQ(GetFsErrorKind(env_.SyncDir("/")), FsErrorKind::kIo);
  EXPECT_FALSE(env_.Exists("/c"));
  env_.SetFilesystemActive(true);
  EXPECT_TRUE(env_.CreateDir("/c").ok());
}

// WriteFileAtomically's promise, checked with the power cut between every
// two of its steps and with torn writes: the old content or the new, never
// a mix, never nothing; and the new once it has returned OK.
TEST_F(MemEnvTest, WriteFileAtomicallyLeavesOldOrNewContentAtEveryPowerCut) {
  const std::string old_content(5000, 'o');
  const std::string new_content = "new content, shorter";
  for (bool existed : {true, false}) {
    for (uint64_t seed : {0, 1, 2, 3}) {
      const std::string where = absl::StrCat(existed ? "over a file" : "new file", " seed ", seed);
      int cuts = 0;
      bool completed = false;
      for (uint64_t steps = 0; !completed; ++steps) {
        ASSERT_LT(steps, 100u) << "WriteFileAtomically never completed";
        MemEnv env(&clock_);
        ASSERT_TRUE(env.CreateDir("/volume").ok());
        if (existed) {
          ASSERT_TRUE(WriteFileAtomically(&env, "/volume/cairn.toml", old_content).ok());
        }
        ASSERT_TRUE(env.SyncFilesystem("/").ok());

        env.DeactivateAfterMutations(steps);
        completed = WriteFileAtomically(&env, "/volume/cairn.toml", new_content).ok();
        env.DropUnsyncedData(seed);
        env.SetFilesystemActive(true);
        if (!completed) ++cuts;

        absl::StatusOr<std::string> after = ReadFileToString(&env, "/volume/cairn.toml");
        const std::string at = absl::StrCat(where, " steps ", steps);
        if (completed) {
          ASSERT_TRUE(after.ok()) << at << ": " << after.status();
          EXPECT_EQ(*after, new_content) << at;
        } else if (existed) {
          ASSERT_TRUE(after.ok()) << at << ": " << after.status();
          EXPECT_TRUE(*after == old_content || *after == new_content)
              << at << ": " << after->substr(0, 40);
        } else {
          EXPECT_TRUE(IsNotFoundError(after.status()) || *after == new_content) << at;
        }
      }
      // Open, write, fsync, chmod, rename, directory fsync: a cut before each.
      EXPECT_GE(cuts, 5) << where;
    }
  }
}

// The harness catches what skips a sync: ReplaceFile promises no
// durability, and after a power cut its new content is gone.
TEST_F(MemEnvTest, ReplaceFileWithoutSyncsLeavesTheOldContentAfterAPowerCut) {
  ASSERT_TRUE(WriteFileAtomically(&env_, "/stats.json", "old").ok());
  ASSERT_TRUE(ReplaceFile(&env_, "/stats.json", "new").ok());
  EXPECT_EQ(Read("/stats.json"), "new");
  env_.DropUnsyncedData();
  EXPECT_EQ(Read("/stats.json"), "old");
  EXPECT_EQ(Read("/stats.json.tmp"), kMissing);
}

// --- Counters and threads

TEST_F(MemEnvTest, CountersCountSyncsAndBytesWritten) {
  WriteSynced("/f", "12345");
  ASSERT_TRUE(env_.SyncDir("/").ok());
  EXPECT_EQ(GetFsErrorKind(env_.SyncDir("/missing")), FsErrorKind::kNotFound);
  EXPECT_EQ(env_.file_syncs(), 1u);
  EXPECT_EQ(env_.directory_syncs(), 2u);
  EXPECT_EQ(env_.bytes_written(), 5u);
}

TEST_F(MemEnvTest, ConcurrentWritersAndAPowerCutLeaveAConsistentTree) {
  constexpr int kThreads = 4;
  constexpr int kCutAfterSyncs = 400;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const std::string dir = absl::StrCat("/t", t);
      if (!env_.CreateDir(dir).ok()) return;
      env_.SyncDir("/").IgnoreError();
      // Writes until the power goes, then goes on a little as a thread
      // that has not noticed yet would.
      int failures = 0;
      for (int i = 0; i < 100000 && failures < 10; ++i) {
        const std::string path = absl::StrCat(dir, "/", i);
        if (!WriteFileSynced(&env_, path, path).ok()) ++failures;
        if (!env_.SyncDir(dir).ok()) ++failures;
        env_.ListDir(dir).IgnoreError();
        env_.StatFs(dir).IgnoreError();
      }
    });
  }
  while (env_.file_syncs() < kCutAfterSyncs) std::this_thread::yield();
  env_.SetFilesystemActive(false);
  env_.DropUnsyncedData(/*seed=*/9);
  for (std::thread& thread : threads) thread.join();
  env_.SetFilesystemActive(true);

  // Every file that survived has its whole content: names were synced
  // only after the data.
  int survivors = 0;
  for (const std::string& dir : List("/")) {
    for (const std::string& name : List("/" + dir)) {
      const std::string path = absl::StrCat("/", dir, "/", name);
      EXPECT_EQ(Read(path), path);
      ++survivors;
    }
  }
  EXPECT_GT(survivors, 0);
  EXPECT_EQ(Available(), env_.StatFs("/")->capacity_bytes - [&] {
    uint64_t total = 0;
    for (const std::string& dir : List("/")) {
      for (const std::string& name : List("/" + dir)) {
        total += env_.Stat(absl::StrCat("/", dir, "/", name))->size;
      }
    }
    return total;
  }());
}

}  // namespace
}  // namespace cairn

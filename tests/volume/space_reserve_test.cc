// The room kept for the namespace (backend/volume/space_reserve.h): written
// data stops at the floor, the reserve goes to the namespace when the disk
// fills anyway, and a volume whose disk is full after a crash still opens
// read-write and deletes.
#include "backend/volume/space_reserve.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "backend/base/fs_error.h"
#include "backend/volume/volume.h"
#include "tests/support/fake_clock.h"
#include "tests/support/mem_env.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class SpaceReserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.SetCapacity(256 * kMiB);  // a reserve of 4 MiB
    ASSERT_TRUE(env_.CreateDir("/vol").ok());
  }
  uint64_t Free() { return env_.StatFs("/vol")->available_bytes; }
  // A file of another program taking all but `left` bytes.
  void FillLeaving(uint64_t left) {
    absl::StatusOr<std::unique_ptr<File>> file = env_.Open("/filler", OpenMode::kReadWrite);
    ASSERT_TRUE(file.ok());
    uint64_t size = *(*file)->Size();
    ASSERT_GE(Free(), left);
    ASSERT_TRUE((*file)->Truncate(size + Free() - left).ok());
  }

  MemEnv env_;
  FakeClock clock_;
};

TEST_F(SpaceReserveTest, DataStopsAtTheFloorAndTheReserveGoesToTheNamespaceWhenFull) {
  SpaceReserve reserve(&env_, "/vol", &clock_);
  EXPECT_EQ(reserve.bytes(), 4 * kMiB);
  reserve.Ensure();
  ASSERT_TRUE(reserve.held());
  EXPECT_EQ(env_.Stat("/vol/reserve")->size, 4 * kMiB);
  EXPECT_TRUE(reserve.CheckRoomForData(0, 0).ok());

  // Down to the floor: data is refused, the reserve stays.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(3 * kMiB));
  clock_.Advance(absl::Seconds(1));
  absl::Status refused = reserve.CheckRoomForData(0, 0);
  EXPECT_EQ(GetFsErrorKind(refused), FsErrorKind::kNoSpace) << refused;
  EXPECT_NE(refused.message().find("delete files"), std::string::npos) << refused;
  reserve.Tend();
  EXPECT_TRUE(reserve.held()) << "released while the floor still held";

  // Filled by someone else: the reserve's space is freed for the namespace.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(100 << 10));
  reserve.Tend();
  EXPECT_FALSE(reserve.held());
  EXPECT_FALSE(env_.Exists("/vol/reserve"));
  EXPECT_GE(Free(), 4 * kMiB);

  // Room again: taken back.
  ASSERT_TRUE(env_.Remove("/filler").ok());
  reserve.Tend();
  EXPECT_TRUE(reserve.held());
  EXPECT_EQ(env_.Stat("/vol/reserve")->size, 4 * kMiB);
}

// A write is refused when it would take the filesystem below the floor,
// not only once it is there; and writes between two looks at the
// filesystem add up instead of each passing on the same old look.
TEST_F(SpaceReserveTest, DataIsRefusedWhenItWouldGoPastTheFloor) {
  SpaceReserve reserve(&env_, "/vol", &clock_);
  reserve.Ensure();
  ASSERT_TRUE(reserve.held());
  ASSERT_NO_FATAL_FAILURE(FillLeaving(10 * kMiB));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve.CheckRoomForData(7 * kMiB, 0)), FsErrorKind::kNoSpace)
      << "10 MiB free, 7 MiB to write and 4 MiB kept";
  ASSERT_TRUE(reserve.CheckRoomForData(3 * kMiB, 0).ok());
  ASSERT_NO_FATAL_FAILURE(FillLeaving(7 * kMiB));  // the 3 MiB written
  // Within 100 ms of the last look: that look, less the 3 MiB, is 7 MiB.
  absl::Status refused = reserve.CheckRoomForData(0, 4 * kMiB);
  EXPECT_EQ(GetFsErrorKind(refused), FsErrorKind::kNoSpace) << refused;
  EXPECT_NE(refused.message().find("writing 4 MiB more"), std::string::npos) << refused;
  EXPECT_TRUE(reserve.CheckRoomForData(0, 3 * kMiB).ok());
}

// Room made by a delete counts at once: a refusal is never an old look.
TEST_F(SpaceReserveTest, ARefusalLooksAtTheFilesystemAgain) {
  SpaceReserve reserve(&env_, "/vol", &clock_);
  reserve.Ensure();
  ASSERT_NO_FATAL_FAILURE(FillLeaving(5 * kMiB));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve.CheckRoomForData(2 * kMiB, 0)), FsErrorKind::kNoSpace);
  ASSERT_TRUE(env_.Remove("/filler").ok());
  EXPECT_TRUE(reserve.CheckRoomForData(2 * kMiB, 0).ok()) << "an old look refused the write";
}

// Only what lands on the namespace's filesystem counts: a journal kept
// elsewhere does not, and of an ec:2+1 blob on three disks of which one
// is there, a third of the shards (half the blob's size).
TEST_F(SpaceReserveTest, OnlyWhatLandsOnTheNamespacesFilesystemCounts) {
  SpaceReserve reserve(&env_, "/vol", &clock_);
  reserve.Ensure();
  ASSERT_NO_FATAL_FAILURE(FillLeaving(10 * kMiB));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve.CheckRoomForData(4 * kMiB, 4 * kMiB)), FsErrorKind::kNoSpace);
  reserve.SetPlacement(DataPlacement{.journal_here = false, .shards_here = 1, .data_shards = 2});
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(reserve.CheckRoomForData(4 * kMiB, 8 * kMiB).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve.CheckRoomForData(0, 14 * kMiB)), FsErrorKind::kNoSpace);
}

// What can give up room (a block cache) is asked for just what is missing,
// before data is refused and before the reserve file is given up; never
// while there is room.
TEST_F(SpaceReserveTest, RoomGiversAreAskedBeforeDataIsRefusedOrTheReserveGivenUp) {
  SpaceReserve reserve(&env_, "/vol", &clock_);
  reserve.Ensure();
  ASSERT_TRUE(reserve.held());
  // A cache of 6 MiB, giving up whole MiB files.
  uint64_t cached = 6 * kMiB;
  std::vector<uint64_t> asked;
  absl::StatusOr<std::unique_ptr<File>> cache_file = env_.Open("/cache", OpenMode::kReadWrite);
  ASSERT_TRUE(cache_file.ok());
  ASSERT_TRUE((*cache_file)->Truncate(cached).ok());
  reserve.AddRoomGiver([&](uint64_t wanted) -> uint64_t {
    asked.push_back(wanted);
    uint64_t freed = 0;
    while (freed < wanted && cached > 0) {
      cached -= kMiB;
      freed += kMiB;
    }
    EXPECT_TRUE((*cache_file)->Truncate(cached).ok());
    return freed;
  });

  ASSERT_NO_FATAL_FAILURE(FillLeaving(10 * kMiB));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(reserve.CheckRoomForData(2 * kMiB, 0).ok());
  EXPECT_TRUE(asked.empty()) << "asked while there was room";

  // 5 MiB free, 2 MiB to write, 4 MiB kept: 1 MiB is wanted.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(5 * kMiB));
  clock_.Advance(absl::Seconds(1));
  absl::Status room = reserve.CheckRoomForData(2 * kMiB, 0);
  EXPECT_TRUE(room.ok()) << room;
  EXPECT_EQ(asked, std::vector<uint64_t>{kMiB});
  EXPECT_EQ(cached, 5 * kMiB);

  // Filled by someone else: the cache goes before the reserve does.
  ASSERT_NO_FATAL_FAILURE(FillLeaving(100 << 10));
  reserve.Tend();
  EXPECT_TRUE(reserve.held()) << "the reserve went while the cache had room to give";
  EXPECT_EQ(cached, kMiB);
  EXPECT_GE(Free(), 4 * kMiB);

  // Nothing more to give than 1 MiB: the write is refused as before.
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve.CheckRoomForData(8 * kMiB, 0)), FsErrorKind::kNoSpace);
  EXPECT_EQ(cached, 0u);
}

TEST_F(SpaceReserveTest, NoReserveIsMadeWithoutRoomForItAndTheFloor) {
  ASSERT_NO_FATAL_FAILURE(FillLeaving(10 * kMiB));
  SpaceReserve reserve(&env_, "/vol", &clock_);
  reserve.Ensure();
  EXPECT_FALSE(reserve.held());
  EXPECT_FALSE(env_.Exists("/vol/reserve"));
}

// The default layout filled to the last byte, then a power cut: the next
// read-write open needs room to replay the namespace's log, and the
// reserve gives it; files can then be deleted.
TEST(VolumeSpaceTest, AFullDiskAfterACrashStillOpensReadWriteAndDeletes) {
  MemEnv env;
  env.SetCapacity(256 * kMiB);
  FakeClock clock;
  Io io{&env, &clock, nullptr};
  absl::StatusOr<VolumeConfig> config = FormatVolume("/vol", FormatOptions(), io);
  ASSERT_TRUE(config.ok()) << config.status();
  {
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open("/vol", *config, io);
    ASSERT_TRUE(volume.ok()) << volume.status();
    ASSERT_NE((*volume)->space_reserve(), nullptr);
    EXPECT_TRUE((*volume)->space_reserve()->held());
    for (int i = 0; i < 20; ++i) {
      WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "f" + std::to_string(i),
                         std::string(100000, static_cast<char>('a' + i)));
    }
    ASSERT_TRUE((*volume)->ns().Sync().ok());
    env.SetFilesystemActive(false);  // the power goes: no clean close
  }
  env.SetFilesystemActive(true);
  // Everything else on the filesystem takes the rest.
  absl::StatusOr<std::unique_ptr<File>> filler = env.Open("/filler", OpenMode::kReadWrite);
  ASSERT_TRUE(filler.ok());
  ASSERT_TRUE((*filler)->Truncate(env.StatFs("/vol")->available_bytes).ok());
  ASSERT_EQ(env.StatFs("/vol")->available_bytes, 0u);

  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open("/vol", *config, io);
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_FALSE((*volume)->space_reserve()->held()) << "the reserve was not given up";
  NamespaceStore& ns = (*volume)->ns();
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<InodeAttr> unlinked = ns.Unlink(kRootInode, "f" + std::to_string(i));
    ASSERT_TRUE(unlinked.ok()) << "delete " << i << " on a full disk: " << unlinked.status();
    ASSERT_TRUE(ns.ReleaseInode(unlinked->ino).ok());
  }
  EXPECT_TRUE(ns.Sync().ok());
}

}  // namespace
}  // namespace cairn

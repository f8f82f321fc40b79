// The FUSE side of shared locks: a volume (in memory) mounted for real
// through the kernel with a FileLocks, so flock(2) and fcntl(2) on the
// mount reach the lock table, and a second MemFileLocks on the same table
// stands for another host. Checks what the kernel sends (owners, ranges,
// the FLUSH of close and the RELEASE of a flock) maps onto FileLocks.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>

#include "backend/namespace/mem_file_locks.h"
#include "backend/volume/volume.h"
#include "fs/fs_context.h"
#include "fs/fuse_session.h"
#include "fs/mounted_volume.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/mem_env.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

constexpr char kVolumeDir[] = "/vol";
constexpr uint64_t kThisHost = 1;
constexpr uint64_t kOtherHost = 2;

struct flock Range(short type, off_t start, off_t len) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = start;
  l.l_len = len;
  return l;
}

void OnSignal(int) {}

class SharedLocksMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse here";
    io_ = Io{&env_, &clock_, &buckets_};
    env_.SetCapacity(64 << 20);
    FormatOptions format;
    format.disks = {"/disk0"};
    absl::StatusOr<VolumeConfig> config = FormatVolume(kVolumeDir, format, io_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(kVolumeDir, *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    MountedVolume::Options options;
    options.background_flush = false;
    options.file_locks = &this_host_;
    absl::StatusOr<std::unique_ptr<MountedVolume>> mounted = MountedVolume::Open(*volume_, options);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    mounted_ = std::move(*mounted);
    ctx_.fs = &mounted_->fs();
    FuseMountOptions mount;
    mount.mountpoint = dir_.path();
    mount.source = "locks-test";
    absl::StatusOr<std::unique_ptr<FuseSession>> session = FuseSession::Mount(&ctx_, mount);
    ASSERT_TRUE(session.ok()) << session.status();
    session_ = std::move(*session);
    loop_ = std::thread([this] { session_->Run(); });
    path_ = dir_.path() + "/f";
    int fd = open(path_.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    ino_ = st.st_ino;
    close(fd);
  }

  void TearDown() override {
    if (session_) {
      session_->Stop();
      loop_.join();
      session_.reset();
    }
    if (mounted_) EXPECT_TRUE(mounted_->Close().ok());
  }

  int Open() {
    int fd = open(path_.c_str(), O_RDWR);
    EXPECT_GE(fd, 0) << strerror(errno);
    return fd;
  }

  MemEnv env_;
  FakeClock clock_;
  FakeObjectStoreFactory buckets_{&clock_};
  Io io_;
  MemLockTable table_;
  MemFileLocks this_host_{table_, kThisHost};
  MemFileLocks other_host_{table_, kOtherHost};
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<MountedVolume> mounted_;
  FsContext ctx_;
  TempDir dir_;
  std::unique_ptr<FuseSession> session_;
  std::thread loop_;
  std::string path_;
  InodeId ino_ = 0;
};

TEST_F(SharedLocksMountTest, FlockGoesToTheSharedTableAndGoesAtLastClose) {
  int fd1 = Open(), fd2 = Open();
  ASSERT_EQ(flock(fd1, LOCK_EX), 0) << strerror(errno);
  std::vector<HeldLock> held = table_.Held(ino_);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].kind, LockKind::kFlock);
  EXPECT_EQ(held[0].session, kThisHost);
  // Another open file description is another owner, here and elsewhere.
  EXPECT_EQ(flock(fd2, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_FALSE(other_host_.Flock(ino_, 9, LockType::kRead, false, nullptr).ok());
  close(fd1);
  // Its last close: the kernel sends RELEASE (with flock_release) after
  // close(2) returned, not before.
  for (int i = 0; i < 200 && !table_.Held(ino_).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(table_.Held(ino_).empty());
  ASSERT_TRUE(other_host_.Flock(ino_, 9, LockType::kRead, false, nullptr).ok());
  EXPECT_EQ(flock(fd2, LOCK_EX | LOCK_NB), -1);  // the other host's shared lock
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_EQ(flock(fd2, LOCK_SH | LOCK_NB), 0) << strerror(errno);
  close(fd2);
}

TEST_F(SharedLocksMountTest, FcntlLocksMeetTheOtherHostsAndCloseDropsThem) {
  ByteRangeLock remote;
  remote.type = LockType::kWrite;
  remote.start = 0;
  remote.last = 9;
  remote.pid = 4242;
  ASSERT_TRUE(other_host_.SetRecordLock(ino_, 7, remote, false, nullptr).ok());
  int fd = Open();
  struct flock l = Range(F_WRLCK, 5, 1);
  EXPECT_EQ(fcntl(fd, F_SETLK, &l), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EACCES) << strerror(errno);
  l = Range(F_WRLCK, 0, 0);  // to the end
  ASSERT_EQ(fcntl(fd, F_GETLK, &l), 0) << strerror(errno);
  EXPECT_EQ(l.l_type, F_WRLCK);
  EXPECT_EQ(l.l_start, 0);
  EXPECT_EQ(l.l_len, 10);
  EXPECT_EQ(l.l_pid, 0);  // a pid of another host names no process here
  l = Range(F_RDLCK, 20, 0);
  ASSERT_EQ(fcntl(fd, F_SETLK, &l), 0) << strerror(errno);
  l = Range(F_UNLCK, 30, 10);  // a hole in the middle
  ASSERT_EQ(fcntl(fd, F_SETLK, &l), 0) << strerror(errno);
  std::vector<HeldLock> mine;
  for (const HeldLock& h : table_.Held(ino_)) {
    if (h.session == kThisHost) mine.push_back(h);
  }
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].start, 20);
  EXPECT_EQ(mine[0].last, 29);
  EXPECT_EQ(mine[0].pid, getpid());
  EXPECT_EQ(mine[1].start, 40);
  EXPECT_EQ(mine[1].last, kLockToEnd);
  // Any close by the process drops its record locks (FLUSH), even of
  // another descriptor of the file.
  int other_fd = Open();
  close(other_fd);
  for (const HeldLock& h : table_.Held(ino_)) EXPECT_NE(h.session, kThisHost);
  close(fd);
}

TEST_F(SharedLocksMountTest, BlockingFcntlWaitsForTheOtherHostAndASignalInterruptsIt) {
  ASSERT_TRUE(other_host_.Flock(ino_, 9, LockType::kWrite, false, nullptr).ok());
  ByteRangeLock remote;
  remote.type = LockType::kWrite;
  ASSERT_TRUE(other_host_.SetRecordLock(ino_, 7, remote, false, nullptr).ok());
  int fd = Open();

  // Granted once the other host lets go.
  std::atomic<int> result{1};
  std::thread waiter([&] {
    struct flock l = Range(F_WRLCK, 0, 1);
    result = fcntl(fd, F_SETLKW, &l);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(result, 1);
  ASSERT_TRUE(other_host_.ReleaseOwner(ino_, 7).ok());
  waiter.join();
  EXPECT_EQ(result, 0);

  // A signal (without SA_RESTART) ends a blocked flock with EINTR.
  struct sigaction action {};
  action.sa_handler = OnSignal;
  struct sigaction old;
  sigaction(SIGUSR1, &action, &old);
  std::atomic<bool> done{false};
  std::atomic<int> err{0};
  std::thread blocked([&] {
    int rc = flock(fd, LOCK_EX);
    err = rc == 0 ? 0 : errno;
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 100 && !done; ++i) {
    pthread_kill(blocked.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  blocked.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(err, EINTR);
  close(fd);
}

}  // namespace
}  // namespace cairn

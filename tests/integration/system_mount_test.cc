// Mounting the standard ways: mount -t cairn (mount.cairn), /etc/fstab
// lines through mount -a -T, the systemd units in packaging/systemd (checked
// with systemd-analyze verify, and a unit the fstab generator makes from a
// cairn line), and the daemon as a Type=notify service stopped by SIGTERM.
//
// mount(8) and umount(8) find helpers only in /sbin, so these tests link
// /usr/sbin/mount.cairn and /usr/sbin/umount.fuse.cairn to the cairn under
// test while any of them runs, unless they already exist (an installed
// package): then they use those only if they are the same program, and
// skip otherwise.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

constexpr const char* kHelpers[] = {"/usr/sbin/mount.cairn", "/usr/sbin/umount.fuse.cairn"};
constexpr char kHelperLock[] = "/tmp/cairn-test-mount-helper.lock";

std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? resolved : "";
}

class SystemMountTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    // Tests in other processes (ctest -j) use the same link: each holds a
    // shared lock while it runs, and the last one out removes the link.
    helper_lock_ = open(kHelperLock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(helper_lock_, 0) << kHelperLock << ": " << strerror(errno);
    ASSERT_EQ(flock(helper_lock_, LOCK_SH), 0);
    for (const char* helper : kHelpers) {
      struct stat st;
      if (lstat(helper, &st) != 0 && symlink(CairnBinary().c_str(), helper) != 0 &&
          errno != EEXIST) {
        FAIL() << "cannot link " << helper << ": " << strerror(errno);
      }
      if (RealPath(helper) != RealPath(CairnBinary())) {
        GTEST_SKIP() << helper << " belongs to another cairn (an installed package?)";
      }
    }
    linked_helper_ = true;
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(Unmount());  // the tests mount it their way
  }
  void TearDown() override {
    MountTest::TearDown();
    if (helper_lock_ < 0) return;
    flock(helper_lock_, LOCK_UN);
    if (linked_helper_ && flock(helper_lock_, LOCK_EX | LOCK_NB) == 0) {
      for (const char* helper : kHelpers) {
        // Nobody else is using it.
        if (RealPath(helper) == RealPath(CairnBinary())) unlink(helper);
      }
    }
    close(helper_lock_);
  }

  bool MountedAsCairn() {
    std::vector<MountEntry> mounts = MountsAt(mount_dir_);
    return mounts.size() == 1 && mounts[0].fstype == "fuse.cairn";
  }
  // After a plain umount(8) the daemon flushes and exits on its own.
  bool VolumeReleased() {
    return WaitFor(
        [&] {
          return JsonField(Cairn("status --json " + Quote(volume_dir_), 30).output, "mounted") ==
                 "false";
        },
        30);
  }
  std::string WriteFstab(const std::string& lines) {
    std::string path = work_dir_ + "/fstab";
    std::ofstream(path) << lines;
    return path;
  }

  bool linked_helper_ = false;
  int helper_lock_ = -1;
};

TEST_F(SystemMountTest, MountTypeCairnMountsWithOptionsAndUmountFlushesEverything) {
  std::string cache = work_dir_ + "/other-cache";
  CommandResult mount = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                            " -o noatime,nofail,_netdev,x-systemd.device-timeout=10s,cache_dir=" +
                            cache);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  ASSERT_TRUE(MountedAsCairn());
  RecordConnection();
  CommandResult write = Run("head -c 3000000 /dev/urandom > " + QP("f") + " && sha256sum < " +
                            QP("f") + " > " + Quote(work_dir_ + "/sum"));
  ASSERT_EQ(write.exit_code, 0) << Brief(write);
  EXPECT_TRUE(Run("test -d " + Quote(cache + "/journal")).exit_code == 0)
      << "cache_dir= overrides cairn.toml";
  CommandResult umount = Run("umount " + Quote(mount_dir_));
  ASSERT_EQ(umount.exit_code, 0) << Brief(umount);
  ASSERT_TRUE(VolumeReleased()) << "the daemon exits after umount";
  CommandResult last = Run("cat " + Quote(volume_dir_ + "/last-stop") + " 2>/dev/null");
  EXPECT_EQ(last.output.find("error"), std::string::npos) << "a clean stop: " << last.output;
  // Everything written is on the volume, with the journal where it was.
  mount = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
              " -o cache_dir=" + cache);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  CommandResult check = Run("sha256sum < " + QP("f") + " | cmp - " + Quote(work_dir_ + "/sum"));
  EXPECT_EQ(check.exit_code, 0) << Brief(check);
}

// systemd stops a mount unit, and shuts the machine down, with plain
// umount(8): it must return only once everything written is stored and the
// daemon has let go of the volume, or the disks under it are unmounted
// mid-flush and the next start finds the volume still held.
TEST_F(SystemMountTest, PlainUmountReturnsOnlyOnceTheDaemonHasStoredEverything) {
  ASSERT_EQ(Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_)).exit_code, 0);
  RecordConnection();
  const pid_t daemon = DaemonPid();
  ASSERT_GT(daemon, 0);
  CommandResult write = Run("head -c 150000000 /dev/urandom > " + QP("big") + " && sha256sum < " +
                            QP("big"));
  ASSERT_EQ(write.exit_code, 0) << Brief(write);
  CommandResult umount = Run("umount " + Quote(mount_dir_));
  ASSERT_EQ(umount.exit_code, 0) << Brief(umount);
  // No waiting here: that is the point.
  EXPECT_EQ(JsonField(Cairn("status --json " + Quote(volume_dir_), 30).output, "mounted"),
            "false")
      << "umount returned while the daemon still held the volume";
  CommandResult last = Run("cat " + Quote(volume_dir_ + "/last-stop"));
  EXPECT_EQ(last.output.find("error"), std::string::npos) << Brief(last);
  ASSERT_EQ(Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_)).exit_code, 0);
  EXPECT_EQ(Run("sha256sum < " + QP("big")).output, write.output);
}

// An unmount that does not wait (umount -i skips the helper, as an older
// package would; -l detaches while a file is still open) leaves the daemon
// running: a mount right after waits for it, saying so, instead of failing
// "already mounted".
TEST_F(SystemMountTest, MountRightAfterAnUnwaitedUmountWaitsForThePreviousDaemon) {
  ASSERT_EQ(Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_)).exit_code, 0);
  RecordConnection();
  CommandResult write = Run("head -c 3000000 /dev/urandom > " + QP("f") + " && sha256sum < " +
                            QP("f"));
  ASSERT_EQ(write.exit_code, 0) << Brief(write);
  // The open file keeps the detached mount, and so the daemon, for 3 s.
  CommandResult again = Run("(exec 3< " + QP("f") + "; sleep 3) & sleep 0.5; umount -i -l " +
                            Quote(mount_dir_) + " && mount -t cairn " + Quote(volume_dir_) + " " +
                            Quote(mount_dir_));
  ASSERT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_NE(again.output.find("waiting for process"), std::string::npos) << Brief(again);
  ASSERT_TRUE(MountedAsCairn());
  RecordConnection();
  EXPECT_EQ(Run("sha256sum < " + QP("f")).output, write.output);
}

TEST_F(SystemMountTest, FstabLinesMountWithMountAllAndByMountpoint) {
  std::string other = work_dir_ + "/mnt-noauto";
  ASSERT_EQ(mkdir(other.c_str(), 0755), 0);
  std::string fstab = WriteFstab(
      "# a test fstab\n" + volume_dir_ + "  " + mount_dir_ +
      "  cairn  defaults,noatime,nofail,x-systemd.requires=local-fs.target  0  0\n" +
      volume_dir_ + "  " + other + "  cairn  noauto  0  0\n");
  CommandResult all = Run("mount -a -T " + Quote(fstab));
  ASSERT_EQ(all.exit_code, 0) << Brief(all);
  EXPECT_TRUE(MountedAsCairn());
  EXPECT_TRUE(MountsAt(other).empty()) << "noauto lines are left alone";
  RecordConnection();
  ASSERT_EQ(Run("echo fstab > " + QP("note")).exit_code, 0);
  ASSERT_EQ(Run("umount " + Quote(mount_dir_)).exit_code, 0);
  ASSERT_TRUE(VolumeReleased());
  CommandResult by_dir = Run("mount -T " + Quote(fstab) + " " + Quote(mount_dir_));
  ASSERT_EQ(by_dir.exit_code, 0) << Brief(by_dir);
  EXPECT_EQ(Run("cat " + QP("note")).output, "fstab\n");
}

TEST_F(SystemMountTest, ConfigOptionReadsTheSettingsFromAnotherFile) {
  const std::string alternate = work_dir_ + "/alternate.toml";
  const std::string cache = work_dir_ + "/alternate-cache";
  CommandResult copy = Run("sed 's#^cache_dir = .*#cache_dir = \"" + cache + "\"#' " +
                           Quote(volume_dir_ + "/cairn.toml") + " > " + Quote(alternate));
  ASSERT_EQ(copy.exit_code, 0) << Brief(copy);
  CommandResult mount = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                            " -o config=" + alternate);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  RecordConnection();
  ASSERT_EQ(Run("echo alt > " + QP("a")).exit_code, 0);
  EXPECT_EQ(Run("test -d " + Quote(cache + "/journal")).exit_code, 0)
      << "the journal is where the other file says";
  ASSERT_EQ(Run("umount " + Quote(mount_dir_)).exit_code, 0);
  ASSERT_TRUE(VolumeReleased());
  // A bad key in that file is reported with its path; so is a missing file.
  ASSERT_EQ(Run("echo 'frobnicate = 1' >> " + Quote(alternate)).exit_code, 0);
  CommandResult bad = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                          " -o config=" + alternate);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find(alternate + ": key 'frobnicate'"), std::string::npos) << Brief(bad);
  CommandResult missing = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                              " -o config=" + work_dir_ + "/nowhere.toml");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("nowhere.toml"), std::string::npos) << Brief(missing);
  EXPECT_FALSE(IsMounted(mount_dir_));
}

TEST_F(SystemMountTest, BadOptionsAreRefusedByNameAndMountNothing) {
  auto mount = [&](const std::string& flags) {
    return Run("mount -t cairn " + flags + " " + Quote(volume_dir_) + " " + Quote(mount_dir_));
  };
  CommandResult unknown = mount("-o frobnicate");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.output.find("'frobnicate'"), std::string::npos) << Brief(unknown);
  CommandResult size = mount("-o cache_size=lots");
  EXPECT_NE(size.exit_code, 0);
  EXPECT_NE(size.output.find("cache_size"), std::string::npos) << Brief(size);
  CommandResult level = mount("-o log_level=chatty");
  EXPECT_NE(level.exit_code, 0);
  EXPECT_NE(level.output.find("log_level"), std::string::npos) << Brief(level);
  EXPECT_FALSE(IsMounted(mount_dir_));
  // mount -f (fake) checks and mounts nothing; -s (sloppy) lets an unknown
  // option through with a warning.
  CommandResult fake = mount("-f -o noatime");
  EXPECT_EQ(fake.exit_code, 0) << Brief(fake);
  EXPECT_FALSE(IsMounted(mount_dir_));
  CommandResult sloppy = mount("-s -o frobnicate");
  ASSERT_EQ(sloppy.exit_code, 0) << Brief(sloppy);
  EXPECT_NE(sloppy.output.find("ignoring unknown mount option 'frobnicate'"), std::string::npos)
      << Brief(sloppy);
  EXPECT_TRUE(MountedAsCairn());
  RecordConnection();
}

TEST_F(SystemMountTest, AMountpointLeftByAKilledDaemonIsCleanedUpByTheNextMount) {
  ASSERT_EQ(Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_)).exit_code, 0);
  pid_t pid = DaemonPid();
  ASSERT_GT(pid, 0);
  kill(pid, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return kill(pid, 0) != 0; }, 10));
  CommandResult again = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_));
  ASSERT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_NE(again.output.find("stale"), std::string::npos) << Brief(again);
  EXPECT_TRUE(MountedAsCairn());
  RecordConnection();
  EXPECT_EQ(Run("ls " + QP("")).exit_code, 0) << "no 'Transport endpoint is not connected'";
}

TEST_F(SystemMountTest, AfterACrashTheMountMustUseTheCacheDirHoldingTheJournal) {
  std::string cache = work_dir_ + "/cache-a";
  ASSERT_EQ(Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                " -o cache_dir=" + cache).exit_code,
            0);
  // Acknowledged writes only the journal in cache-a holds when the daemon dies.
  ASSERT_EQ(Run("echo kept > " + QP("j")).exit_code, 0);
  pid_t pid = DaemonPid();
  ASSERT_GT(pid, 0);
  kill(pid, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return kill(pid, 0) != 0; }, 10));
  CommandResult elsewhere = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_));
  EXPECT_NE(elsewhere.exit_code, 0) << Brief(elsewhere);
  EXPECT_NE(elsewhere.output.find("cache_dir=" + cache), std::string::npos) << Brief(elsewhere);
  EXPECT_FALSE(MountedAsCairn());
  CommandResult same = Run("mount -t cairn " + Quote(volume_dir_) + " " + Quote(mount_dir_) +
                           " -o cache_dir=" + cache);
  ASSERT_EQ(same.exit_code, 0) << Brief(same);
  RecordConnection();
  EXPECT_EQ(Run("cat " + QP("j")).output, "kept\n");
  // After a clean unmount the cache_dir may change.
  ASSERT_EQ(Run("umount " + Quote(mount_dir_)).exit_code, 0);
  ASSERT_TRUE(VolumeReleased());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Run("cat " + QP("j")).output, "kept\n");
}

// The daemon as systemd runs it for packaging/systemd/cairn@.service:
// Type=notify, READY=1 once mounted; SIGTERM flushes, unmounts, exits 0.
TEST_F(SystemMountTest, AsANotifyServiceItSaysReadyAndStopsCleanlyOnSigterm) {
  std::string socket_path = work_dir_ + "/notify";
  int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(notify, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  pid_t daemon = fork();
  if (daemon == 0) {
    setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
    execl(CairnBinary().c_str(), "cairn", "mount", "--foreground", volume_dir_.c_str(),
          mount_dir_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  timeval timeout{30, 0};
  setsockopt(notify, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char message[512] = {};
  ssize_t n = recv(notify, message, sizeof(message) - 1, 0);
  close(notify);
  ASSERT_GT(n, 0) << "no notification within 30 s";
  EXPECT_EQ(std::string(message).rfind("READY=1", 0), 0u) << message;
  EXPECT_TRUE(MountedAsCairn()) << "READY comes once the mount is in place";
  RecordConnection();
  ASSERT_EQ(Run("echo service > " + QP("s")).exit_code, 0);
  kill(daemon, SIGTERM);
  int status = 0;
  ASSERT_TRUE(WaitFor([&] { return waitpid(daemon, &status, WNOHANG) == daemon; }, 60));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_FALSE(IsMounted(mount_dir_));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Run("cat " + QP("s")).output, "service\n");
}

// The shipped units verify, with the binary path pointed at the cairn under
// test (verify checks that ExecStart's program exists).
TEST_F(SystemMountTest, SystemdUnitsAndAUnitGeneratedFromFstabVerify) {
  if (Run("command -v systemd-analyze").exit_code != 0) {
    GTEST_SKIP() << "systemd-analyze is not installed";
  }
  const std::string source = std::string(CAIRN_SOURCE_DIR) + "/packaging/systemd";
  const std::string units = work_dir_ + "/units";
  ASSERT_EQ(mkdir(units.c_str(), 0755), 0);
  CommandResult copy = Run("cp " + Quote(source + "/mnt-cairn.mount") + " " + Quote(units) +
                           " && sed 's#/usr/bin/cairn#" + CairnBinary() + "#' " +
                           Quote(source + "/cairn@.service") + " > " +
                           Quote(units + "/cairn@mnt-cairn.service"));
  ASSERT_EQ(copy.exit_code, 0) << Brief(copy);
  CommandResult verify = Run("cd " + Quote(units) +
                             " && systemd-analyze verify ./mnt-cairn.mount "
                             "./cairn@mnt-cairn.service");
  EXPECT_EQ(verify.exit_code, 0) << Brief(verify);
  EXPECT_EQ(verify.output, "") << "no warnings either";
  // What systemd makes of an fstab line of type cairn.
  std::string fstab = WriteFstab("/srv/cairn  /mnt/cairn  cairn  defaults,noatime,nofail  0  0\n");
  const std::string generated = work_dir_ + "/generated";
  CommandResult generate = Run(
      "mkdir -p " + Quote(generated) + "/n " + Quote(generated) + "/e " + Quote(generated) +
      "/l && SYSTEMD_FSTAB=" + Quote(fstab) +
      " /lib/systemd/system-generators/systemd-fstab-generator " + Quote(generated) + "/n " +
      Quote(generated) + "/e " + Quote(generated) + "/l");
  ASSERT_EQ(generate.exit_code, 0) << Brief(generate);
  CommandResult unit = Run("cat " + Quote(generated + "/n/mnt-cairn.mount"));
  ASSERT_EQ(unit.exit_code, 0) << Brief(unit);
  EXPECT_NE(unit.output.find("Type=cairn"), std::string::npos) << unit.output;
  CommandResult verify_generated =
      Run("cd " + Quote(generated + "/n") + " && systemd-analyze verify ./mnt-cairn.mount");
  EXPECT_EQ(verify_generated.exit_code, 0) << Brief(verify_generated);
}

}  // namespace
}  // namespace cairn_it

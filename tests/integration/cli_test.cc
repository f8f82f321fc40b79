// The command line contract: exit codes, messages a person can act on, and
// bad input that changes nothing; status; signals to the daemon; recovery
// from a daemon that was killed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class CliTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }

  // A second, unmounted volume and a mountpoint for it.
  void MakeSecondVolume() {
    other_volume_ = work_dir_ + "/vol2";
    other_mount_ = work_dir_ + "/mnt2";
    CommandResult format = Cairn("format " + Quote(other_volume_), 60);
    ASSERT_EQ(format.exit_code, 0) << Brief(format);
    ASSERT_EQ(mkdir(other_mount_.c_str(), 0755), 0);
  }

  // What a user sees of a volume: its config and whether it is held.
  std::string VolumeState(const std::string& volume) {
    return Run("sha256sum < " + Quote(volume + "/cairn.toml")).output +
           JsonField(Cairn("status --json " + Quote(volume), 30).output, "mounted")
               .value_or("<no status>");
  }

  // Expects the second volume to be intact: not mounted, not held, and
  // mountable afterwards.
  void ExpectSecondVolumeUsable() {
    EXPECT_FALSE(IsMounted(other_mount_));
    EXPECT_EQ(JsonField(Cairn("status --json " + Quote(other_volume_), 30).output,
                        "mounted"),
              "false");
    CommandResult mount = Cairn("mount " + Quote(other_volume_) + " " + Quote(other_mount_), 60);
    EXPECT_EQ(mount.exit_code, 0) << "volume unusable after a refused command: "
                                  << Brief(mount);
    CommandResult umount = Cairn("umount " + Quote(other_mount_), 120);
    EXPECT_EQ(umount.exit_code, 0) << Brief(umount);
  }

  std::string other_volume_;
  std::string other_mount_;
};

TEST_F(CliTest, HelpDescribesCommandsAndOptions) {
  CommandResult help = Cairn("--help");
  EXPECT_EQ(help.exit_code, 0) << Brief(help);
  for (const char* word : {"format", "mount", "umount", "status", "--force", "--json"}) {
    EXPECT_NE(help.output.find(word), std::string::npos) << "cairn --help lacks " << word;
  }
  CommandResult mount_help = Cairn("mount --help");
  EXPECT_EQ(mount_help.exit_code, 0) << Brief(mount_help);
  for (const char* word : {"-f", "-o", "allow_other", "ro"}) {
    EXPECT_NE(mount_help.output.find(word), std::string::npos)
        << "cairn mount --help lacks " << word;
  }
  CommandResult format_help = Cairn("format --help");
  EXPECT_EQ(format_help.exit_code, 0) << Brief(format_help);
  EXPECT_NE(format_help.output.find("--disk"), std::string::npos);
  EXPECT_NE(format_help.output.find("--force"), std::string::npos);
  CommandResult unknown = Cairn("frobnicate");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.output.find("frobnicate"), std::string::npos) << Brief(unknown);
  CommandResult none = Cairn("");
  EXPECT_NE(none.exit_code, 0) << "no command must not succeed";
}

TEST_F(CliTest, MountOnMissingMountpointFailsAndCreatesNothing) {
  ASSERT_NO_FATAL_FAILURE(MakeSecondVolume());
  std::string missing = work_dir_ + "/nope";
  std::string state = VolumeState(other_volume_);
  CommandResult mount = Cairn("mount " + Quote(other_volume_) + " " + Quote(missing), 60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find(missing), std::string::npos)
      << "message must name the mountpoint: " << Brief(mount);
  EXPECT_NE(access(missing.c_str(), F_OK), 0) << "mount created the mountpoint";
  EXPECT_FALSE(IsMounted(missing));
  EXPECT_EQ(VolumeState(other_volume_), state);
  ExpectSecondVolumeUsable();
}

TEST_F(CliTest, MountOnRegularFileFails) {
  ASSERT_NO_FATAL_FAILURE(MakeSecondVolume());
  std::string file = work_dir_ + "/file";
  ASSERT_EQ(Run("echo content > " + Quote(file)).exit_code, 0);
  std::string state = VolumeState(other_volume_);
  CommandResult mount = Cairn("mount " + Quote(other_volume_) + " " + Quote(file), 60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find(file), std::string::npos) << Brief(mount);
  EXPECT_NE(mount.output.find("director"), std::string::npos)
      << "message must say a directory is needed: " << Brief(mount);
  EXPECT_FALSE(IsMounted(file));
  EXPECT_EQ(Run("cat " + Quote(file)).output, "content\n");
  EXPECT_EQ(VolumeState(other_volume_), state);
  ExpectSecondVolumeUsable();
}

TEST_F(CliTest, MountOfNonVolumeDirectoryFails) {
  std::string plain = work_dir_ + "/plain";
  std::string mnt2 = work_dir_ + "/mnt2";
  ASSERT_EQ(Run("mkdir -p " + Quote(plain) + "/sub " + Quote(mnt2) + " && echo x > " +
                Quote(plain + "/f"))
                .exit_code,
            0);
  std::string listing_cmd = "cd " + Quote(plain) + " && find . -printf '%p %y %s %T@\\n' | sort";
  std::string listing = Run(listing_cmd).output;
  CommandResult mount = Cairn("mount " + Quote(plain) + " " + Quote(mnt2), 60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find(plain), std::string::npos)
      << "message must name the directory: " << Brief(mount);
  EXPECT_FALSE(IsMounted(mnt2));
  EXPECT_EQ(Run(listing_cmd).output, listing) << "mount changed a non-volume directory";
  EXPECT_EQ(Run("ls -A " + Quote(mnt2)).output, "");
}

TEST_F(CliTest, SecondMountOfMountedVolumeIsRefused) {
  std::string mnt2 = work_dir_ + "/mnt2";
  ASSERT_EQ(mkdir(mnt2.c_str(), 0755), 0);
  ASSERT_EQ(Run("echo data > " + QP("f")).exit_code, 0);
  pid_t first = DaemonPid();
  ASSERT_GT(first, 0);
  CommandResult second = Cairn("mount " + Quote(volume_dir_) + " " + Quote(mnt2), 60);
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find(std::to_string(first)), std::string::npos)
      << "message should name the daemon holding the volume: " << Brief(second);
  EXPECT_FALSE(IsMounted(mnt2));
  // The first daemon still serves, reads and writes.
  EXPECT_TRUE(IsCairnMount(mount_dir_));
  EXPECT_EQ(DaemonPid(), first);
  EXPECT_EQ(Run("cat " + QP("f") + " && echo more > " + QP("g") + " && cat " + QP("g")).output,
            "data\nmore\n");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(Run("cat " + QP("f") + " " + QP("g")).output, "data\nmore\n");
}

// Mounting over the volume's own storage used to leave the daemon in D
// state waiting on itself, and umount with it: each such mountpoint is
// refused at once, and nothing is mounted.
TEST_F(CliTest, MountpointOverlappingTheVolumesStorageIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const std::string config = VolumeState(volume_dir_);
  ASSERT_EQ(Run("mkdir -p " + Quote(volume_dir_ + "/inside") + " " +
                Quote(volume_dir_ + "/cache/inside")).exit_code, 0);
  std::vector<std::string> mountpoints = {volume_dir_, volume_dir_ + "/inside",
                                          volume_dir_ + "/cache", volume_dir_ + "/cache/inside",
                                          work_dir_, volume_dir_ + "/./"};
  for (int i = 0; i < DiskCount(); ++i) {
    mountpoints.push_back(work_dir_ + "/disk" + std::to_string(i));
  }
  if (DiskCount() == 0) mountpoints.push_back(volume_dir_ + "/data");
  const std::string link = work_dir_ + "/link-to-volume";
  ASSERT_EQ(symlink(volume_dir_.c_str(), link.c_str()), 0);
  mountpoints.push_back(link);
  for (const std::string& mountpoint : mountpoints) {
    CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + Quote(mountpoint), 30);
    EXPECT_NE(mount.exit_code, 0) << mountpoint << ": " << Brief(mount);
    EXPECT_NE(mount.output.find("outside the volume's storage"), std::string::npos)
        << mountpoint << ": " << Brief(mount);
    EXPECT_FALSE(IsMounted(mountpoint)) << mountpoint;
  }
  EXPECT_EQ(VolumeState(volume_dir_), config);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

TEST_F(CliTest, UnknownMountOptionIsRefused) {
  ASSERT_NO_FATAL_FAILURE(MakeSecondVolume());
  std::string state = VolumeState(other_volume_);
  CommandResult mount = Cairn("mount " + Quote(other_volume_) + " " + Quote(other_mount_) +
                                  " -o ro,bogus_opt",
                              60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find("bogus_opt"), std::string::npos) << Brief(mount);
  EXPECT_FALSE(IsMounted(other_mount_));
  EXPECT_EQ(VolumeState(other_volume_), state);
  ExpectSecondVolumeUsable();
}

TEST_F(CliTest, FormatRefusesNonEmptyDirectoryWithoutForce) {
  std::string dir = work_dir_ + "/full";
  ASSERT_EQ(Run("mkdir -p " + Quote(dir) + " && echo keep > " + Quote(dir + "/precious"))
                .exit_code,
            0);
  std::string listing_cmd = "cd " + Quote(dir) + " && find . -printf '%p %y %s %T@\\n' | sort";
  std::string listing = Run(listing_cmd).output;
  CommandResult refused = Cairn("format " + Quote(dir), 60);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("--force"), std::string::npos)
      << "message should say how to override: " << Brief(refused);
  EXPECT_EQ(Run(listing_cmd).output, listing) << "a refused format changed the directory";
  EXPECT_EQ(Run("cat " + Quote(dir + "/precious")).output, "keep\n");
  // An existing volume is just as non-empty.
  ASSERT_NO_FATAL_FAILURE(MakeSecondVolume());
  std::string state = VolumeState(other_volume_);
  EXPECT_NE(Cairn("format " + Quote(other_volume_), 60).exit_code, 0);
  EXPECT_EQ(VolumeState(other_volume_), state);
}

TEST_F(CliTest, FormatRefusesMountedVolumeEvenWithForce) {
  ASSERT_EQ(Run("echo precious > " + QP("f") + " && sync " + QP("f")).exit_code, 0);
  std::string id = JsonField(Cairn("status --json " + Quote(volume_dir_)).output,
                             "volume_id").value_or("<none>");
  std::string config = Run("sha256sum < " + Quote(volume_dir_ + "/cairn.toml")).output;
  CommandResult format = Cairn("format --force " + Quote(volume_dir_), 60);
  EXPECT_NE(format.exit_code, 0);
  EXPECT_NE(format.output.find("mounted"), std::string::npos) << Brief(format);
  EXPECT_TRUE(IsCairnMount(mount_dir_));
  EXPECT_EQ(Run("sha256sum < " + Quote(volume_dir_ + "/cairn.toml")).output, config);
  EXPECT_EQ(JsonField(Cairn("status --json " + Quote(volume_dir_)).output, "volume_id"), id);
  EXPECT_EQ(Run("cat " + QP("f")).output, "precious\n");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(Run("cat " + QP("f")).output, "precious\n");
}

TEST_F(CliTest, StatusShowsMountpointAndLiveDaemon) {
  for (const std::string& target : {mount_dir_, volume_dir_}) {
    CommandResult json = Cairn("status --json " + Quote(target));
    ASSERT_EQ(json.exit_code, 0) << Brief(json);
    if (RunCommand("command -v python3").exit_code == 0) {
      CommandResult parsed = Run("printf '%s' " + Quote(json.output) +
                                 " | python3 -c 'import json,sys; json.load(sys.stdin)'");
      EXPECT_EQ(parsed.exit_code, 0) << "not JSON: " << Brief(json) << Brief(parsed);
    }
    EXPECT_EQ(JsonField(json.output, "mounted"), "true") << Brief(json);
    EXPECT_EQ(JsonField(json.output, "mountpoint"), mount_dir_) << Brief(json);
    std::optional<std::string> pid_text = JsonField(json.output, "pid");
    ASSERT_TRUE(pid_text.has_value()) << Brief(json);
    pid_t pid = atoi(pid_text->c_str());
    EXPECT_TRUE(ProcessAlive(pid)) << "pid " << pid << " from status is not alive";
    CommandResult text = Cairn("status " + Quote(target));
    EXPECT_EQ(text.exit_code, 0) << Brief(text);
    EXPECT_NE(text.output.find(mount_dir_), std::string::npos) << Brief(text);
    EXPECT_NE(text.output.find(*pid_text), std::string::npos) << Brief(text);
  }
}

TEST_F(CliTest, StatusShowsTheCacheWhileMounted) {
  ASSERT_EQ(Run("head -c 1048576 /dev/urandom > " + QP("f") + " && cat " + QP("f") +
                " > /dev/null").exit_code, 0);
  // The daemon refreshes its counters every 2 s.
  std::optional<std::string> journal;
  ASSERT_TRUE(WaitFor([&] {
    journal = JsonField(Cairn("status --json " + QP("")).output, "journal_bytes");
    return journal && std::stoull(*journal) >= (1u << 20);
  }, 10)) << "journal_bytes " << journal.value_or("absent");
  CommandResult text = Cairn("status " + QP(""));
  EXPECT_NE(text.output.find("journal"), std::string::npos) << Brief(text);
  EXPECT_NE(text.output.find("hit rate"), std::string::npos) << Brief(text);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult after = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_EQ(JsonField(after.output, "cache"), "null") << Brief(after);
}

TEST_F(CliTest, StatusOfUnmountedVolumeSaysSo) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult json = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_EQ(json.exit_code, 0) << Brief(json);
  EXPECT_EQ(JsonField(json.output, "mounted"), "false") << Brief(json);
  CommandResult text = Cairn("status " + Quote(volume_dir_));
  EXPECT_EQ(text.exit_code, 0) << Brief(text);
  EXPECT_EQ(text.output.find(mount_dir_), std::string::npos)
      << "unmounted volume still shows its old mountpoint: " << Brief(text);
  // The mountpoint of nothing is not a volume.
  EXPECT_NE(Cairn("status " + Quote(mount_dir_)).exit_code, 0);
}

TEST_F(CliTest, NewerFormatVersionIsRefusedNamingTheVersion) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  std::string toml = Quote(volume_dir_ + "/cairn.toml");
  CommandResult edit = Run("sed -i 's/^format_version *= *[0-9]*/format_version = 999/' " +
                           toml + " && grep -q '^format_version = 999' " + toml);
  ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
  std::string config = Run("sha256sum < " + toml).output;
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find("999"), std::string::npos) << Brief(mount);
  EXPECT_NE(mount.output.find("version"), std::string::npos) << Brief(mount);
  EXPECT_FALSE(IsMounted(mount_dir_));
  EXPECT_EQ(Run("sha256sum < " + toml).output, config) << "refused mount rewrote the config";
}

// An operator who deletes cairn.toml or edits its format_version is told
// how to get the volume back, and fsck --repair puts back exactly what the
// volume was mounted with; `cairn format` is never the advice.
TEST_F(CliTest, FsckRepairRebuildsALostConfigAndUndoesAnEditedVersion) {
  CommandResult made = Run("head -c 300000 /dev/urandom > " + QP("f") + " && sha256sum < " +
                           QP("f"));
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const std::string toml = Quote(volume_dir_ + "/cairn.toml");
  const std::string config = Run("cat " + toml).output;
  ASSERT_EQ(Run("rm " + toml).exit_code, 0);

  CommandResult refused = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("cairn fsck --repair"), std::string::npos) << Brief(refused);
  EXPECT_EQ(refused.output.find("cairn format"), std::string::npos) << Brief(refused);
  EXPECT_FALSE(IsMounted(mount_dir_));
  CommandResult check = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(check.exit_code, 8) << Brief(check);
  EXPECT_NE(Run("test -e " + toml).exit_code, 0) << "fsck without --repair wrote cairn.toml";

  CommandResult repaired = Cairn("fsck --repair " + Quote(volume_dir_), 120);
  EXPECT_EQ(repaired.exit_code, 1) << Brief(repaired);
  EXPECT_NE(repaired.output.find("rebuilt"), std::string::npos) << Brief(repaired);
  EXPECT_EQ(Run("cat " + toml).output, config);

  CommandResult edit = Run("sed -i 's/^format_version *= *[0-9]*/format_version = 4294967298/' " +
                           toml);
  ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
  CommandResult wrong = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.output.find("4294967298"), std::string::npos) << Brief(wrong);
  EXPECT_NE(wrong.output.find("cairn fsck --repair"), std::string::npos) << Brief(wrong);
  CommandResult fixed = Cairn("fsck --repair " + Quote(volume_dir_), 120);
  EXPECT_EQ(fixed.exit_code, 1) << Brief(fixed);
  EXPECT_EQ(Run("cat " + toml).output, config);

  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Run("sha256sum < " + QP("f")).output, made.output);
}

// Options that take a value take it as the next word or after "=", as
// GNU tools do: scripts write either.
TEST_F(CliTest, FsckTakesDiskAsTheNextWordOrAfterAnEqualsSign) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  for (const std::string form : {"--disk /d", "--disk=/d"}) {
    CommandResult check = Cairn("fsck " + form + " " + Quote(volume_dir_), 60);
    EXPECT_EQ(check.exit_code, 16) << form << ": " << Brief(check);
    EXPECT_NE(check.output.find("it needs --repair"), std::string::npos)
        << form << " was not taken as --disk: " << Brief(check);
  }
  CommandResult missing = Cairn("fsck " + Quote(volume_dir_) + " --disk", 60);
  EXPECT_EQ(missing.exit_code, 16) << Brief(missing);
  EXPECT_NE(missing.output.find("--disk needs a directory"), std::string::npos) << Brief(missing);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

TEST_F(CliTest, SigtermUnmountsCleanlyAndKeepsData) {
  // Written without fsync: SIGTERM must still get the kernel's dirty pages
  // and the daemon's buffers onto the volume.
  std::string source = work_dir_ + "/source";
  ASSERT_EQ(Run("head -c 3000000 /dev/urandom > " + Quote(source) + " && cp " +
                Quote(source) + " " + QP("f") + " && mkdir " + QP("d") +
                " && echo small > " + QP("d/s"))
                .exit_code,
            0);
  pid_t pid = DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGTERM), 0) << strerror(errno);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid) && !IsMounted(mount_dir_); }, 120))
      << "daemon did not unmount and exit on SIGTERM";
  EXPECT_EQ(JsonField(Cairn("status --json " + Quote(volume_dir_)).output, "mounted"),
            "false");
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult compare = Run("cmp " + Quote(source) + " " + QP("f") + " && cat " + QP("d/s"));
  EXPECT_EQ(compare.exit_code, 0) << Brief(compare);
  EXPECT_EQ(compare.output, "small\n");
}

TEST_F(CliTest, KilledDaemonLeavesStaleMountThatMountCleansUp) {
  // fsynced data must survive the daemon's death.
  ASSERT_EQ(Run("echo kept | dd of=" + QP("f") + " conv=fsync status=none").exit_code, 0);
  pid_t pid = DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0) << strerror(errno);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, 10));
  // What the user finds: a mount that answers ENOTCONN (ECONNABORTED while
  // the kernel is still tearing the connection down).
  struct stat st;
  ASSERT_TRUE(IsMounted(mount_dir_));
  errno = 0;
  EXPECT_EQ(stat(mount_dir_.c_str(), &st), -1);
  EXPECT_TRUE(errno == ENOTCONN || errno == ECONNABORTED) << strerrorname_np(errno);
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 60);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  RecordConnection();
  EXPECT_NE(mount.output.find(mount_dir_), std::string::npos)
      << "mount should say it cleaned up the stale mount: " << Brief(mount);
  std::vector<MountEntry> mounts = MountsAt(mount_dir_);
  ASSERT_EQ(mounts.size(), 1u) << "stale mount left under the new one";
  EXPECT_EQ(mounts[0].fstype, "fuse.cairn");
  EXPECT_EQ(Run("cat " + QP("f")).output, "kept\n");
  EXPECT_GT(DaemonPid(), 0);
  EXPECT_EQ(Run("echo again > " + QP("g") + " && cat " + QP("g")).output, "again\n");
}

// Data the daemon cannot store before it exits (too few disks left) stays in
// the journal, and `cairn umount` says so instead of exiting 0; the next
// mount with the disks back stores it.
TEST_F(CliTest, UmountReportsDataTheDaemonCouldNotStore) {
  std::string volume = work_dir_ + "/vol3", mnt = work_dir_ + "/mnt3";
  std::string disks;
  for (int i = 0; i < 3; ++i) disks += " --disk " + Quote(work_dir_ + "/d" + std::to_string(i));
  ASSERT_EQ(Cairn("format " + Quote(volume) + disks, 60).exit_code, 0);
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(Cairn("mount " + Quote(volume) + " " + Quote(mnt), 60).exit_code, 0);
  // Two of three disks of ec:2+1 disappear; the daemon notices within 2 s.
  for (int i : {1, 2}) {
    std::string d = work_dir_ + "/d" + std::to_string(i);
    ASSERT_EQ(rename(d.c_str(), (d + ".away").c_str()), 0);
  }
  ASSERT_TRUE(WaitFor([&] {
    return Cairn("status --json " + Quote(volume), 30).output.find("\"failed\"") !=
           std::string::npos;
  }, 20));
  ASSERT_EQ(Run("head -c 1000000 /dev/urandom > " + Quote(mnt + "/f") + " && sha256sum < " +
                Quote(mnt + "/f") + " > " + Quote(work_dir_ + "/sum")).exit_code, 0);
  CommandResult umount = Cairn("umount " + Quote(mnt), 120);
  EXPECT_EQ(umount.exit_code, 1) << Brief(umount);
  EXPECT_NE(umount.output.find("journal"), std::string::npos) << Brief(umount);
  for (int i : {1, 2}) {
    std::string d = work_dir_ + "/d" + std::to_string(i);
    ASSERT_EQ(rename((d + ".away").c_str(), d.c_str()), 0);
  }
  ASSERT_EQ(Cairn("mount " + Quote(volume) + " " + Quote(mnt), 60).exit_code, 0);
  CommandResult same = Run("sha256sum < " + Quote(mnt + "/f") + " | cmp - " +
                           Quote(work_dir_ + "/sum"));
  EXPECT_EQ(same.exit_code, 0) << Brief(same);
  CommandResult clean = Cairn("umount " + Quote(mnt), 120);
  EXPECT_EQ(clean.exit_code, 0) << Brief(clean);
}

// Up to M missing disks mount degraded with a warning naming them; more are
// refused, naming each. Data written before reads back either way.
TEST_F(CliTest, MountWithMissingDisksWarnsUpToParityAndRefusesBeyond) {
  std::string volume = work_dir_ + "/vol4", mnt = work_dir_ + "/mnt4";
  auto disk = [&](int i) { return work_dir_ + "/e" + std::to_string(i); };
  std::string disks;
  for (int i = 0; i < 3; ++i) disks += " --disk " + Quote(disk(i));
  CommandResult format = Cairn("format " + Quote(volume) + disks, 60);
  ASSERT_EQ(format.exit_code, 0) << Brief(format);
  EXPECT_NE(format.output.find("ec:2+1"), std::string::npos) << Brief(format);
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(Cairn("mount " + Quote(volume) + " " + Quote(mnt), 60).exit_code, 0);
  ASSERT_EQ(Run("head -c 3000000 /dev/urandom > " + Quote(mnt + "/f") + " && sha256sum < " +
                Quote(mnt + "/f") + " > " + Quote(work_dir_ + "/sum4")).exit_code, 0);
  ASSERT_EQ(Cairn("umount " + Quote(mnt), 120).exit_code, 0);

  ASSERT_EQ(Run("rm -rf " + Quote(disk(1))).exit_code, 0);
  CommandResult degraded = Cairn("mount " + Quote(volume) + " " + Quote(mnt), 60);
  ASSERT_EQ(degraded.exit_code, 0) << Brief(degraded);
  EXPECT_NE(degraded.output.find("DEGRADED"), std::string::npos) << Brief(degraded);
  EXPECT_NE(degraded.output.find(disk(1)), std::string::npos) << Brief(degraded);
  CommandResult same = Run("sha256sum < " + Quote(mnt + "/f") + " | cmp - " +
                           Quote(work_dir_ + "/sum4"));
  EXPECT_EQ(same.exit_code, 0) << Brief(same);
  ASSERT_EQ(Cairn("umount " + Quote(mnt), 120).exit_code, 0);

  ASSERT_EQ(Run("rm -rf " + Quote(disk(2))).exit_code, 0);
  CommandResult refused = Cairn("mount " + Quote(volume) + " " + Quote(mnt), 60);
  EXPECT_EQ(refused.exit_code, 1) << Brief(refused);
  EXPECT_NE(refused.output.find(disk(1)), std::string::npos) << Brief(refused);
  EXPECT_NE(refused.output.find(disk(2)), std::string::npos) << Brief(refused);
  EXPECT_FALSE(IsMounted(mnt));
}

// In a log or a pipe, long commands print plain progress lines (on a
// terminal, a bar redrawn in place); CAIRN_PROGRESS_SECONDS shortens the
// 10 s between lines for the test.
TEST_F(CliTest, LongCommandsPrintPlainProgressLinesWhenNotOnATerminal) {
  CommandResult made = Run("cd " + QP("") + " && for i in $(seq 40); do head -c 200000 "
                           "/dev/urandom > f$i; done");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const std::string fast = "CAIRN_PROGRESS_SECONDS=0.000001 ";
  CommandResult fsck = Run(fast + Quote(CairnBinary()) + " fsck " + Quote(volume_dir_) + " 2>&1");
  EXPECT_EQ(fsck.exit_code, 0) << Brief(fsck);
  EXPECT_NE(fsck.output.find("fsck: "), std::string::npos) << Brief(fsck);
  EXPECT_NE(fsck.output.find("% done, 16 of 40 blobs"), std::string::npos) << Brief(fsck);
  EXPECT_EQ(fsck.output.find('\r'), std::string::npos) << "no bar redrawing in a log";
  CommandResult scrub = Run(fast + Quote(CairnBinary()) + " scrub " + Quote(volume_dir_) + " 2>&1");
  EXPECT_EQ(scrub.exit_code, 0) << Brief(scrub);
  EXPECT_NE(scrub.output.find("scrub: 100% done, 40 of 40 blobs"), std::string::npos)
      << Brief(scrub);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

// A copy of a volume (a restore beside its original, or cp -a) has the
// same volume id: each must still answer for itself, and a command given
// one of them must never act on the other.
TEST_F(CliTest, TwoCopiesOfOneVolumeEachAnswerForItself) {
  CommandResult made = Run("cd " + QP("") + " && for i in $(seq 10); do head -c 200000 "
                           "/dev/urandom > f$i; done");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const std::string copy = work_dir_ + "/copy", copy_mount = work_dir_ + "/copy-mnt";
  CommandResult copied = Run("cp -a " + Quote(volume_dir_) + " " + Quote(copy) + " && sed -i "
                             "'s|^cache_dir = .*|cache_dir = \"" + copy + "/cache\"|' " +
                             Quote(copy + "/cairn.toml") + " && mkdir " + Quote(copy_mount));
  ASSERT_EQ(copied.exit_code, 0) << Brief(copied);
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult second = Cairn("mount " + Quote(copy) + " " + Quote(copy_mount), 60);
  ASSERT_EQ(second.exit_code, 0) << Brief(second);
  CommandResult more = Run("cd " + Quote(copy_mount) + " && for i in $(seq 5); do head -c 200000 "
                           "/dev/urandom > g$i; done");
  ASSERT_EQ(more.exit_code, 0) << Brief(more);
  // A remount flushes the write cache, so the copy's five new files are blobs scrub counts.
  CommandResult flushed = Cairn("umount " + Quote(copy_mount), 120);
  ASSERT_EQ(flushed.exit_code, 0) << Brief(flushed);
  CommandResult again = Cairn("mount " + Quote(copy) + " " + Quote(copy_mount), 60);
  ASSERT_EQ(again.exit_code, 0) << Brief(again);
  CommandResult original = Cairn("scrub --json " + Quote(volume_dir_), 120);
  CommandResult restored = Cairn("scrub --json " + Quote(copy_mount), 120);
  EXPECT_EQ(original.exit_code, 0) << Brief(original);
  EXPECT_EQ(restored.exit_code, 0) << Brief(restored);
  EXPECT_EQ(JsonField(original.output, "blobs_checked"), "10") << Brief(original);
  EXPECT_EQ(JsonField(restored.output, "blobs_checked"), "15") << Brief(restored);
  CommandResult umount = Cairn("umount " + Quote(copy_mount), 120);
  EXPECT_EQ(umount.exit_code, 0) << Brief(umount);
}

}  // namespace
}  // namespace cairn_it

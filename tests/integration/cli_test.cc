// The command line contract: exit codes, messages, and bad input that
// changes nothing.
#include <unistd.h>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class CliTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }
  CommandResult Cairn(const std::string& args) {
    return Sh(Quote(CairnBinary()) + " " + args, 120);
  }
};

TEST_F(CliTest, HelpDescribesVerbsAndOptions) {
  CommandResult help = Cairn("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* verb : {"format", "mount", "umount", "status"}) {
    EXPECT_NE(help.output.find(verb), std::string::npos) << verb;
  }
  CommandResult mount_help = Cairn("mount --help");
  EXPECT_EQ(mount_help.exit_code, 0);
  EXPECT_NE(mount_help.output.find("-f"), std::string::npos);
  EXPECT_NE(mount_help.output.find("allow_other"), std::string::npos);
  EXPECT_NE(Cairn("frobnicate").exit_code, 0);
}

TEST_F(CliTest, MountRefusesBadMountpoints) {
  std::string other = work_dir_ + "/vol2";
  ASSERT_EQ(Cairn("format " + Quote(other)).exit_code, 0);
  CommandResult missing = Cairn("mount " + Quote(other) + " " +
                                Quote(work_dir_ + "/nope"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("nope"), std::string::npos) << missing.output;
  ASSERT_EQ(Sh("touch " + Quote(work_dir_ + "/file")).exit_code, 0);
  CommandResult file = Cairn("mount " + Quote(other) + " " +
                             Quote(work_dir_ + "/file"));
  EXPECT_NE(file.exit_code, 0);
  EXPECT_NE(file.output.find("director"), std::string::npos) << file.output;
}

TEST_F(CliTest, MountRefusesNonVolumeAndUnknownOption) {
  std::string plain = work_dir_ + "/plain";
  std::string mnt2 = work_dir_ + "/mnt2";
  ASSERT_EQ(Sh("mkdir -p " + Quote(plain) + " " + Quote(mnt2)).exit_code, 0);
  CommandResult not_volume = Cairn("mount " + Quote(plain) + " " + Quote(mnt2));
  EXPECT_NE(not_volume.exit_code, 0);
  EXPECT_NE(not_volume.output.find("cairn format"), std::string::npos)
      << not_volume.output;
  std::string other = work_dir_ + "/vol2";
  ASSERT_EQ(Cairn("format " + Quote(other)).exit_code, 0);
  CommandResult bad_option =
      Cairn("mount " + Quote(other) + " " + Quote(mnt2) + " -o bogus_opt");
  EXPECT_NE(bad_option.exit_code, 0);
  EXPECT_NE(bad_option.output.find("bogus_opt"), std::string::npos);
  EXPECT_FALSE(IsMounted(mnt2));
}

TEST_F(CliTest, SecondDaemonOnSameVolumeRefuses) {
  std::string mnt2 = work_dir_ + "/mnt2";
  ASSERT_EQ(Sh("mkdir -p " + Quote(mnt2)).exit_code, 0);
  ASSERT_EQ(Sh("echo data > " + Quote(P("f"))).exit_code, 0);
  CommandResult second = Cairn("mount " + Quote(volume_dir_) + " " + Quote(mnt2));
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find("already"), std::string::npos) << second.output;
  EXPECT_FALSE(IsMounted(mnt2));
  EXPECT_EQ(Sh("cat " + Quote(P("f"))).output, "data\n");
}

TEST_F(CliTest, FormatRefusesNonEmptyAndMountedVolumes) {
  std::string dir = work_dir_ + "/full";
  ASSERT_EQ(Sh("mkdir -p " + Quote(dir) + " && echo keep > " +
                Quote(dir + "/precious"))
                .exit_code,
            0);
  CommandResult refused = Cairn("format " + Quote(dir));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("--force"), std::string::npos) << refused.output;
  EXPECT_EQ(Sh("cat " + Quote(dir + "/precious")).output, "keep\n");
  CommandResult mounted = Cairn("format --force " + Quote(volume_dir_));
  EXPECT_NE(mounted.exit_code, 0);
  EXPECT_TRUE(IsMounted(mount_dir_));
}

TEST_F(CliTest, StatusReportsMountAndPid) {
  CommandResult status = Cairn("status " + Quote(mount_dir_));
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(mount_dir_), std::string::npos);
  CommandResult json = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_NE(json.output.find("\"mounted\": true"), std::string::npos)
      << json.output;
  std::string pid = Sh("awk '{print $1}' " + Quote(volume_dir_ + "/lock"))
                        .output;
  pid.erase(pid.find_last_not_of("\n") + 1);
  EXPECT_NE(json.output.find("\"pid\": " + pid), std::string::npos)
      << json.output;
  EXPECT_EQ(Sh("kill -0 " + pid).exit_code, 0);
}

TEST_F(CliTest, NewerFormatVersionIsRefused) {
  Unmount();
  ASSERT_EQ(Sh("sed -i 's/^format_version *= *[0-9]*/format_version = 999/' " +
                Quote(volume_dir_ + "/cairn.toml"))
                .exit_code,
            0);
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " +
                              Quote(mount_dir_));
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find("999"), std::string::npos) << mount.output;
  EXPECT_FALSE(IsMounted(mount_dir_));
}

TEST_F(CliTest, StaleMountOfKilledDaemonIsCleanedOnMount) {
  // fsynced data must survive the daemon's death.
  ASSERT_EQ(Sh("echo kept | dd of=" + Quote(P("f")) + " conv=fsync status=none")
                .exit_code,
            0);
  std::string pid = Sh("awk '{print $1}' " + Quote(volume_dir_ + "/lock"))
                        .output;
  ASSERT_EQ(Sh("kill -KILL " + pid).exit_code, 0);
  for (int i = 0; i < 100 && Sh("kill -0 " + pid).exit_code == 0; ++i) {
    usleep(50000);
  }
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " +
                              Quote(mount_dir_));
  ASSERT_EQ(mount.exit_code, 0) << mount.output;
  EXPECT_NE(mount.output.find("stale"), std::string::npos) << mount.output;
  EXPECT_EQ(Sh("cat " + Quote(P("f"))).output, "kept\n");
}

}  // namespace
}  // namespace cairn_it

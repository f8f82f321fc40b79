// What another local user can do to a volume root mounted: nothing. Each
// test creates an unprivileged user of its own (removed after it) and tries,
// as that user, what the backing store's modes used to allow: read file
// data out of the journal, the namespace and the shards; command the
// daemon; plant a link where the root daemon writes.
#include <unistd.h>

#include <string>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class SecurityTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create a user";
    user_ = "cairn-it-" + std::to_string(getpid());
    CommandResult added = RunCommand("useradd --no-create-home --user-group --shell "
                                     "/usr/sbin/nologin " + user_);
    ASSERT_EQ(added.exit_code, 0) << Brief(added);
    user_added_ = true;
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    // The work directory is private (mkdtemp); open it so that only the
    // volume's own modes stand between the user and its files, as they do
    // for a volume under /srv.
    ASSERT_EQ(Run("chmod 755 " + Quote(work_dir_)).exit_code, 0);
  }
  void TearDown() override {
    MountTest::TearDown();
    if (user_added_) {
      RunCommand("pkill -KILL -u " + user_ + "; userdel " + user_ + " 2>/dev/null; groupdel " +
                 user_ + " 2>/dev/null");
    }
  }

  // Runs `command` with bash as the test's user.
  CommandResult AsUser(const std::string& command, int timeout_seconds = 60) {
    return Run("runuser -u " + user_ + " -- bash -c " + Quote(command), timeout_seconds);
  }

  // Every directory that holds the volume's bytes.
  std::string StoreDirs() {
    std::string dirs = Quote(volume_dir_);
    for (int i = 0; i < DiskCount(); ++i) dirs += " " + Quote(work_dir_ + "/disk" +
                                                              std::to_string(i));
    return dirs;
  }

  std::string user_;
  bool user_added_ = false;
};

TEST_F(SecurityTest, AnotherUserCannotReadFileDataFromTheBackingStore) {
  const std::string marker = "cairn-secret-" + std::to_string(getpid()) + "-x9q";
  // A small file (inline in the namespace) and a large one (blobs and
  // shards), owner-only through the mount, fsynced so the journal holds them.
  CommandResult written = Run(
      "umask 077 && printf '%s\\n' " + marker + " > " + QP("small") + " && for i in $(seq 30000);"
      " do echo " + marker + "; done > " + QP("large") + " && sync " + QP("small") + " " +
      QP("large"));
  ASSERT_EQ(written.exit_code, 0) << Brief(written);
  ASSERT_EQ(Run("grep -c " + marker + " " + QP("small")).output, "1\n");
  EXPECT_NE(AsUser("cat " + QP("small")).exit_code, 0) << "the mount itself let the user read";
  // While mounted the bytes sit in the journal and the namespace. grep -l
  // prints each file that holds the marker; its complaints go to /dev/null.
  CommandResult mounted = AsUser("grep -r -a -l " + marker + " " + StoreDirs() + " 2>/dev/null");
  EXPECT_EQ(mounted.output, "") << "another user read file data from these files";
  EXPECT_NE(AsUser("ls " + Quote(volume_dir_)).exit_code, 0) << "the volume directory is open";
  // After an unmount they are in the shards (and the namespace).
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult stored = AsUser("grep -r -a -l " + marker + " " + StoreDirs() + " 2>/dev/null");
  EXPECT_EQ(stored.output, "") << "another user read file data from these files";
  for (const std::string& dir : {volume_dir_ + "/namespace", volume_dir_ + "/cache/journal"}) {
    CommandResult listed = AsUser("ls " + Quote(dir));
    EXPECT_NE(listed.exit_code, 0) << dir << " is listable: " << Brief(listed);
  }
  // As root the data is there: the search itself works.
  CommandResult root = Run("grep -r -a -l " + marker + " " + StoreDirs() + " | wc -l");
  EXPECT_NE(root.output, "0\n") << "the marker is not where the test looks";
  ASSERT_NO_FATAL_FAILURE(Mount());
}

TEST_F(SecurityTest, AnotherUserCannotCommandTheDaemon) {
  ASSERT_EQ(Run("head -c 500000 /dev/urandom > " + QP("f")).exit_code, 0);
  const std::string cairn = Quote(CairnBinary());
  for (const std::string& command : {std::string("scrub "), std::string("status --json ")}) {
    CommandResult as_user = AsUser(cairn + " " + command + Quote(volume_dir_), 60);
    EXPECT_NE(as_user.exit_code, 0) << command << ": " << Brief(as_user);
  }
  // Nor can it take the channel's place: the directory it lives in is the
  // owner's alone.
  CommandResult bind = AsUser("python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                              "s.bind('" + volume_dir_ + "/control2')\"");
  EXPECT_NE(bind.exit_code, 0) << Brief(bind);
  CommandResult scrub = Cairn("scrub --json " + Quote(volume_dir_), 120);
  EXPECT_EQ(scrub.exit_code, 0) << Brief(scrub);
}

// A cache_dir in a directory another user can write: that user could plant
// a link where the root daemon writes (stats.json.tmp pointed at a file of
// root's was truncated) or read the journal it writes there.
TEST_F(SecurityTest, ACacheDirAnotherUserControlsIsRefusedAndNoLinkIsFollowed) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const std::string victim = work_dir_ + "/victim";
  ASSERT_EQ(Run("echo precious > " + Quote(victim)).exit_code, 0);
  const std::string users = work_dir_ + "/users-dir";
  ASSERT_EQ(Run("mkdir " + Quote(users) + " && chown " + user_ + " " + Quote(users)).exit_code, 0);
  CommandResult planted = AsUser("mkdir -p " + Quote(users + "/cache") + " && ln -s " +
                                 Quote(victim) + " " + Quote(users + "/cache/stats.json.tmp") +
                                 " && ln -s " + Quote(victim) + " " +
                                 Quote(users + "/cache/stats.json"));
  ASSERT_EQ(planted.exit_code, 0) << Brief(planted);
  CommandResult mount = Cairn("mount -o cache_dir=" + Quote(users + "/cache") + " " +
                              Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(mount.exit_code, 0) << Brief(mount);
  EXPECT_NE(mount.output.find(users), std::string::npos) << Brief(mount);
  EXPECT_FALSE(IsMounted(mount_dir_));
  EXPECT_EQ(Run("cat " + Quote(victim)).output, "precious\n");

  // Root's own directory, but writable by everyone (no sticky bit): refused too.
  const std::string open_dir = work_dir_ + "/open-dir";
  ASSERT_EQ(Run("mkdir -m 777 " + Quote(open_dir)).exit_code, 0);
  CommandResult open_mount = Cairn("mount -o cache_dir=" + Quote(open_dir + "/cache") + " " +
                                   Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(open_mount.exit_code, 0) << Brief(open_mount);
  EXPECT_NE(open_mount.output.find(open_dir), std::string::npos) << Brief(open_mount);
  EXPECT_FALSE(IsMounted(mount_dir_));
  ASSERT_NO_FATAL_FAILURE(Mount());
}

}  // namespace
}  // namespace cairn_it

// Ordinary tools users run on a mount (cp, tar, rsync, mv, ln, chmod, chown,
// touch, truncate, dd, rm, git), each checked by other tools against what
// the tool promises.
#include <sys/stat.h>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class ToolsTest : public MountTest {
 protected:
  // Differences between the listings of two trees: path, type, mode, owner,
  // link count, mtime to the nanosecond and symlink target of every entry,
  // and the size of regular files (directory sizes are filesystem-specific).
  // Empty when the trees agree.
  std::string ListingDiff(const std::string& a, const std::string& b) {
    std::string list =
        " -printf '%p %y %m %U %G %n %T@ %l\\n' | LC_ALL=C sort; find . -type f "
        "-printf '%p size=%s\\n' | LC_ALL=C sort";
    CommandResult diff = Run(
        "set -e; (cd " + Quote(a) + " && find ." + list + ") > " +
        Quote(work_dir_ + "/listing.a") + "; (cd " + Quote(b) + " && find ." +
        list + ") > " + Quote(work_dir_ + "/listing.b") + "; diff " +
        Quote(work_dir_ + "/listing.a") + " " + Quote(work_dir_ + "/listing.b") +
        " | head -40; test ${PIPESTATUS[0]} -eq 0");
    return diff.exit_code == 0 ? "" : diff.output + "(exit " + std::to_string(diff.exit_code) + ")";
  }

  // Content differences of two trees (symlinks compared as links).
  std::string ContentDiff(const std::string& a, const std::string& b) {
    CommandResult diff = Run("diff -r --no-dereference " + Quote(a) + " " +
                             Quote(b) + " | head -40");
    return diff.exit_code == 0 ? "" : diff.output + "(exit " + std::to_string(diff.exit_code) + ")";
  }
};

TEST_F(ToolsTest, CpArchiveCopiesUsrIncludeExactly) {
  CommandResult cp = Run("cp -a /usr/include " + QP("include"));
  ASSERT_EQ(cp.exit_code, 0) << Brief(cp);
  EXPECT_EQ(ContentDiff("/usr/include", P("include")), "");
  EXPECT_EQ(ListingDiff("/usr/include", P("include")), "");
}

TEST_F(ToolsTest, TarRoundTripIsIdentical) {
  ASSERT_EQ(Run("mkdir " + QP("out")).exit_code, 0);
  CommandResult tar = Run("tar -C /usr/include -cf - linux asm-generic | tar -C " +
                          QP("out") + " -xpf -");
  ASSERT_EQ(tar.exit_code, 0) << Brief(tar);
  // tar's own check: contents, sizes, modes, owners, mtimes, link targets.
  CommandResult compare = Run("tar -C /usr/include -cf - linux asm-generic | tar -C " +
                              QP("out") + " -df - | head -40");
  EXPECT_EQ(compare.exit_code, 0) << Brief(compare);
  EXPECT_EQ(ContentDiff("/usr/include/linux", P("out/linux")), "");
  EXPECT_EQ(ListingDiff("/usr/include/linux", P("out/linux")), "");
  // And back out of the mount onto the host filesystem.
  std::string back = work_dir_ + "/back";
  ASSERT_EQ(mkdir(back.c_str(), 0755), 0);
  CommandResult out = Run("tar -C " + QP("out") + " -cf - linux | tar -C " +
                          Quote(back) + " -xpf -");
  ASSERT_EQ(out.exit_code, 0) << Brief(out);
  EXPECT_EQ(ContentDiff("/usr/include/linux", back + "/linux"), "");
  EXPECT_EQ(ListingDiff("/usr/include/linux", back + "/linux"), "");
}

TEST_F(ToolsTest, RsyncArchiveLeavesNothingToDo) {
  CommandResult rsync = Run("rsync -a /usr/include/c++/ " + QP("c++"));
  ASSERT_EQ(rsync.exit_code, 0) << Brief(rsync);
  // Every file's checksum, size, mtime, mode and owner already match.
  CommandResult again = Run("rsync -a --checksum --dry-run --itemize-changes "
                            "/usr/include/c++/ " + QP("c++"));
  EXPECT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_EQ(again.output.substr(0, 4000), "");
  EXPECT_EQ(ListingDiff("/usr/include/c++", P("c++")), "");
}

TEST_F(ToolsTest, MvRenamesFilesAndDirectories) {
  CommandResult result = Run(
      "set -e; cd " + QP("") +
      "; mkdir -p a/b d; echo one > a/b/f; echo two > x; i=$(stat -c %i a/b/f)"
      "; mv a/b/f a/g"                       // file into another directory
      "; test $(stat -c %i a/g) = $i; echo moved-keeps-inode"
      "; mv a/b c; mv c d/"                  // rename a dir, move it
      "; mv x a/g"                           // over an existing file
      "; test ! -e a/b; test ! -e c; test ! -e x; test -d d/c"
      "; cat a/g; ls -A a d");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "moved-keeps-inode\ntwo\na:\ng\n\nd:\nc\n");
}

TEST_F(ToolsTest, LnMakesHardLinkSharingTheInode) {
  CommandResult result = Run(
      "set -e; cd " + QP("") +
      "; echo data > f; ln f h; test $(stat -c %i f) = $(stat -c %i h)"
      "; stat -c %h f h; echo more >> h; cat f; rm f; stat -c %h h; cat h");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "2\n2\ndata\nmore\n1\ndata\nmore\n");
}

TEST_F(ToolsTest, LnSymbolicAndReadlink) {
  CommandResult result = Run(
      "set -e; cd " + QP("") + "; echo target > f; mkdir d"
      "; ln -s f rel; ln -s " + QP("f") + " abs; ln -s ../f d/up; ln -s nowhere dangling"
      "; readlink rel d/up dangling; test \"$(readlink abs)\" = " + QP("f") +
      "; cat rel abs d/up; test -L dangling; test ! -e dangling"
      "; stat -c '%F %s' rel");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output,
            "f\n../f\nnowhere\ntarget\ntarget\ntarget\nsymbolic link 1\n");
}

TEST_F(ToolsTest, ChmodSetsEveryModeBit) {
  CommandResult result = Run(
      "set -e; cd " + QP("") + "; touch f; mkdir d"
      "; for m in 0640 4755 2711 0000 0777; do chmod $m f; stat -c %a f; done"
      "; chmod 1777 d; stat -c %a d; chmod u-w,g+s d; stat -c %a d");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "640\n4755\n2711\n0\n777\n1777\n3577\n");
}

TEST_F(ToolsTest, ChownSetsNumericOwnerAndClearsSetuid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  CommandResult result = Run(
      "set -e; cd " + QP("") + "; touch f; ln -s f l"
      "; chown 1234:5678 f; stat -c '%u %g' f"
      "; chown 42 f; stat -c '%u %g' f; chown :43 f; stat -c '%u %g' f"
      "; chown -h 7:8 l; stat -c '%u %g' l f"
      "; chmod 4755 f; chown 1:1 f; stat -c '%a %u %g' f");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output,
            "1234 5678\n42 5678\n42 43\n7 8\n42 43\n755 1 1\n");
}

// As ext4: a write, truncate or truncating open by a user without
// CAP_FSETID clears setuid, and setgid when the group may execute; root's
// writes keep them. cairn clears them itself (the kernel hands that over
// with FUSE_HANDLE_KILLPRIV_V2), and stat must show it at once.
TEST_F(ToolsTest, AnUnprivilegedWriteOrTruncateClearsSetuidAndSetgid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  CommandResult result = Run(
      "set -e; chmod 755 " + Quote(work_dir_) + "; cd " + QP("") + "; chmod 1777 ."
      "; touch a b c d e r; chmod 4777 a b c; chmod 2777 d; chmod 2767 e; chmod 6777 r"
      "; setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
      "'echo x >> a; truncate -s 0 b; : > c; echo y >> d; echo z >> e'"
      "; echo root >> r; stat -c '%n %a' a b c d e r");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "a 777\nb 777\nc 777\nd 777\ne 2767\nr 6777\n");
}

TEST_F(ToolsTest, TouchSetsTimestampsToTheNanosecond) {
  CommandResult result = Run(
      "set -e; cd " + QP("") + "; echo x > f"
      "; touch -d '2001-02-03 04:05:06' f; stat -c '%X %Y' f"
      "; date -d '2001-02-03 04:05:06' +%s"
      "; touch -m -d '2002-01-01 00:00:00.123456789' f; stat -c '%X %y' f"
      "; touch -a -d '2003-01-01 00:00:00' f; stat -c '%X' f"
      "; date -d '2003-01-01 00:00:00' +%s");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  std::vector<std::string> lines;
  std::istringstream stream(result.output);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << Brief(result);
  const std::string& epoch2001 = lines[1];
  EXPECT_EQ(lines[0], epoch2001 + " " + epoch2001);
  // -m changed only the mtime, and kept its nanoseconds.
  EXPECT_EQ(lines[2].substr(0, epoch2001.size() + 1), epoch2001 + " ");
  EXPECT_NE(lines[2].find("2002-01-01 00:00:00.123456789"), std::string::npos)
      << lines[2];
  EXPECT_EQ(lines[3], lines[4]);
}

TEST_F(ToolsTest, TruncateUpAndDownKeepsAndZeroes) {
  std::string f = QP("t");
  CommandResult result = Run(
      "set -e; printf 0123456789 > " + f + "; truncate -s 4 " + f +
      "; stat -c %s " + f + "; truncate -s 8 " + f + "; stat -c %s " + f +
      "; od -An -c " + f + " | tr -s ' '; truncate -s 3000000 " + f +
      "; truncate -s 2999999 " + f + "; stat -c %s " + f +
      "; tail -c +9 " + f + " | tr -d '\\000' | wc -c");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  // The bytes cut off by the first truncate must not come back.
  EXPECT_EQ(result.output, "4\n8\n 0 1 2 3 \\0 \\0 \\0 \\0\n2999999\n0\n");
}

TEST_F(ToolsTest, ShellRedirectionReplacesLongerContent) {
  // `>` opens with O_TRUNC: nothing of the longer old content may survive,
  // now or after the volume is mounted again.
  std::string f = QP("f");
  CommandResult result = Run("set -e; echo 'a much longer first line' > " + f +
                             "; sync " + f + "; echo short > " + f + "; cat " + f);
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "short\n");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(Run("od -An -c " + f).output, Run("echo short | od -An -c").output)
      << "old bytes came back after remount";
}

TEST_F(ToolsTest, DdWithSeekMakesSparseFile) {
  std::string f = QP("sparse");
  std::string src = Quote(work_dir_ + "/block");
  CommandResult result = Run(
      "set -e; head -c 4096 /dev/urandom > " + src + "; dd if=" + src +
      " of=" + f + " bs=4096 seek=2560 status=none; sync " + f +
      "; stat -c '%s %b %B' " + f +
      "; head -c 10485760 " + f + " | tr -d '\\000' | wc -c"
      "; tail -c 4096 " + f + " | cmp - " + src + " && echo tail-ok");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  long size = 0, blocks = 0, block_size = 0;
  ASSERT_EQ(sscanf(result.output.c_str(), "%ld %ld %ld", &size, &blocks, &block_size), 3)
      << Brief(result);
  EXPECT_EQ(size, 2561 * 4096);
  EXPECT_LT(blocks * block_size, size / 4) << "the 10 MiB hole takes space";
  EXPECT_NE(result.output.find("\n0\ntail-ok\n"), std::string::npos)
      << "hole must read as zeros, data after it intact: " << Brief(result);
}

TEST_F(ToolsTest, RmRfOfCopiedTreeLeavesDirectoryEmpty) {
  std::string before_inodes = Run("stat -f -c '%c %d' " + QP("")).output;
  CommandResult cp = Run("cp -a /usr/include/linux /usr/include/c++ " + QP(""));
  ASSERT_EQ(cp.exit_code, 0) << Brief(cp);
  CommandResult rm = Run("rm -rf " + QP("linux") + " " + QP("c++"));
  EXPECT_EQ(rm.exit_code, 0) << Brief(rm);
  EXPECT_EQ(Run("ls -A " + QP("")).output, "");
  EXPECT_EQ(Run("find " + QP("") + " | wc -l").output, "1\n");
  struct stat st;
  ASSERT_EQ(stat(P("").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u) << "root still counts removed subdirectories";
  if (!NativeMode()) {
    // Nothing else writes to a cairn volume, so its used-inode count
    // (files - free) must be back where it was.
    CommandResult after = Run("stat -f -c '%c %d' " + QP(""));
    long files_before = 0, free_before = 0, files_after = 0, free_after = 0;
    ASSERT_EQ(sscanf(before_inodes.c_str(), "%ld %ld", &files_before, &free_before), 2);
    ASSERT_EQ(sscanf(after.output.c_str(), "%ld %ld", &files_after, &free_after), 2);
    EXPECT_EQ(files_after - free_after, files_before - free_before)
        << "inodes of removed files still counted";
  }
}

TEST_F(ToolsTest, GitInitCommitStatusLog) {
  if (RunCommand("command -v git").exit_code != 0) GTEST_SKIP() << "git not installed";
  CommandResult result = Run(
      "set -e; cd " + QP("") +
      "; git init -q repo; cd repo; git config user.email t@example.com"
      "; git config user.name t; cp -a /usr/include/linux/*.h ."
      "; git add -A; git commit -qm first; echo '/* x */' >> if.h; git add if.h"
      "; git commit -qm second; git status --porcelain; git log --format=%s"
      "; git diff --stat HEAD~1 | tail -1"
      "; git fsck --strict 2>&1 | grep -v '^dangling' || true");
  ASSERT_EQ(result.exit_code, 0) << Brief(result);
  EXPECT_EQ(result.output, "second\nfirst\n 1 file changed, 1 insertion(+)\n");
}

}  // namespace
}  // namespace cairn_it

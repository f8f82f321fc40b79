// POSIX behaviour programs rely on, through the syscalls themselves.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

using SyscallTest = MountTest;

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  ASSERT_EQ(close(fd), 0);
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed: " + std::string(strerror(errno)) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

int Renameat2(const std::string& from, const std::string& to,
              unsigned flags) {
  return static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, from.c_str(),
                                  AT_FDCWD, to.c_str(), flags));
}

struct stat Stat(const std::string& path) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

TEST_F(SyscallTest, RenameReplacesTargetAtomically) {
  WriteFile(P("a"), "new");
  WriteFile(P("b"), "old");
  ino_t old_ino = Stat(P("b")).st_ino;
  ASSERT_EQ(rename(P("a").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(ReadFile(P("b")), "new");
  EXPECT_NE(Stat(P("b")).st_ino, old_ino);
  EXPECT_EQ(access(P("a").c_str(), F_OK), -1);
}

TEST_F(SyscallTest, RenameNoReplaceRefusesExistingTarget) {
  WriteFile(P("a"), "a");
  WriteFile(P("b"), "b");
  EXPECT_EQ(Renameat2(P("a"), P("b"), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(ReadFile(P("b")), "b");
  EXPECT_EQ(Renameat2(P("a"), P("c"), RENAME_NOREPLACE), 0);
  EXPECT_EQ(ReadFile(P("c")), "a");
}

TEST_F(SyscallTest, RenameExchangeSwapsDirAndFile) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  WriteFile(P("d/inside"), "x");
  WriteFile(P("f"), "file");
  ASSERT_EQ(Renameat2(P("d"), P("f"), RENAME_EXCHANGE), 0);
  EXPECT_TRUE(S_ISDIR(Stat(P("f")).st_mode));
  EXPECT_TRUE(S_ISREG(Stat(P("d")).st_mode));
  EXPECT_EQ(ReadFile(P("d")), "file");
  EXPECT_EQ(ReadFile(P("f/inside")), "x");
  EXPECT_EQ(Renameat2(P("f"), P("missing"), RENAME_EXCHANGE), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(SyscallTest, RenameDirIntoOwnSubtreeIsInvalid) {
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("a/b").c_str(), 0755), 0);
  EXPECT_EQ(rename(P("a").c_str(), P("a/b/c").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(SyscallTest, RmdirNonEmptyFailsAndNlinkCountsSubdirs) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(Stat(P("d")).st_nlink, 2u);
  ASSERT_EQ(mkdir(P("d/s1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("d/s2").c_str(), 0755), 0);
  EXPECT_EQ(Stat(P("d")).st_nlink, 4u);
  EXPECT_EQ(rmdir(P("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(rmdir(P("d/s1").c_str()), 0);
  EXPECT_EQ(Stat(P("d")).st_nlink, 3u);
}

TEST_F(SyscallTest, HardLinksShareDataAndCount) {
  WriteFile(P("f"), "shared");
  ASSERT_EQ(link(P("f").c_str(), P("g").c_str()), 0);
  EXPECT_EQ(Stat(P("f")).st_nlink, 2u);
  EXPECT_EQ(Stat(P("f")).st_ino, Stat(P("g")).st_ino);
  WriteFile(P("g"), "changed");
  EXPECT_EQ(ReadFile(P("f")), "changed");
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  EXPECT_EQ(Stat(P("g")).st_nlink, 1u);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(link(P("d").c_str(), P("d2").c_str()), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST_F(SyscallTest, XattrsCreateReplaceListRemove) {
  std::string f = P("x");
  WriteFile(f, "");
  ASSERT_EQ(setxattr(f.c_str(), "user.a", "1", 1, 0), 0);
  EXPECT_EQ(setxattr(f.c_str(), "user.a", "2", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(setxattr(f.c_str(), "user.b", "2", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(setxattr(f.c_str(), "user.a", "value", 5, XATTR_REPLACE), 0);
  char buf[64];
  EXPECT_EQ(getxattr(f.c_str(), "user.a", buf, sizeof(buf)), 5);
  EXPECT_EQ(std::string(buf, 5), "value");
  EXPECT_EQ(getxattr(f.c_str(), "user.a", nullptr, 0), 5);
  EXPECT_EQ(getxattr(f.c_str(), "user.a", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(getxattr(f.c_str(), "user.none", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(setxattr(f.c_str(), "user.b", "", 0, XATTR_CREATE), 0);
  ssize_t n = listxattr(f.c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0);
  std::string names(buf, n);
  EXPECT_NE(names.find(std::string("user.a\0", 7)), std::string::npos);
  EXPECT_NE(names.find(std::string("user.b\0", 7)), std::string::npos);
  ASSERT_EQ(removexattr(f.c_str(), "user.a"), 0);
  EXPECT_EQ(removexattr(f.c_str(), "user.a"), -1);
  EXPECT_EQ(errno, ENODATA);
}

TEST_F(SyscallTest, OpenExclAppendTrunc) {
  std::string f = P("o");
  int fd = open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  close(fd);
  EXPECT_EQ(open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EEXIST);
  fd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  lseek(fd, 0, SEEK_SET);
  ASSERT_EQ(write(fd, "!", 1), 1);
  close(fd);
  EXPECT_EQ(ReadFile(f), "hello!");
  fd = open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(Stat(f).st_size, 0);
}

TEST_F(SyscallTest, FallocateExtendsAndPunchesHoles) {
  std::string f = P("fa");
  WriteFile(f, std::string(3 * 65536, 'a'));
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 4 * 65536), 0);
  EXPECT_EQ(Stat(f).st_size, 4 * 65536);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536,
                      65536),
            0);
  EXPECT_EQ(Stat(f).st_size, 4 * 65536);
  close(fd);
  std::string data = ReadFile(f);
  ASSERT_EQ(data.size(), 4u * 65536);
  EXPECT_EQ(data.substr(0, 65536), std::string(65536, 'a'));
  EXPECT_EQ(data.substr(65536, 65536), std::string(65536, '\0'));
  EXPECT_EQ(data.substr(2 * 65536, 65536), std::string(65536, 'a'));
  EXPECT_EQ(data.substr(3 * 65536), std::string(65536, '\0'));
}

TEST_F(SyscallTest, SeekDataAndHoleFindSparseRegions) {
  std::string f = P("sp");
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  std::string block(4096, 'd');
  ASSERT_EQ(pwrite(fd, block.data(), block.size(), 0), 4096);
  ASSERT_EQ(pwrite(fd, block.data(), block.size(), 1 << 20), 4096);
  ASSERT_EQ(fsync(fd), 0);
  off_t hole = lseek(fd, 0, SEEK_HOLE);
  EXPECT_GE(hole, 4096);
  EXPECT_LE(hole, 1 << 20);
  off_t data = lseek(fd, 8192, SEEK_DATA);
  EXPECT_GT(data, 4096);
  EXPECT_LE(data, 1 << 20);
  EXPECT_EQ(lseek(fd, (1 << 20) + 8192, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
}

TEST_F(SyscallTest, FlockConflictsAcrossProcesses) {
  std::string f = P("lock");
  WriteFile(f, "");
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  pid_t child = fork();
  if (child == 0) {
    int fd2 = open(f.c_str(), O_RDWR);
    int rc = flock(fd2, LOCK_EX | LOCK_NB);
    _exit(rc == -1 && errno == EWOULDBLOCK ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(fd);
}

TEST_F(SyscallTest, FcntlRangeLockSeenByOtherProcess) {
  std::string f = P("range");
  WriteFile(f, std::string(100, 'x'));
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 10;
  lock.l_len = 20;
  ASSERT_EQ(fcntl(fd, F_SETLK, &lock), 0);
  pid_t parent = getpid();
  pid_t child = fork();
  if (child == 0) {
    int fd2 = open(f.c_str(), O_RDWR);
    struct flock probe = {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = 15;
    probe.l_len = 1;
    if (fcntl(fd2, F_GETLK, &probe) != 0) _exit(2);
    bool conflict = probe.l_type == F_WRLCK && probe.l_pid == parent;
    struct flock other = {};
    other.l_type = F_WRLCK;
    other.l_whence = SEEK_SET;
    other.l_start = 50;
    other.l_len = 5;
    bool free_range = fcntl(fd2, F_SETLK, &other) == 0;
    _exit(conflict && free_range ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(fd);
}

TEST_F(SyscallTest, MmapSharedWriteIsReadBack) {
  std::string f = P("mm");
  WriteFile(f, std::string(3 * 4096, 'a'));
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  EXPECT_EQ(static_cast<char*>(map)[5000], 'a');
  memset(static_cast<char*>(map) + 4096, 'b', 4096);
  ASSERT_EQ(msync(map, 3 * 4096, MS_SYNC), 0);
  munmap(map, 3 * 4096);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  std::string data = ReadFile(f);
  EXPECT_EQ(data, std::string(4096, 'a') + std::string(4096, 'b') +
                      std::string(4096, 'a'));
}

TEST_F(SyscallTest, LargeFileWithRandomWritesMatchesModel) {
  constexpr size_t kSize = 64 << 20;
  std::string model(kSize, '\0');
  std::mt19937_64 rng(42);
  for (auto& c : model) c = static_cast<char>(rng());
  std::string f = P("big");
  int fd = open(f.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  for (size_t off = 0; off < kSize;) {
    size_t n = std::min<size_t>(kSize - off, 1 + rng() % (3 << 20));
    ASSERT_EQ(pwrite(fd, model.data() + off, n, off), static_cast<ssize_t>(n));
    off += n;
  }
  for (int i = 0; i < 300; ++i) {
    size_t off = rng() % kSize;
    size_t n = std::min<size_t>(kSize - off, 1 + rng() % 200000);
    for (size_t j = 0; j < n; ++j) model[off + j] = static_cast<char>(rng());
    ASSERT_EQ(pwrite(fd, model.data() + off, n, off), static_cast<ssize_t>(n));
  }
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  // Drop the kernel's copy so the read really comes from cairn.
  Sh("sync; echo 3 > /proc/sys/vm/drop_caches");
  EXPECT_TRUE(ReadFile(f) == model) << "content differs";
}

TEST_F(SyscallTest, UnlinkedOpenFileStaysReadable) {
  std::string f = P("gone");
  WriteFile(f, std::string(200000, 'z'));
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(f.c_str()), 0);
  EXPECT_EQ(access(f.c_str(), F_OK), -1);
  char buf[10];
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 150000), 10);
  EXPECT_EQ(std::string(buf, 10), std::string(10, 'z'));
  close(fd);
}

TEST_F(SyscallTest, FsyncStatfsAndNameLimits) {
  std::string f = P("s");
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "x", 1), 1);
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(fdatasync(fd), 0);
  close(fd);
  struct statfs sfs;
  ASSERT_EQ(statfs(P("").c_str(), &sfs), 0);
  EXPECT_GT(sfs.f_blocks, 0u);
  EXPECT_GT(sfs.f_files, 0u);
  EXPECT_GT(sfs.f_bavail, 0u);
  std::string name255(255, 'n');
  WriteFile(P(name255), "ok");
  EXPECT_EQ(ReadFile(P(name255)), "ok");
  std::string name256(256, 'n');
  EXPECT_EQ(open(P(name256).c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
}

TEST_F(SyscallTest, SpecialFilesKeepTypeAndDevice) {
  ASSERT_EQ(mknod(P("fifo").c_str(), S_IFIFO | 0644, 0), 0);
  ASSERT_EQ(mknod(P("sock").c_str(), S_IFSOCK | 0644, 0), 0);
  EXPECT_TRUE(S_ISFIFO(Stat(P("fifo")).st_mode));
  EXPECT_TRUE(S_ISSOCK(Stat(P("sock")).st_mode));
  if (geteuid() == 0) {
    ASSERT_EQ(mknod(P("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
    struct stat st = Stat(P("chr"));
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
  }
}

TEST_F(SyscallTest, UmaskAndUtimensat) {
  mode_t old = umask(027);
  WriteFile(P("u"), "");
  umask(old);
  EXPECT_EQ(Stat(P("u")).st_mode & 0777, 0640u);
  struct timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("u").c_str(), times, 0), 0);
  struct stat st = Stat(P("u"));
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("u").c_str(), omit_now, 0), 0);
  st = Stat(P("u"));
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_GT(st.st_mtim.tv_sec, time(nullptr) - 60);
}

TEST_F(SyscallTest, SetgidDirectoryPassesGroupDown) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for chown";
  ASSERT_EQ(mkdir(P("g").c_str(), 0755), 0);
  ASSERT_EQ(chown(P("g").c_str(), 0, 4321), 0);
  ASSERT_EQ(chmod(P("g").c_str(), 02775), 0);
  WriteFile(P("g/file"), "");
  ASSERT_EQ(mkdir(P("g/sub").c_str(), 0755), 0);
  EXPECT_EQ(Stat(P("g/file")).st_gid, 4321u);
  EXPECT_EQ(Stat(P("g/sub")).st_gid, 4321u);
  EXPECT_TRUE(Stat(P("g/sub")).st_mode & S_ISGID);
}

}  // namespace
}  // namespace cairn_it

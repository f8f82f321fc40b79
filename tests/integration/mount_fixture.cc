#include "tests/integration/mount_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace cairn_it {

CommandResult Sh(const std::string& command, int timeout_seconds) {
  std::string wrapped = "timeout -k 5 " + std::to_string(timeout_seconds) +
                        " sh -c " + Quote(command) + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(wrapped.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return result;
}

std::string CairnBinary() {
  const char* binary = getenv("CAIRN_BINARY");
  return binary != nullptr && *binary != '\0' ? binary : "cairn";
}

bool NativeMode() {
  const char* native = getenv("CAIRN_IT_NATIVE");
  return native != nullptr && std::string(native) == "1";
}

std::string Quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

bool IsMounted(const std::string& path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    fields >> id >> parent >> dev >> root >> mountpoint;
    if (mountpoint == path) return true;
  }
  return false;
}

void MountTest::SetUp() {
  char templ[] = "/tmp/cairn-it-XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  work_dir_ = templ;
  volume_dir_ = work_dir_ + "/volume";
  mount_dir_ = work_dir_ + "/mnt";
  ASSERT_EQ(Sh("mkdir -p " + Quote(mount_dir_)).exit_code, 0);
  if (NativeMode()) return;
  CommandResult format =
      Sh(Quote(CairnBinary()) + " format " + Quote(volume_dir_), 60);
  ASSERT_EQ(format.exit_code, 0) << format.output;
  Mount();
}

void MountTest::Mount() {
  if (NativeMode()) return;
  CommandResult mount = Sh(Quote(CairnBinary()) + " mount " +
                                Quote(volume_dir_) + " " + Quote(mount_dir_),
                            60);
  ASSERT_EQ(mount.exit_code, 0) << mount.output;
  ASSERT_TRUE(IsMounted(mount_dir_));
}

void MountTest::Unmount() {
  if (NativeMode()) return;
  CommandResult umount =
      Sh(Quote(CairnBinary()) + " umount " + Quote(mount_dir_), 120);
  EXPECT_EQ(umount.exit_code, 0) << umount.output;
  EXPECT_FALSE(IsMounted(mount_dir_));
}

void MountTest::Remount() {
  Unmount();
  Mount();
}

void MountTest::TearDown() {
  if (work_dir_.empty()) return;
  if (!NativeMode() && IsMounted(mount_dir_)) {
    Sh(Quote(CairnBinary()) + " umount " + Quote(mount_dir_), 120);
    if (IsMounted(mount_dir_)) {
      Sh("fusermount3 -u -z " + Quote(mount_dir_), 30);
    }
  }
  if (!IsMounted(mount_dir_)) {
    Sh("rm -rf " + Quote(work_dir_), 120);
  } else {
    ADD_FAILURE() << "could not unmount " << mount_dir_ << "; left "
                  << work_dir_ << " in place";
  }
}

}  // namespace cairn_it

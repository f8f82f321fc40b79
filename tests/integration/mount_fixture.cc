#include "tests/integration/mount_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cairn_it {
namespace {

using Clock = std::chrono::steady_clock;

// Work dirs of this process that may hold mounts, for the exit and signal
// paths (a test killed by a timeout must not leave mounts behind).
std::mutex g_registry_mutex;
std::vector<std::string>* g_work_dirs = new std::vector<std::string>;
pid_t g_owner_pid = 0;

// Process groups of the commands RunCommand is running (timeout(1) leads its
// own group), so a dying test can stop them before unmounting.
std::mutex g_commands_mutex;
std::vector<pid_t>* g_running_commands = new std::vector<pid_t>;

void KillRunningCommands() {
  std::unique_lock<std::mutex> lock(g_commands_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;
  for (pid_t group : *g_running_commands) kill(-group, SIGKILL);
}

void RegisterWorkDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_work_dirs->push_back(dir);
}

void UnregisterWorkDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_work_dirs->erase(std::remove(g_work_dirs->begin(), g_work_dirs->end(), dir),
                     g_work_dirs->end());
}

// Runs at exit and from fatal signals; only in the process that made the
// dirs (forked test children must not tear down their parent's mounts).
void CleanUpRegisteredWorkDirs() {
  if (getpid() != g_owner_pid) return;
  KillRunningCommands();
  std::vector<std::string> dirs;
  {
    std::unique_lock<std::mutex> lock(g_registry_mutex, std::try_to_lock);
    if (!lock.owns_lock()) return;
    dirs.swap(*g_work_dirs);
  }
  for (const std::string& dir : dirs) {
    std::string problems = CleanUpWorkDir(dir);
    if (!problems.empty()) fprintf(stderr, "cairn-it cleanup: %s\n", problems.c_str());
  }
}

void OnFatalSignal(int sig) {
  CleanUpRegisteredWorkDirs();
  signal(sig, SIG_DFL);
  raise(sig);
}

void InstallExitCleanupOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_owner_pid = getpid();
    atexit(CleanUpRegisteredWorkDirs);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) signal(sig, OnFatalSignal);
  });
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      bool octal = true;
      int value = 0;
      for (size_t j = 1; j <= 3 && octal; ++j) {
        char c = field[i + j];
        octal = c >= '0' && c <= '7';
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

std::vector<MountEntry> AllMounts() {
  std::vector<MountEntry> mounts;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    // id parent major:minor root mountpoint options [optional...] - type source super
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint, options, field;
    fields >> id >> parent >> dev >> root >> mountpoint >> options;
    while (fields >> field && field != "-") {
    }
    MountEntry entry;
    entry.mountpoint = Unescape(mountpoint);
    fields >> entry.fstype >> entry.source;
    entry.source = Unescape(entry.source);
    mounts.push_back(entry);
  }
  return mounts;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// True while some process holds the volume: asks `cairn status --json`,
// falling back to the pid in the lock file if status cannot answer (for
// instance after a test edited cairn.toml).
std::optional<pid_t> VolumeHolder(const std::string& volume_dir) {
  CommandResult status =
      RunCommand(Quote(CairnBinary()) + " status --json " + Quote(volume_dir), 30);
  if (status.exit_code == 0) {
    if (JsonField(status.output, "mounted") != "true" &&
        JsonField(status.output, "s3_only") != "true") {
      return std::nullopt;
    }
    std::optional<std::string> pid = JsonField(status.output, "pid");
    return pid ? static_cast<pid_t>(atoi(pid->c_str())) : 0;
  }
  std::istringstream lock(ReadSmallFile(volume_dir + "/lock"));
  pid_t pid = 0;
  if (lock >> pid && pid > 0 && ProcessAlive(pid)) return pid;
  return std::nullopt;
}

}  // namespace

CommandResult RunCommand(const std::string& command, int timeout_seconds) {
  CommandResult result;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.output = std::string("pipe2: ") + strerror(errno);
    return result;
  }
  std::string timeout_arg = std::to_string(timeout_seconds);
  pid_t child = fork();
  if (child < 0) {
    result.output = std::string("fork: ") + strerror(errno);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return result;
  }
  if (child == 0) {
    // Only async-signal-safe calls: the parent may have other threads.
    setpgid(0, 0);  // a group of its own, to be killed as one
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    // No test fd (an open file in the mount, say) may leak into a daemon.
    close_range(3, ~0U, 0);
    execl("/usr/bin/timeout", "timeout", "-k", "5", timeout_arg.c_str(),
          "/bin/bash", "-o", "pipefail", "-c", command.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  {
    std::lock_guard<std::mutex> lock(g_commands_mutex);
    g_running_commands->push_back(child);
  }
  auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds + 20);
  bool exited = false;
  int status = 0;
  Clock::time_point exited_at;
  char buf[65536];
  for (;;) {
    struct pollfd pfd = {pipe_fds[0], POLLIN, 0};
    int ready = poll(&pfd, 1, 100);
    if (ready > 0) {
      ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
      if (n == 0) break;
      if (n > 0) result.output.append(buf, n);
      if (n < 0 && errno != EINTR) break;
    }
    if (!exited && waitpid(child, &status, WNOHANG) == child) {
      exited = true;
      exited_at = Clock::now();
    }
    // A daemon the command started in the background may keep the pipe
    // open; stop reading shortly after the command itself is done.
    if (exited && Clock::now() - exited_at > std::chrono::seconds(2)) break;
    if (!exited && Clock::now() > deadline) kill(child, SIGKILL);
  }
  close(pipe_fds[0]);
  if (!exited) waitpid(child, &status, 0);
  {
    std::lock_guard<std::mutex> lock(g_commands_mutex);
    g_running_commands->erase(
        std::remove(g_running_commands->begin(), g_running_commands->end(), child),
        g_running_commands->end());
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  if (result.exit_code == 124) {
    result.output += "\n[timed out after " + timeout_arg + " s: " + command + "]\n";
  }
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

std::vector<MountEntry> MountsAt(const std::string& path) {
  std::vector<MountEntry> found;
  for (const MountEntry& entry : AllMounts()) {
    if (entry.mountpoint == path) found.push_back(entry);
  }
  return found;
}

bool IsMounted(const std::string& path) { return !MountsAt(path).empty(); }

bool IsCairnMount(const std::string& path) {
  std::vector<MountEntry> mounts = MountsAt(path);
  return !mounts.empty() && mounts.back().fstype == "fuse.cairn";
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> found;
  for (const MountEntry& entry : AllMounts()) {
    if (entry.mountpoint == dir || entry.mountpoint.rfind(dir + "/", 0) == 0) {
      found.push_back(entry.mountpoint);
    }
  }
  std::sort(found.begin(), found.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return found;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  std::string stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ||
         stat[paren + 2] != 'Z';
}

std::optional<std::string> JsonField(const std::string& json,
                                     const std::string& key) {
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return std::nullopt;
  at += key.size() + 2;
  while (at < json.size() && (json[at] == ' ' || json[at] == ':' ||
                              json[at] == '\t' || json[at] == '\n')) {
    ++at;
  }
  if (at >= json.size()) return std::nullopt;
  std::string value;
  if (json[at] == '"') {
    for (++at; at < json.size() && json[at] != '"'; ++at) {
      if (json[at] == '\\' && at + 1 < json.size()) ++at;
      value.push_back(json[at]);
    }
    return value;
  }
  while (at < json.size() && json[at] != ',' && json[at] != '}' &&
         json[at] != ' ' && json[at] != '\n') {
    value.push_back(json[at++]);
  }
  return value;
}

bool WaitFor(const std::function<bool()>& done, double timeout_seconds) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    if (done()) return true;
    if (Clock::now() > deadline) return false;
    usleep(50000);
  }
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t size = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

std::string CleanUpWorkDir(const std::string& work_dir) {
  std::string problems;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> mounts = MountsUnder(work_dir);
    if (mounts.empty()) break;
    for (const std::string& mountpoint : mounts) {
      if (IsCairnMount(mountpoint)) {
        RunCommand(Quote(CairnBinary()) + " umount " + Quote(mountpoint), 60);
      }
      if (IsMounted(mountpoint)) {
        RunCommand("fusermount3 -u -z -- " + Quote(mountpoint), 30);
      }
      if (IsMounted(mountpoint)) RunCommand("umount -l -- " + Quote(mountpoint), 30);
    }
  }
  // Wait for the daemons of the volumes in here to finish and exit; kill
  // one (ours: its command line names our volume) only if it hangs.
  if (DIR* dir = opendir(work_dir.c_str())) {
    std::vector<std::string> volumes;
    while (struct dirent* entry = readdir(dir)) {
      std::string path = work_dir + "/" + entry->d_name;
      if (access((path + "/cairn.toml").c_str(), F_OK) == 0) volumes.push_back(path);
    }
    closedir(dir);
    for (const std::string& volume : volumes) {
      // A daemon serving S3 without a mount has no mount to take away.
      if (VolumeHolder(volume)) {
        RunCommand(Quote(CairnBinary()) + " umount " + Quote(volume), 60);
      }
      std::optional<pid_t> holder;
      bool released = WaitFor([&] { return !(holder = VolumeHolder(volume)); }, 30);
      if (released || !holder || *holder <= 0) continue;
      std::string cmdline = ReadSmallFile("/proc/" + std::to_string(*holder) + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      problems += "daemon " + std::to_string(*holder) + " of " + volume +
                  " still running 30 s after unmount; ";
      if (cmdline.find(volume) != std::string::npos) {
        kill(*holder, SIGKILL);
        problems += "killed it; ";
      }
    }
  }
  if (!MountsUnder(work_dir).empty()) {
    return problems + "could not unmount everything under " + work_dir +
           "; left it in place";
  }
  CommandResult rm = RunCommand("rm -rf --one-file-system -- " + Quote(work_dir), 120);
  if (rm.exit_code != 0) problems += "rm -rf " + work_dir + ": " + rm.output;
  return problems;
}

MountTest::~MountTest() {
  StopWatchdog();
  if (!cleaned_up_ && !work_dir_.empty()) {
    std::string problems = CleanUpWorkDir(work_dir_);
    if (!problems.empty()) fprintf(stderr, "cairn-it cleanup: %s\n", problems.c_str());
    UnregisterWorkDir(work_dir_);
  }
}

void MountTest::SetUp() {
  InstallExitCleanupOnce();
  char templ[] = "/tmp/cairn-it-XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr) << strerror(errno);
  work_dir_ = templ;
  RegisterWorkDir(work_dir_);
  volume_dir_ = work_dir_ + "/volume";
  mount_dir_ = work_dir_ + "/mnt";
  ASSERT_EQ(mkdir(mount_dir_.c_str(), 0755), 0) << strerror(errno);
  StartWatchdog();
  if (NativeMode()) return;
  std::string disks;
  for (int i = 0; i < DiskCount(); ++i) {
    disks += " --disk " + Quote(work_dir_ + "/disk" + std::to_string(i));
  }
  CommandResult format = Cairn("format " + Quote(volume_dir_) + disks, 60);
  ASSERT_EQ(format.exit_code, 0) << Brief(format);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

int MountTest::DiskCount() {
  const char* disks = getenv("CAIRN_IT_DISKS");
  return disks == nullptr ? 0 : std::atoi(disks);
}

void MountTest::TearDown() {
  StopWatchdog();
  if (work_dir_.empty()) return;
  std::string problems = CleanUpWorkDir(work_dir_);
  cleaned_up_ = true;
  UnregisterWorkDir(work_dir_);
  EXPECT_EQ(problems, "") << "cleanup of " << work_dir_;
}

void MountTest::Mount() {
  if (NativeMode()) return;
  CommandResult mount =
      Cairn("mount " + Quote(volume_dir_) + " " + Quote(mount_dir_), 60);
  last_mount_output_ = mount.output;
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  std::vector<MountEntry> mounts = MountsAt(mount_dir_);
  ASSERT_EQ(mounts.size(), 1u) << "expected exactly one mount at " << mount_dir_;
  ASSERT_EQ(mounts[0].fstype, "fuse.cairn");
  RecordConnection();
}

void MountTest::Unmount() {
  if (NativeMode()) return;
  CommandResult umount = Cairn("umount " + Quote(mount_dir_), 120);
  ASSERT_EQ(umount.exit_code, 0) << Brief(umount);
  EXPECT_FALSE(IsMounted(mount_dir_)) << "cairn umount returned 0 but "
                                      << mount_dir_ << " is still mounted";
  // cairn umount promises the daemon has flushed and exited.
  CommandResult status = Cairn("status --json " + Quote(volume_dir_), 30);
  EXPECT_EQ(JsonField(status.output, "mounted"), "false") << Brief(status);
  fuse_connection_.clear();
}

void MountTest::Remount() {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
}

void MountTest::AddReplicaAndRemount(const std::string& endpoint,
                                     const std::vector<std::string>& extra_lines) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  std::string config = volume_dir_ + "/cairn.toml";
  std::string lines = "'[replica]' " + Quote("endpoint = \"" + endpoint + "\"") +
                      " 'bucket = \"replica\"' 'access_key_id = \"S3RVER\"'"
                      " 'secret_access_key = \"S3RVER\"'";
  for (const std::string& line : extra_lines) lines += " " + Quote(line);
  CommandResult edit = Run("printf '%s\\n' " + lines + " >> " + Quote(config) + " && chmod 600 " +
                           Quote(config));
  ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

pid_t MountTest::DaemonPid() {
  CommandResult status = Cairn("status --json " + Quote(volume_dir_), 30);
  if (status.exit_code != 0 || JsonField(status.output, "mounted") != "true") return 0;
  std::optional<std::string> pid = JsonField(status.output, "pid");
  return pid ? static_cast<pid_t>(atoi(pid->c_str())) : 0;
}

void MountTest::CrashDaemon() {
  pid_t pid = DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, 10));
  Run("fusermount3 -u -z " + Quote(mount_dir_));
}

void MountTest::RecordConnection() {
  struct stat st;
  if (stat(mount_dir_.c_str(), &st) != 0) return;
  // The kernel names a connection by its device number in kernel encoding.
  unsigned dev = (major(st.st_dev) << 20) | minor(st.st_dev);
  std::string dir = "/sys/fs/fuse/connections/" + std::to_string(dev);
  std::lock_guard<std::mutex> lock(watchdog_mutex_);
  fuse_connection_ = access((dir + "/abort").c_str(), W_OK) == 0 ? dir : "";
}

void MountTest::StartWatchdog() {
  int seconds = 240;
  if (const char* env = getenv("CAIRN_IT_TEST_TIMEOUT")) seconds = std::max(1, atoi(env));
  watchdog_ = std::thread([this, seconds] {
    std::unique_lock<std::mutex> lock(watchdog_mutex_);
    if (watchdog_wake_.wait_for(lock, std::chrono::seconds(seconds),
                                [this] { return watchdog_stop_; })) {
      return;
    }
    // Unblock a test stuck on the mount: abort the FUSE connection through
    // fusectl if it is mounted, else kill our daemon (which aborts it too).
    std::string action = "nothing to abort (native mode)";
    if (!fuse_connection_.empty()) {
      std::ofstream(fuse_connection_ + "/abort") << "1";
      action = "aborted " + fuse_connection_;
    } else if (!NativeMode()) {
      std::istringstream lock(ReadSmallFile(volume_dir_ + "/lock"));
      pid_t pid = 0;
      std::string cmdline;
      if (lock >> pid && pid > 0) {
        cmdline = ReadSmallFile("/proc/" + std::to_string(pid) + "/cmdline");
      }
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (cmdline.find(volume_dir_) != std::string::npos && kill(pid, SIGKILL) == 0) {
        action = "killed daemon " + std::to_string(pid);
      } else {
        action = "found no daemon to kill";
      }
    }
    fprintf(stderr, "cairn-it watchdog: test still running after %d s; %s\n", seconds,
            action.c_str());
    ADD_FAILURE() << "test exceeded " << seconds << " s (watchdog); " << action;
    if (watchdog_wake_.wait_for(lock, std::chrono::seconds(60),
                                [this] { return watchdog_stop_; })) {
      return;
    }
    fprintf(stderr, "cairn-it watchdog: test stuck; cleaning up and exiting\n");
    lock.unlock();
    CleanUpRegisteredWorkDirs();
    _exit(3);
  });
}

void MountTest::StopWatchdog() {
  {
    std::lock_guard<std::mutex> lock(watchdog_mutex_);
    watchdog_stop_ = true;
  }
  watchdog_wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

}  // namespace cairn_it

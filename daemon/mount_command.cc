#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/log.h"
#include "backend/tiering.h"
#include "backend/volume.h"
#include "daemon/cli.h"
#include "fs/cairn_fs.h"

namespace cairn::cli {

const char kMountHelp[] =
    "usage: cairn mount VOLUME_DIR MOUNTPOINT [-f] [-o OPT[,OPT...]]...\n"
    "\n"
    "Mounts the volume in VOLUME_DIR at MOUNTPOINT (an existing directory).\n"
    "Without -f the command returns once the mount is ready and the daemon\n"
    "runs in the background, logging to syslog. The daemon exits after an\n"
    "unmount (cairn umount, umount, fusermount3 -u) or on SIGTERM, SIGINT or\n"
    "SIGHUP, always after storing everything written.\n"
    "\n"
    "options:\n"
    "  -f, --foreground   stay in the foreground and log to stderr\n"
    "  -o OPTIONS         comma-separated mount options:\n"
    "     allow_other     let all users in (the default when mounted by root;\n"
    "                     permissions are always enforced)\n"
    "     ro              read-only\n"
    "     rw              read-write (the default)\n"
    "     noatime         never change access times on reads (cairn never does)\n"
    "     debug           trace every FUSE request to the log\n"
    "  Also accepted and ignored, for mount(8) and /etc/fstab: defaults, atime,\n"
    "  relatime, strictatime, nodiratime, dev, nodev, suid, nosuid, exec,\n"
    "  noexec, auto, noauto, user, nouser, users, nofail, _netdev, async,\n"
    "  x-* and x-systemd.*.\n";

namespace {

struct MountRequest {
  std::string volume_dir;
  std::string mountpoint;
  bool foreground = false;
  FuseMountOptions fuse;
};

// Options mount(8) and fstab pass that mean nothing to a FUSE volume.
bool IsIgnoredGenericOption(const std::string& opt) {
  static const char* const kIgnored[] = {
      "defaults", "atime", "relatime", "strictatime", "nodiratime", "diratime",
      "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto",
      "user", "nouser", "users", "nofail", "_netdev", "async", "lazytime",
      "nolazytime", "loud", "silent"};
  for (const char* ignored : kIgnored) {
    if (opt == ignored) return true;
  }
  return opt.rfind("x-", 0) == 0 || opt.rfind("comment=", 0) == 0;
}

int ParseOptions(const std::string& list, MountRequest* request) {
  for (absl::string_view piece : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::string opt(piece);
    if (opt == "allow_other") {
      request->fuse.allow_other = true;
    } else if (opt == "ro") {
      request->fuse.read_only = true;
    } else if (opt == "rw") {
      request->fuse.read_only = false;
    } else if (opt == "noatime") {
      request->fuse.noatime = true;
    } else if (opt == "debug") {
      request->fuse.debug = true;
    } else if (!IsIgnoredGenericOption(opt)) {
      return UsageError("mount", "unknown mount option '" + opt + "'");
    }
  }
  return kExitOk;
}

// A cairn mount whose daemon died: it answers ENOTCONN (ECONNABORTED while
// the kernel is still tearing the connection down), or, where the kernel
// still has the answer cached, no live process holds its volume's lock.
bool IsStaleMount(const std::string& mountpoint) {
  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0) return errno == ENOTCONN || errno == ECONNABORTED;
  std::optional<MountEntry> mount = FindCairnMount(mountpoint);
  if (!mount) return false;
  absl::StatusOr<MountRecord> holder = ReadMountRecord(mount->volume_dir);
  return holder.ok() && !holder->mounted;
}

// Unmounts a stale mount so the mountpoint can be used again.
bool CleanStaleMount(const std::string& mountpoint) {
  if (!IsStaleMount(mountpoint)) return false;
  fprintf(stderr,
          "cairn: mount: %s was left mounted by a daemon that died; "
          "cleaning up the stale mount\n",
          mountpoint.c_str());
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    std::string command = "fusermount3 -u -z -- '" + mountpoint + "'";
    if (system(command.c_str()) != 0) return false;
  }
  return true;
}

// Runs the volume until unmounted. `ready` is called once the mount is in
// place; before that, errors are returned.
absl::Status Serve(const MountRequest& request, const VolumeConfig& config,
                   const std::function<void(Volume&)>& ready) {
  absl::StatusOr<std::unique_ptr<Volume>> volume =
      Volume::Open(request.volume_dir, config);
  if (!volume.ok()) return volume.status();
  absl::Status served = ServeFuse(**volume, request.fuse, [&] { ready(**volume); });
  (*volume)->RecordStop(served);
  return served;
}

void UseSyslog() {
  openlog("cairn", LOG_PID, LOG_DAEMON);
  SetLogSink([](LogLevel level, std::string_view message) {
    int priority = level == LogLevel::kError     ? LOG_ERR
                   : level == LogLevel::kWarning ? LOG_WARNING
                   : level == LogLevel::kInfo    ? LOG_INFO
                                                 : LOG_DEBUG;
    syslog(priority, "%.*s", static_cast<int>(message.size()), message.data());
  });
}

// "" when every disk is in use; else which are missing and why.
std::string DegradedWarning(Volume& volume) {
  StripedBlobStore* striped = volume.striped();
  if (striped == nullptr) return "";
  std::vector<std::string> down;
  for (const DiskInfo& disk : striped->Disks()) {
    if (disk.state != DiskState::kOk) {
      down.push_back(absl::StrCat(disk.path, " (", disk.problem, ")"));
    }
  }
  if (down.empty()) return "";
  return absl::StrCat("mounted DEGRADED, ", down.size(), " disk(s) missing: ",
                      absl::StrJoin(down, "; "),
                      ". Reads rebuild their data from the other disks; reconnect them and "
                      "remount, or replace them with cairn disk replace");
}

// "" when the remote tier answers (or there is none); else why not. A mount
// works without the remote: only reading tiered data needs it.
std::string RemoteWarning(Volume& volume, const std::string& volume_dir) {
  const VolumeConfig& config = volume.config();
  if (!config.tier) return "";
  absl::Status probe = ProbeRemote(*config.tier, volume_dir + "/cairn.toml", config.volume_id,
                                   /*seconds=*/3);
  if (probe.ok()) return "";
  LogWarning("the remote tier does not answer: %s", probe.message());
  return absl::StrCat("the remote tier does not answer (", probe.message(),
                      "). Local data is fully usable; reads of tiered files fail with EIO "
                      "until it is back, and tiering waits and retries");
}

void RedirectStdioToNull() {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  dup2(null_fd, STDIN_FILENO);
  dup2(null_fd, STDOUT_FILENO);
  dup2(null_fd, STDERR_FILENO);
  close(null_fd);
}

int RunInBackground(const MountRequest& request, const VolumeConfig& config) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Fail("mount", std::string("pipe: ") + strerror(errno));
  }
  fflush(stdout);
  fflush(stderr);
  pid_t child = fork();
  if (child < 0) return Fail("mount", std::string("fork: ") + strerror(errno));
  if (child == 0) {
    close(pipe_fds[0]);
    setsid();
    UseSyslog();
    int report_fd = pipe_fds[1];
    absl::Status status = Serve(request, config, [&](Volume& volume) {
      absl::Status recorded = volume.RecordMount(getpid(), request.mountpoint);
      if (!recorded.ok()) LogWarning("%s", recorded.ToString());
      // The user at the terminal must hear of a degraded start, not only
      // syslog.
      std::string reply = "ok";
      std::string degraded = DegradedWarning(volume);
      if (!degraded.empty()) reply += "\n" + degraded;
      std::string remote = RemoteWarning(volume, request.volume_dir);
      if (!remote.empty()) reply += "\n" + remote;
      [[maybe_unused]] ssize_t n = write(report_fd, reply.data(), reply.size());
      close(report_fd);
      report_fd = -1;
      RedirectStdioToNull();
    });
    if (report_fd >= 0) {
      std::string message(status.ok() ? "exited before the mount was ready"
                                      : status.message());
      [[maybe_unused]] ssize_t n = write(report_fd, message.data(), message.size());
      _exit(kExitFailed);
    }
    if (!status.ok()) {
      LogError("%s", std::string(status.message()));
      _exit(kExitFailed);
    }
    LogInfo("volume %s unmounted cleanly", request.volume_dir);
    _exit(kExitOk);
  }
  close(pipe_fds[1]);
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    reply.append(buf, n);
  }
  close(pipe_fds[0]);
  if (reply.rfind("ok", 0) == 0 && (reply.size() == 2 || reply[2] == '\n')) {
    if (reply.size() > 3) fprintf(stderr, "cairn: mount: warning: %s\n", reply.substr(3).c_str());
    return kExitOk;
  }
  if (reply.empty()) {
    waitpid(child, nullptr, WNOHANG);
    return Fail("mount",
                "the daemon exited before the mount was ready (see journalctl "
                "-t cairn or syslog)");
  }
  waitpid(child, nullptr, 0);
  return Fail("mount", reply);
}

}  // namespace

int MountCommand(const Args& args) {
  MountRequest request;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-f" || arg == "--foreground") {
      request.foreground = true;
    } else if (arg == "-o") {
      if (i + 1 >= args.size()) return UsageError("mount", "-o needs options");
      if (int rc = ParseOptions(args[++i], &request); rc != kExitOk) return rc;
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      if (int rc = ParseOptions(arg.substr(2), &request); rc != kExitOk) return rc;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("mount", "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    return UsageError("mount", "expected VOLUME_DIR and MOUNTPOINT");
  }
  request.volume_dir = AbsolutePath(positional[0]);
  request.mountpoint = AbsolutePath(positional[1]);
  request.fuse.mountpoint = request.mountpoint;

  CleanStaleMount(request.mountpoint);
  struct stat st;
  if (stat(request.mountpoint.c_str(), &st) != 0) {
    return Fail("mount", "mountpoint " + request.mountpoint + " does not exist (" +
                             strerror(errno) + "); create it with: mkdir -p " +
                             request.mountpoint);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail("mount", "mountpoint " + request.mountpoint +
                             " is not a directory; mount on a directory");
  }
  if (FindCairnMount(request.mountpoint)) {
    return Fail("mount", request.mountpoint +
                             " already has a cairn volume mounted; unmount it "
                             "first: cairn umount " + request.mountpoint);
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(request.volume_dir);
  if (!config.ok()) return Fail("mount", config.status());
  absl::StatusOr<MountRecord> holder = ReadMountRecord(request.volume_dir);
  if (holder.ok() && holder->mounted) {
    return Fail("mount", "volume " + request.volume_dir +
                             " is already mounted by process " +
                             std::to_string(holder->pid) +
                             (holder->mountpoint.empty() ? "" : " at " + holder->mountpoint) +
                             "; unmount it first: cairn umount " +
                             (holder->mountpoint.empty() ? "MOUNTPOINT" : holder->mountpoint));
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(config->log_level, &level);
  if (request.fuse.debug) level = LogLevel::kDebug;
  SetLogLevel(level);

  if (!request.foreground) return RunInBackground(request, *config);
  absl::Status status = Serve(request, *config, [&](Volume& volume) {
    absl::Status recorded = volume.RecordMount(getpid(), request.mountpoint);
    if (!recorded.ok()) LogWarning("%s", recorded.ToString());
    std::string degraded = DegradedWarning(volume);
    if (!degraded.empty()) LogWarning("%s", degraded);
  });
  if (!status.ok()) return Fail("mount", status);
  return kExitOk;
}

}  // namespace cairn::cli

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/volume.h"
#include "cache/writeback_journal.h"
#include "daemon/cli.h"
#include "daemon/mount_table.h"
#include "daemon/serve.h"

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
    "     ro              read-only: writes nothing to the volume (a journal a\n"
    "                     crash left is read, not stored), so a volume on a\n"
    "                     full disk mounts this way\n"
    "     rw              read-write (the default)\n"
    "     noatime         never change access times on reads (cairn never does)\n"
    "     debug           trace every FUSE request to the log\n"
    "     cache_dir=DIR   the writeback journal and the remote tier's block\n"
    "                     cache go here (cairn.toml: cache_dir)\n"
    "     cache_size=SIZE the remote tier's local block cache, like 2G or\n"
    "                     512M (cairn.toml: [tier] cache_bytes)\n"
    "     log_level=LEVEL error, warning, info or debug (cairn.toml: log_level)\n"
    "     config=FILE     read the settings from FILE instead of\n"
    "                     VOLUME_DIR/cairn.toml (a copy of it, edited)\n"
    "  These override cairn.toml for this mount. Also accepted and ignored,\n"
    "  for mount(8) and /etc/fstab: defaults, atime, relatime, strictatime,\n"
    "  nodiratime, dev, nodev, suid, nosuid, exec, noexec, auto, noauto, user,\n"
    "  nouser, users, nofail, _netdev, async, x-* and x-systemd.*.\n"
    "\n"
    "mount(8) and /etc/fstab use the same options through mount.cairn:\n"
    "  mount -t cairn VOLUME_DIR MOUNTPOINT -o OPTIONS\n"
    "  VOLUME_DIR  MOUNTPOINT  cairn  defaults,nofail  0  0     (an fstab line)\n";

const char kMountHelperHelp[] =
    "usage: mount.cairn VOLUME_DIR MOUNTPOINT [-sfnv] [-o OPTIONS]\n"
    "\n"
    "The helper mount(8) runs for filesystems of type cairn (mount -t cairn,\n"
    "/etc/fstab, systemd mount units). Mounts like cairn mount and returns once\n"
    "the mount is ready; the daemon stays in the background.\n"
    "\n"
    "  -o OPTIONS  as for cairn mount (see cairn mount --help)\n"
    "  -s          sloppy: ignore unknown options (with a warning)\n"
    "  -f          fake: check everything, mount nothing\n"
    "  -n          no /etc/mtab entry (there is none to write)\n"
    "  -v          say what is done\n"
    "  -t TYPE     the type (cairn), accepted and ignored\n"
    "\n"
    "Exit status (mount(8)'s): 0 mounted, 1 bad command line, 32 not mounted.\n";

const char kServeHelp[] =
    "usage: cairn serve s3 VOLUME_DIR|MOUNTPOINT [--listen HOST:PORT] [-f]\n"
    "                      [-o OPT[,OPT...]]\n"
    "\n"
    "Serves a volume over S3 (docs/S3.md), at --listen or at [s3] listen of\n"
    "cairn.toml. Clients sign requests with a key of VOLUME_DIR/s3-keys (or\n"
    "[s3] keys_file), and see the same files as the mount.\n"
    "\n"
    "A mounted volume (named by its directory or mountpoint): its daemon\n"
    "starts serving S3 and serves until it is unmounted.\n"
    "\n"
    "An unmounted volume: a daemon starts without a mount and serves the\n"
    "volume over S3 only, with everything a mount runs (the writeback\n"
    "journal, replication, tiering, scrubs, backups, metrics). cairn mount of\n"
    "the volume is refused while it runs. Without -f the command returns once\n"
    "S3 is served and the daemon runs in the background, logging to syslog.\n"
    "Stop it with cairn umount VOLUME_DIR (or SIGTERM): it stores everything\n"
    "written before it exits.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT  where to serve (like 127.0.0.1:9000); beyond\n"
    "                      loopback only with allow_insecure = true in [s3]\n"
    "  -f, --foreground    a daemon it starts stays in the foreground, logging\n"
    "                      to stderr\n"
    "  -o OPTIONS          for a daemon it starts, as for cairn mount: ro,\n"
    "                      cache_dir=DIR, cache_size=SIZE, log_level=LEVEL,\n"
    "                      config=FILE\n"
    "\n"
    "Prints where S3 is served. Exit status: 0 serving, 1 not (it says why),\n"
    "2 bad command line.\n";

namespace {

struct MountRequest {
  std::string volume_dir;
  std::string mountpoint;
  bool foreground = false;
  bool sloppy = false;   // unknown options are warned about, not refused
  bool fake = false;     // check, mount nothing (mount -f)
  bool verbose = false;
  FuseMountOptions fuse;
  std::string config_path;  // -o config=FILE: instead of VOLUME_DIR/cairn.toml
  // KEY=VALUE options that override cairn.toml, in the order given.
  std::vector<std::pair<std::string, std::string>> overrides;
  // `cairn serve s3` of an unmounted volume: no mount, S3 only.
  bool s3_only = false;
  std::string s3_listen;  // --listen: instead of [s3] listen
};

const char* CommandName(const MountRequest& request) {
  return request.s3_only ? "serve" : "mount";
}

// "2G", "512M", "64k", "1073741824" (binary units; an optional trailing B
// or iB): the number of bytes, or nullopt.
std::optional<uint64_t> ParseSize(std::string text) {
  for (const char* suffix : {"iB", "B"}) {
    size_t n = strlen(suffix);
    if (text.size() > n && text.compare(text.size() - n, n, suffix) == 0) {
      text.resize(text.size() - n);
      break;
    }
  }
  if (text.empty()) return std::nullopt;
  uint64_t unit = 1;
  switch (text.back()) {
    case 'k': case 'K': unit = 1ull << 10; break;
    case 'm': case 'M': unit = 1ull << 20; break;
    case 'g': case 'G': unit = 1ull << 30; break;
    case 't': case 'T': unit = 1ull << 40; break;
    default: break;
  }
  if (unit != 1) text.pop_back();
  uint64_t number = 0;
  if (text.empty() || !absl::SimpleAtoi(text, &number) || number > UINT64_MAX / unit) {
    return std::nullopt;
  }
  return number * unit;
}

// Applies the -o KEY=VALUE options to the volume's config; "" or what is
// wrong, naming the option.
std::string ApplyOverrides(const MountRequest& request, VolumeConfig* config) {
  for (const auto& [key, value] : request.overrides) {
    if (key == "cache_dir") {
      if (value.empty()) return "cache_dir= needs a directory";
      config->cache_dir = value[0] == '/' ? value : AbsolutePath(value);
    } else if (key == "cache_size") {
      std::optional<uint64_t> bytes = ParseSize(value);
      if (!bytes || *bytes > static_cast<uint64_t>(INT64_MAX)) {
        return "cache_size=" + value + " is not a size; write it like 2G, 512M or 1073741824";
      }
      if (!config->tier) {
        return "cache_size= sets the local cache of the remote tier, and this volume has no "
               "[tier] in its cairn.toml; drop the option or configure a tier (docs/CONFIG.md)";
      }
      config->tier->cache_bytes = static_cast<int64_t>(*bytes);
    } else if (key == "log_level") {
      LogLevel level;
      if (!ParseLogLevel(value, &level)) {
        return "log_level=" + value + " is not a level; use error, warning, info or debug";
      }
      config->log_level = value;
    }
  }
  return "";
}

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
    size_t equals = opt.find('=');
    std::string key = opt.substr(0, equals);
    if (equals != std::string::npos &&
        (key == "cache_dir" || key == "cache_size" || key == "log_level")) {
      request->overrides.emplace_back(key, opt.substr(equals + 1));
    } else if (key == "config" && equals != std::string::npos) {
      request->config_path = opt.substr(equals + 1);
      if (request->config_path.empty()) return UsageError("mount", "config= needs a file");
    } else if (opt == "allow_other") {
      request->fuse.allow_other = true;
    } else if (opt == "ro") {
      request->fuse.read_only = true;
    } else if (opt == "rw") {
      request->fuse.read_only = false;
    } else if (opt == "noatime") {
      request->fuse.noatime = true;
    } else if (opt == "debug") {
      request->fuse.debug = true;
    } else if (IsIgnoredGenericOption(opt)) {
      // mount(8), fstab and systemd options that mean nothing here.
    } else if (request->sloppy) {
      fprintf(stderr, "cairn: mount: warning: ignoring unknown mount option '%s'\n", opt.c_str());
    } else {
      return UsageError("mount", "unknown mount option '" + opt +
                                     "' (cairn mount --help lists the options)");
    }
  }
  return kExitOk;
}

// A cairn mount whose daemon died: it answers ENOTCONN (ECONNABORTED while
// the kernel is still tearing the connection down), or, where the kernel
// still has the answer cached, no live process holds its volume's lock.
bool IsStaleMount(const std::string& mountpoint) {
  absl::StatusOr<FileInfo> info = Env::Default()->Stat(mountpoint);
  if (!info.ok()) {
    std::optional<int> err = GetErrno(info.status());
    return err == ENOTCONN || err == ECONNABORTED;
  }
  std::optional<MountEntry> mount = FindCairnMount(mountpoint);
  if (!mount) return false;
  absl::StatusOr<MountRecord> holder = ReadMountRecord(mount->volume_dir);
  return holder.ok() && !holder->mounted;
}

// The mount is in place: the volume's lock and util-linux's mount table
// say where, the table so that plain umount(8) waits for the flush.
void RecordMounted(Volume& volume, const MountRequest& request, const ServeReady& ready) {
  if (request.s3_only) {
    absl::Status recorded = volume.RecordServingS3Only(getpid(), ready.s3_url);
    if (!recorded.ok()) LogWarning("%s", recorded.ToString());
    return;
  }
  absl::Status recorded = volume.RecordMount(getpid(), request.mountpoint);
  if (!recorded.ok()) LogWarning("%s", recorded.ToString());
  absl::Status listed = RecordInMountTable(request.volume_dir, request.mountpoint);
  if (!listed.ok() && geteuid() == 0) {
    LogWarning("%s; umount %s will not wait for the flush (cairn umount does)", listed.ToString(),
               request.mountpoint);
  }
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
  ForgetInMountTable(mountpoint);
  return true;
}

// Runs the volume until unmounted. `ready` is called once the mount is in
// place; before that, errors are returned.
absl::Status Serve(const MountRequest& request, const VolumeConfig& config,
                   const std::function<void(Volume&, const ServeReady&)>& ready) {
  VolumeOpenOptions open;
  open.read_only = request.fuse.read_only;
  // On a shared volume this daemon joins the other hosts' sessions.
  open.session = true;
  open.mountpoint = request.s3_only ? "" : request.mountpoint;
  absl::StatusOr<std::unique_ptr<Volume>> volume =
      Volume::Open(request.volume_dir, config, Io(), open);
  if (!volume.ok()) return volume.status();
  ServeOptions serve;
  if (!request.s3_only) serve.fuse = request.fuse;
  serve.s3_listen = request.s3_listen;
  absl::Status served = ServeVolume(
      **volume, serve, [&](const ServeReady& served_ready) { ready(**volume, served_ready); });
  // Unmounted by whatever means: umount(8) with our helper has removed the
  // entry already, fusermount3 -u has not.
  if (!request.s3_only) ForgetInMountTable(request.mountpoint);
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
  absl::Status probe = ProbeRemote(volume.io(), *config.tier, config.ConfigFile(volume_dir), config.volume_id,
                                   /*seconds=*/3);
  if (probe.ok()) return "";
  LogWarning("the remote tier does not answer: %s", probe.message());
  return absl::StrCat("the remote tier does not answer (", probe.message(),
                      "). Local data is fully usable; reads of tiered files fail with EIO "
                      "until it is back, and tiering waits and retries");
}

// The writeback journal lives in cache_dir, and after a crash it holds
// writes the volume has not stored yet; a mount with another cache_dir
// (-o cache_dir=, or cairn.toml edited) would not replay them. So each mount
// records its cache_dir, and a mount after an unclean stop must use the same
// one while that journal holds segments. "" or why not.
std::string CheckJournalDir(const std::string& volume_dir, const std::string& cache_dir) {
  Env* const env = Env::Default();
  const std::string record_path = volume_dir + "/journal-dir";
  absl::StatusOr<std::string> record = ReadFileToString(env, record_path);
  std::string previous = record.ok() ? record->substr(0, record->find('\n')) : "";
  if (!previous.empty() && previous != cache_dir) {
    if (!LastStopWasClean(volume_dir) &&
        WritebackJournal::CountSegments(previous + "/journal") > 0) {
      return absl::StrCat("the last mount of ", volume_dir, " used cache_dir ", previous,
                          " and did not stop cleanly: its writeback journal there holds writes "
                          "not yet stored. Mount once with -o cache_dir=", previous,
                          " (or that cache_dir in cairn.toml) so they are replayed; after a "
                          "clean unmount the cache_dir can change");
    }
  }
  if (previous != cache_dir) {
    if (absl::Status s = WriteFileAtomically(env, record_path, cache_dir + "\n"); !s.ok()) {
      return absl::StrCat("cannot record the cache_dir in ", record_path, ": ", s.message());
    }
  }
  return "";
}

// Tells systemd that the mount is ready, for a service of Type=notify
// (packaging/systemd/cairn@.service); a no-op when not run by systemd.
void NotifySystemd(const std::string& state) {
  const char* socket_path = getenv("NOTIFY_SOCKET");
  if (socket_path == nullptr || *socket_path == '\0') return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string path = socket_path;
  if (path.size() >= sizeof(address.sun_path)) return;
  memcpy(address.sun_path, path.data(), path.size());
  if (path[0] == '@') address.sun_path[0] = '\0';  // an abstract socket
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size()));
  close(fd);
}

// The daemon logs to syslog; nothing it prints may reach (or block on) the
// terminal or pipe of the command that started it.
void RedirectStdioToNull() {
  if (freopen("/dev/null", "r", stdin) == nullptr ||
      freopen("/dev/null", "w", stdout) == nullptr ||
      freopen("/dev/null", "w", stderr) == nullptr) {
    LogWarning("could not detach the daemon's standard streams");
  }
}

int RunInBackground(const MountRequest& request, const VolumeConfig& config) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Fail(CommandName(request), std::string("pipe: ") + strerror(errno));
  }
  fflush(stdout);
  fflush(stderr);
  pid_t child = fork();
  if (child < 0) return Fail(CommandName(request), std::string("fork: ") + strerror(errno));
  if (child == 0) {
    close(pipe_fds[0]);
    setsid();
    UseSyslog();
    int report_fd = pipe_fds[1];
    absl::Status status = Serve(request, config, [&](Volume& volume, const ServeReady& ready) {
      RecordMounted(volume, request, ready);
      // The user at the terminal must hear of a degraded start, not only
      // syslog.
      std::string reply = "ok";
      if (!ready.replay_warning.empty()) reply += "\n" + ready.replay_warning;
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
      std::string message(status.ok() ? "exited before it was ready"
                                      : status.message());
      [[maybe_unused]] ssize_t n = write(report_fd, message.data(), message.size());
      _exit(kExitFailed);
    }
    if (!status.ok()) {
      LogError("%s", std::string(status.message()));
      _exit(kExitFailed);
    }
    LogInfo("volume %s %s cleanly", request.volume_dir,
            request.s3_only ? "stopped serving" : "unmounted");
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
    if (reply.size() > 3) {
      fprintf(stderr, "cairn: %s: warning: %s\n", CommandName(request), reply.substr(3).c_str());
    }
    return kExitOk;
  }
  if (reply.empty()) {
    waitpid(child, nullptr, WNOHANG);
    return Fail(CommandName(request),
                "the daemon exited before it was ready (see journalctl -t cairn or syslog)");
  }
  waitpid(child, nullptr, 0);
  return Fail(CommandName(request), reply);
}

int MountVolume(MountRequest request);
int StartDaemon(const MountRequest& request, const VolumeConfig& config);

constexpr auto kFinishingDaemonWait = std::chrono::seconds(120);

// A daemon holding the volume whose mount is gone: unmounted without our
// umount helper (umount -i, umount -l, or the helper not installed), it is
// still storing what was written.
bool IsFinishing(const MountRecord& holder, const std::string& volume_dir) {
  if (!holder.mounted || holder.mountpoint.empty()) return false;  // empty: still starting
  std::optional<MountEntry> mount = FindCairnMount(holder.mountpoint);
  return !mount || mount->volume_dir != volume_dir;
}

// The volume's lock holder, after waiting (bounded, and saying so) for a
// previous daemon that is finishing: `systemctl restart` of a mount unit
// mounts again the moment umount returns.
absl::StatusOr<MountRecord> WaitForFinishingDaemon(const std::string& volume_dir) {
  absl::StatusOr<MountRecord> holder = ReadMountRecord(volume_dir);
  if (!holder.ok() || !IsFinishing(*holder, volume_dir)) return holder;
  fprintf(stderr,
          "cairn: mount: waiting for process %d, the previous daemon of %s, to finish "
          "storing what was written (up to %lld s)\n",
          static_cast<int>(holder->pid), volume_dir.c_str(),
          static_cast<long long>(kFinishingDaemonWait.count()));
  const auto deadline = std::chrono::steady_clock::now() + kFinishingDaemonWait;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    holder = ReadMountRecord(volume_dir);
    if (!holder.ok() || !IsFinishing(*holder, volume_dir)) return holder;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the previous daemon of ", volume_dir, " (process ", holder->pid, ") is unmounted but "
      "still running after ", kFinishingDaemonWait.count(), " s; see its log (journalctl -t "
      "cairn) and mount again once it has exited"));
}

// Symlinks resolved, so that two spellings of one directory compare equal;
// a part that does not exist yet is kept as spelled.
std::string ResolvedPath(const std::string& path) {
  std::error_code error;
  std::filesystem::path resolved = std::filesystem::weakly_canonical(path, error);
  return error ? path : AbsolutePath(resolved.string());
}

// A mountpoint that is, lies inside or holds the volume's own storage would
// send the daemon's own reads and writes through its mount: it waits on
// itself (D state) and umount hangs with it. Empty when the mountpoint is
// clear of all of it.
std::string MountpointOverlap(const std::string& mountpoint, const std::string& volume_dir,
                              const VolumeConfig& config) {
  std::vector<std::pair<std::string, std::string>> stores = {
      {"the volume directory", volume_dir}, {"the cache directory (cache_dir)", config.cache_dir}};
  for (const std::string& disk : config.DataDisks(volume_dir)) {
    stores.emplace_back("disk directory", disk);
  }
  const std::string target = ResolvedPath(mountpoint);
  for (const auto& [what, path] : stores) {
    const std::string store = ResolvedPath(path);
    std::string relation;
    if (target == store) {
      relation = "is";
    } else if (PathIsWithin(target, store)) {
      relation = "is inside";
    } else if (PathIsWithin(store, target)) {
      relation = "holds";
    } else {
      continue;
    }
    return absl::StrCat("mountpoint ", mountpoint, " ", relation, " ", what, " ", path,
                        ", where the volume keeps its data, so the daemon would read and write "
                        "it through its own mount and hang; mount on a directory outside the "
                        "volume's storage (for example: mkdir -p /mnt/cairn; cairn mount ",
                        volume_dir, " /mnt/cairn)");
  }
  return "";
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
  return MountVolume(request);
}

int ServeCommand(const Args& args) {
  if (args.empty() || args[0] != "s3") {
    return UsageError("serve", "expected what to serve: s3 (cairn serve s3 "
                               "VOLUME_DIR|MOUNTPOINT [--listen HOST:PORT])");
  }
  MountRequest request;
  request.s3_only = true;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--listen") {
      if (i + 1 >= args.size()) return UsageError("serve", "--listen needs HOST:PORT");
      request.s3_listen = args[++i];
      if (request.s3_listen.empty()) return UsageError("serve", "--listen needs HOST:PORT");
    } else if (arg.rfind("--listen=", 0) == 0) {
      request.s3_listen = arg.substr(9);
      if (request.s3_listen.empty()) return UsageError("serve", "--listen needs HOST:PORT");
    } else if (arg == "-f" || arg == "--foreground") {
      request.foreground = true;
    } else if (arg == "-o") {
      if (i + 1 >= args.size()) return UsageError("serve", "-o needs options");
      if (int rc = ParseOptions(args[++i], &request); rc != kExitOk) return rc;
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      if (int rc = ParseOptions(arg.substr(2), &request); rc != kExitOk) return rc;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("serve", "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 1) return UsageError("serve", "expected VOLUME_DIR or MOUNTPOINT");
  const std::string target = AbsolutePath(positional[0]);
  std::optional<MountEntry> mount = FindCairnMount(target);
  request.volume_dir = mount ? mount->volume_dir : target;
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(
      request.volume_dir, request.config_path.empty() ? "" : AbsolutePath(request.config_path));
  if (!config.ok()) return Fail("serve", config.status());
  if (std::string bad = ApplyOverrides(request, &*config); !bad.empty()) {
    return UsageError("serve", bad);
  }
  S3Config s3 = config->s3;
  if (!request.s3_listen.empty()) s3.listen = request.s3_listen;
  if (absl::Status s = CheckS3Listen(s3); !s.ok()) {
    return UsageError("serve", "--listen " + std::string(s.message()));
  }

  // A daemon serves the volume already (mounted, or S3 only): it is asked.
  absl::StatusOr<MountRecord> holder = WaitForFinishingDaemon(request.volume_dir);
  if (absl::IsDeadlineExceeded(holder.status())) return Fail("serve", holder.status());
  if (holder.ok() && holder->mounted) {
    if (!request.overrides.empty() || !request.config_path.empty() || request.foreground ||
        request.fuse.read_only) {
      return UsageError("serve", absl::StrCat("-f and -o apply to a daemon cairn serve s3 "
                                              "starts, and process ", holder->pid,
                                              " serves ", request.volume_dir, " already"));
    }
    absl::StatusOr<std::string> answer = AskDaemon(
        request.volume_dir, config->volume_id, "s3\tserve\t" + request.s3_listen, nullptr);
    if (!answer.ok()) return Fail("serve", answer.status());
    const std::string url = JsonText(*answer, "url");
    if (holder->mountpoint.empty()) {
      printf("cairn: serving %s over S3 at %s (process %d)\n", request.volume_dir.c_str(),
             url.c_str(), static_cast<int>(holder->pid));
    } else {
      printf("cairn: serving %s, mounted at %s, over S3 at %s until it is unmounted\n",
             request.volume_dir.c_str(), holder->mountpoint.c_str(), url.c_str());
    }
    return kExitOk;
  }
  if (mount) {
    return Fail("serve", target + " is a cairn mount whose daemon is gone; unmount it "
                                  "(cairn umount " + target + ") and try again");
  }
  if (s3.listen.empty()) {
    return UsageError("serve", "no address to serve S3 on: give --listen HOST:PORT (like "
                               "127.0.0.1:9000) or set listen in the [s3] section of " +
                                   config->ConfigFile(request.volume_dir));
  }
  return StartDaemon(request, *config);
}

int MountHelperCommand(const Args& args) {
  MountRequest request;
  std::vector<std::string> positional;
  std::vector<std::string> option_lists;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      fputs(kMountHelperHelp, stdout);
      return kExitOk;
    }
    if (arg == "-o") {
      if (i + 1 >= args.size()) return UsageError("mount", "-o needs options");
      option_lists.push_back(args[++i]);
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      option_lists.push_back(arg.substr(2));
    } else if (arg == "-t") {
      ++i;  // the type: cairn (or cairn.SUBTYPE), which is why we run
    } else if (arg == "-N") {
      return UsageError("mount", "-N (another mount namespace) is not supported");
    } else if (arg.size() > 1 && arg[0] == '-' && arg[1] != '-') {
      // Grouped flags, as mount(8) passes them: -sfnv.
      for (char flag : arg.substr(1)) {
        if (flag == 's') request.sloppy = true;
        else if (flag == 'f') request.fake = true;
        else if (flag == 'v') request.verbose = true;
        else if (flag != 'n') return UsageError("mount", std::string("unknown flag -") + flag);
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("mount", "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  // Options after the flags they may depend on (-s).
  for (const std::string& list : option_lists) {
    if (int rc = ParseOptions(list, &request); rc != kExitOk) return rc;
  }
  if (positional.size() != 2) {
    return UsageError("mount", "expected VOLUME_DIR and MOUNTPOINT (mount -t cairn VOLUME_DIR "
                               "MOUNTPOINT)");
  }
  request.volume_dir = AbsolutePath(positional[0]);
  request.mountpoint = AbsolutePath(positional[1]);
  return MountVolume(request);
}

namespace {

// Both kinds of daemon: refused while another process serves the volume;
// then started in the background, or run here with -f.
int StartDaemon(const MountRequest& request, const VolumeConfig& config) {
  const char* command = CommandName(request);
  absl::StatusOr<MountRecord> holder = WaitForFinishingDaemon(request.volume_dir);
  if (absl::IsDeadlineExceeded(holder.status())) return Fail(command, holder.status());
  if (holder.ok() && holder->mounted) {
    return Fail(command, absl::StrCat("volume ", request.volume_dir,
                                      " is already in use by process ", holder->pid,
                                      HolderAndRemedy(*holder, request.volume_dir)));
  }
  if (!request.fake) {
    if (std::string why = CheckJournalDir(request.volume_dir, config.cache_dir); !why.empty()) {
      return Fail(command, why);
    }
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(config.log_level, &level);
  if (request.fuse.debug) level = LogLevel::kDebug;
  SetLogLevel(level);
  if (request.verbose || request.fake) {
    printf("cairn: %s volume %s at %s\n", request.fake ? "would mount" : "mounting",
           request.volume_dir.c_str(), request.mountpoint.c_str());
  }
  if (request.fake) return kExitOk;

  if (!request.foreground) {
    int rc = RunInBackground(request, config);
    if (rc == kExitOk && request.s3_only) {
      absl::StatusOr<MountRecord> serving = ReadMountRecord(request.volume_dir);
      printf("cairn: serving %s over S3 at %s; stop with: cairn umount %s\n",
             request.volume_dir.c_str(),
             serving.ok() && !serving->s3_only_url.empty() ? serving->s3_only_url.c_str()
                                                           : "(see cairn status)",
             request.volume_dir.c_str());
    }
    return rc;
  }
  absl::Status status = Serve(request, config, [&](Volume& volume, const ServeReady& ready) {
    RecordMounted(volume, request, ready);
    if (!ready.replay_warning.empty()) LogWarning("%s", ready.replay_warning);
    std::string degraded = DegradedWarning(volume);
    if (!degraded.empty()) LogWarning("%s", degraded);
    std::string remote = RemoteWarning(volume, request.volume_dir);
    if (!remote.empty()) LogWarning("%s", remote);
    const std::string where = request.s3_only ? " served over S3 at " + ready.s3_url
                                              : " mounted at " + request.mountpoint;
    NotifySystemd(absl::StrCat("READY=1\nSTATUS=", request.volume_dir, where,
                               degraded.empty() ? "" : " (DEGRADED)"));
  });
  if (!status.ok()) return Fail(command, status);
  return kExitOk;
}

int MountVolume(MountRequest request) {
  request.fuse.mountpoint = request.mountpoint;
  if (!request.fake) CleanStaleMount(request.mountpoint);
  absl::StatusOr<FileInfo> mountpoint = Env::Default()->Stat(request.mountpoint);
  if (!mountpoint.ok()) {
    return Fail("mount", absl::StrCat("mountpoint ", request.mountpoint, " does not exist (",
                                      mountpoint.status().message(),
                                      "); create it with: mkdir -p ", request.mountpoint));
  }
  if (!mountpoint->is_directory) {
    return Fail("mount", "mountpoint " + request.mountpoint +
                             " is not a directory; mount on a directory");
  }
  if (FindCairnMount(request.mountpoint)) {
    return Fail("mount", request.mountpoint +
                             " already has a cairn volume mounted; unmount it "
                             "first: cairn umount " + request.mountpoint);
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(
      request.volume_dir,
      request.config_path.empty() ? "" : AbsolutePath(request.config_path));
  if (!config.ok()) return Fail("mount", config.status());
  if (std::string bad = ApplyOverrides(request, &*config); !bad.empty()) {
    return UsageError("mount", bad);
  }
  if (std::string overlap = MountpointOverlap(request.mountpoint, request.volume_dir, *config);
      !overlap.empty()) {
    return Fail("mount", overlap);
  }
  return StartDaemon(request, *config);
}

}  // namespace
}  // namespace cairn::cli

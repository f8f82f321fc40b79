#include <fcntl.h>
#include <sys/file.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "backend/volume/volume.h"
#include "daemon/cli.h"
#include "daemon/mount_table.h"

namespace cairn::cli {

const char kUmountHelp[] =
    "usage: cairn umount MOUNTPOINT\n"
    "       cairn umount VOLUME_DIR     (a volume served by cairn serve s3)\n"
    "\n"
    "Unmounts the cairn volume at MOUNTPOINT and waits until its daemon has\n"
    "stored everything written and exited, so the volume can be copied,\n"
    "mounted elsewhere or the machine shut down right after. Given the\n"
    "directory of a volume served over S3 without a mount (cairn serve s3),\n"
    "stops that daemon the same way.\n"
    "\n"
    "Exit status: 0 unmounted and everything stored; 1 not unmounted, or the\n"
    "daemon could not store everything (it says why: a full or failed disk;\n"
    "the data stays in the writeback journal and the next mount stores it);\n"
    "2 bad command line.\n";

const char kUmountHelperHelp[] =
    "usage: umount.fuse.cairn MOUNTPOINT [-nlfvr] [-t TYPE]\n"
    "\n"
    "The helper umount(8) runs for mounts of type fuse.cairn (plain umount,\n"
    "systemd mount units at stop and shutdown, /etc/fstab). Unmounts like\n"
    "cairn umount: it returns only once the daemon has stored everything\n"
    "written and exited, so what is stopped after the mount (the disks under\n"
    "the volume, the machine) never cuts a flush short.\n"
    "\n"
    "  -l    lazy: detach the mount now and return; the daemon stores what\n"
    "        was written and exits once the last open file is closed\n"
    "  -f    force: abort the mount's open requests (written data the kernel\n"
    "        still held is lost), then wait for the daemon as usual\n"
    "  -n    no /etc/mtab entry to remove (there is none)\n"
    "  -v    say what is done\n"
    "  -r    accepted and ignored (a FUSE mount has no read-only fallback)\n"
    "  -t    the type (fuse.cairn), accepted and ignored\n"
    "\n"
    "Exit status (umount(8)'s): 0 unmounted and everything stored, 1 bad\n"
    "command line, 32 not unmounted or not everything stored.\n";

namespace {

constexpr auto kGiveUpAfter = std::chrono::minutes(10);

// The daemon holds the volume lock until its last flush is done.
bool VolumeReleased(const std::string& volume_dir) {
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  return record.ok() && !record->mounted;
}

struct UnmountRequest {
  std::string mountpoint;
  bool lazy = false;   // MNT_DETACH, and no wait for the daemon
  bool force = false;  // MNT_FORCE: FUSE aborts the connection
  bool verbose = false;
};

// Waits until the daemon of `volume_dir` has stored everything and exited;
// kExitOk, or the failure (`done` says what happened before, for the
// message).
int WaitForDaemon(const std::string& volume_dir, const std::string& done) {
  auto start = std::chrono::steady_clock::now();
  auto next_note = start + std::chrono::seconds(10);
  while (!VolumeReleased(volume_dir)) {
    auto now = std::chrono::steady_clock::now();
    if (now - start > kGiveUpAfter) {
      return Fail("umount", done + "the daemon of " + volume_dir +
                                " is still running after 10 minutes; see its log "
                                "(journalctl -t cairn)");
    }
    if (now >= next_note) {
      fprintf(stderr, "cairn: umount: still storing written data of %s...\n",
              volume_dir.c_str());
      next_note = now + std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (std::optional<std::string> error = ReadStopError(volume_dir)) {
    return Fail("umount", done + "the daemon stopped with an error: " + *error);
  }
  return kExitOk;
}

// `cairn serve s3` of an unmounted volume runs a daemon without a mount;
// SIGTERM stops it as an unmount would.
int StopS3OnlyDaemon(const std::string& volume_dir, const MountRecord& record, bool verbose) {
  if (kill(record.pid, SIGTERM) != 0 && errno != ESRCH) {
    return Fail("umount", "cannot stop process " + std::to_string(record.pid) +
                              ", which serves " + volume_dir + " over S3: " + strerror(errno) +
                              " (run this as its user or root)");
  }
  if (int rc = WaitForDaemon(volume_dir, "stopped serving S3, but "); rc != kExitOk) return rc;
  if (verbose) {
    printf("cairn: stopped serving %s over S3; everything written to it is stored\n",
           volume_dir.c_str());
  }
  return kExitOk;
}

int UnmountAndWait(const UnmountRequest& request) {
  const std::string& mountpoint = request.mountpoint;
  std::optional<MountEntry> mount = FindCairnMount(mountpoint);
  if (!mount) {
    absl::StatusOr<MountRecord> record = ReadMountRecord(mountpoint);
    if (record.ok() && record->mounted && !record->s3_only_url.empty()) {
      return StopS3OnlyDaemon(mountpoint, *record, request.verbose);
    }
    return Fail("umount", mountpoint + " is not a cairn mount (see: findmnt -t fuse.cairn)");
  }
  const int flags = (request.lazy ? MNT_DETACH : 0) | (request.force ? MNT_FORCE : 0);
  if (umount2(mountpoint.c_str(), flags) != 0) {
    int err = errno;
    if (err == EBUSY) {
      return Fail("umount", mountpoint +
                                " is busy: close the files and shells using it "
                                "(see: fuser -vm " + mountpoint + ")");
    }
    // Not root: the FUSE helper may unmount what the user mounted.
    std::string command =
        std::string("fusermount3 -u ") + (request.lazy ? "-z " : "") + "-- '" + mountpoint + "'";
    if (system(command.c_str()) != 0) {
      return Fail("umount", "could not unmount " + mountpoint + ": " + strerror(err));
    }
  }
  ForgetInMountTable(mountpoint);
  if (request.lazy) {
    if (request.verbose) {
      printf("cairn: detached %s; the daemon of %s stores what was written and exits once its "
             "last open file is closed\n",
             mountpoint.c_str(), mount->volume_dir.c_str());
    }
    return kExitOk;
  }
  if (int rc = WaitForDaemon(mount->volume_dir, "unmounted, but "); rc != kExitOk) return rc;
  if (request.verbose) {
    printf("cairn: unmounted %s; everything written to %s is stored\n", mountpoint.c_str(),
           mount->volume_dir.c_str());
  }
  return kExitOk;
}

}  // namespace

int UmountCommand(const Args& args) {
  if (args.size() != 1 || (!args[0].empty() && args[0][0] == '-')) {
    return UsageError("umount", "expected exactly one MOUNTPOINT (or VOLUME_DIR)");
  }
  return UnmountAndWait({.mountpoint = AbsolutePath(args[0])});
}

int UmountHelperCommand(const Args& args) {
  UnmountRequest request;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      fputs(kUmountHelperHelp, stdout);
      return kExitOk;
    }
    if (arg == "-t") {
      ++i;  // fuse.cairn, which is why we run
    } else if (arg.size() > 1 && arg[0] == '-' && arg[1] != '-') {
      for (char flag : arg.substr(1)) {
        if (flag == 'l') request.lazy = true;
        else if (flag == 'f') request.force = true;
        else if (flag == 'v') request.verbose = true;
        else if (flag != 'n' && flag != 'r') {
          return UsageError("umount", std::string("unknown flag -") + flag);
        }
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("umount", "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 1) {
    return UsageError("umount", "expected one MOUNTPOINT (umount MOUNTPOINT)");
  }
  request.mountpoint = AbsolutePath(positional[0]);
  return UnmountAndWait(request);
}

}  // namespace cairn::cli

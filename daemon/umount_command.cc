#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "backend/volume/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kUmountHelp[] =
    "usage: cairn umount MOUNTPOINT\n"
    "\n"
    "Unmounts the cairn volume at MOUNTPOINT and waits until its daemon has\n"
    "stored everything written and exited, so the volume can be copied,\n"
    "mounted elsewhere or the machine shut down right after.\n"
    "\n"
    "Exit status: 0 unmounted and everything stored; 1 not unmounted, or the\n"
    "daemon could not store everything (it says why: a full or failed disk;\n"
    "the data stays in the writeback journal and the next mount stores it);\n"
    "2 bad command line.\n";

namespace {

constexpr auto kGiveUpAfter = std::chrono::minutes(10);

// The daemon holds the volume lock until its last flush is done.
bool VolumeReleased(const std::string& volume_dir) {
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  return record.ok() && !record->mounted;
}

}  // namespace

int UmountCommand(const Args& args) {
  if (args.size() != 1 || (!args[0].empty() && args[0][0] == '-')) {
    return UsageError("umount", "expected exactly one MOUNTPOINT");
  }
  std::string mountpoint = AbsolutePath(args[0]);
  std::optional<MountEntry> mount = FindCairnMount(mountpoint);
  if (!mount) {
    return Fail("umount", mountpoint + " is not a cairn mount (see: findmnt -t fuse.cairn)");
  }
  if (umount2(mountpoint.c_str(), 0) != 0) {
    int err = errno;
    if (err == EBUSY) {
      return Fail("umount", mountpoint +
                                " is busy: close the files and shells using it "
                                "(see: fuser -vm " + mountpoint + ")");
    }
    // Not root: the FUSE helper may unmount what the user mounted.
    std::string command = "fusermount3 -u -- '" + mountpoint + "'";
    if (system(command.c_str()) != 0) {
      return Fail("umount", "could not unmount " + mountpoint + ": " + strerror(err));
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto next_note = start + std::chrono::seconds(10);
  while (!VolumeReleased(mount->volume_dir)) {
    auto now = std::chrono::steady_clock::now();
    if (now - start > kGiveUpAfter) {
      return Fail("umount", "unmounted, but the daemon of " + mount->volume_dir +
                                " is still running after 10 minutes; see its log "
                                "(journalctl -t cairn)");
    }
    if (now >= next_note) {
      fprintf(stderr, "cairn: umount: still storing written data of %s...\n",
              mount->volume_dir.c_str());
      next_note = now + std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (std::optional<std::string> error = ReadStopError(mount->volume_dir)) {
    return Fail("umount", "unmounted, but the daemon stopped with an error: " + *error);
  }
  return kExitOk;
}

}  // namespace cairn::cli

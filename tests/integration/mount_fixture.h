// A real cairn mount in a private temp directory, for integration tests.
//
// Every test gets its own volume and mountpoint under /tmp/cairn-it-XXXXXX
// (volume/ and mnt/). The mount is taken down in TearDown, in the fixture's
// destructor, at exit and on SIGTERM/SIGINT/SIGHUP, whether or not the test
// passed: `cairn umount`, then `fusermount3 -u -z`, then `umount -l`. The
// temp directory is removed only once nothing is mounted anywhere inside it,
// so a cleanup never deletes through a live mount into a volume.
//
// A watchdog bounds every test (CAIRN_IT_TEST_TIMEOUT seconds, default 240):
// when it fires it aborts the FUSE connection, so a test stuck in a syscall
// on a hung daemon fails instead of hanging the suite.
//
// CAIRN_IT_DISKS=N formats every test volume with N disk directories (6:
// ec:4+2), so the whole suite can run on a striped volume.
//
// CAIRN_IT_NATIVE=1 skips cairn altogether: the test runs in a plain
// directory of the host filesystem (ext4 here). That checks the test itself:
// a test that fails natively is wrong, not cairn. Tests that only mean
// something on cairn (CLI, remount) skip in that mode.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cairn_it {

struct CommandResult {
  int exit_code = -1;   // 128+N when killed by signal N; 124 on timeout
  std::string output;   // stdout and stderr together
};

// At most the first 4000 bytes of a command's output, for failure messages.
inline std::string Brief(const CommandResult& result) {
  return result.output.size() <= 4000
             ? result.output
             : result.output.substr(0, 4000) + "\n[... " +
                   std::to_string(result.output.size() - 4000) + " more bytes]";
}

// Runs `command` with bash (-o pipefail), stdin from /dev/null and no file
// descriptors inherited beyond stdio, bounded by `timeout_seconds`.
CommandResult RunCommand(const std::string& command, int timeout_seconds = 300);

// The cairn binary under test (CAIRN_BINARY, else "cairn" on PATH).
std::string CairnBinary();

// True when CAIRN_IT_NATIVE=1: run against the host filesystem.
bool NativeMode();

// Single-quotes `text` for the shell.
std::string Quote(const std::string& text);

struct MountEntry {
  std::string mountpoint;
  std::string fstype;
  std::string source;
};

// Entries of /proc/self/mountinfo mounted exactly at `path` (stacked mounts
// give several).
std::vector<MountEntry> MountsAt(const std::string& path);

// True if `path` is a mountpoint of any filesystem.
bool IsMounted(const std::string& path);

// True if the topmost mount at `path` is a fuse.cairn mount.
bool IsCairnMount(const std::string& path);

// Mountpoints at or below `dir`, deepest first.
std::vector<std::string> MountsUnder(const std::string& dir);

bool ProcessAlive(pid_t pid);

// The raw value of "key" in a flat JSON object (`cairn status --json`):
// `true`, `12`, or a string without its quotes. nullopt if absent.
std::optional<std::string> JsonField(const std::string& json,
                                     const std::string& key);

// A TCP port that was free a moment ago on 127.0.0.1.
int FreeLoopbackPort();

// Polls `done` every 50 ms until it returns true or `timeout_seconds` pass.
bool WaitFor(const std::function<bool()>& done, double timeout_seconds);

// Unmounts everything under `work_dir`, stops daemons serving its volumes
// without a mount (cairn serve s3), waits for (and as a last resort kills)
// the daemons of volumes under it, then removes it if nothing is
// mounted there any more. Returns a description of what could not be done,
// empty on success.
std::string CleanUpWorkDir(const std::string& work_dir);

class MountTest : public ::testing::Test {
 protected:
  MountTest() = default;
  ~MountTest() override;

  void SetUp() override;
  void TearDown() override;

  // Disk directories the test volume is formatted with (work_dir_/diskN):
  // CAIRN_IT_DISKS, default 0 (the embedded VOLUME_DIR/data). A fixture may
  // override it to always test a striped volume.
  virtual int DiskCount();

  // Runs a shell command (see RunCommand).
  CommandResult Run(const std::string& command, int timeout_seconds = 300) {
    return RunCommand(command, timeout_seconds);
  }
  // Runs the cairn binary with `args` (already quoted as needed).
  CommandResult Cairn(const std::string& args, int timeout_seconds = 120) {
    return RunCommand(Quote(CairnBinary()) + " " + args, timeout_seconds);
  }

  // `cairn mount VOLUME MNT`, checked to leave a fuse.cairn mount. No-ops in
  // native mode.
  void Mount();  // keeps what cairn mount printed in last_mount_output_
  // `cairn umount MNT`, checked to leave no mount and a released volume.
  void Unmount();
  // Unmount() then Mount(): everything must come back from the volume.
  void Remount();
  // Unmounts, adds a [replica] section for bucket "replica" at `endpoint`
  // (an s3rver, with its credentials) plus `extra_lines`, makes cairn.toml
  // owner-only (it holds a secret now) and mounts again.
  void AddReplicaAndRemount(const std::string& endpoint,
                            const std::vector<std::string>& extra_lines = {});

  // The daemon serving the volume, from `cairn status --json`; 0 if none.
  pid_t DaemonPid();
  // Kills the daemon as a crash would (SIGKILL) and detaches its mount.
  void CrashDaemon();

  // Notes the FUSE connection of the mount for the watchdog; call after a
  // test mounted the volume itself.
  void RecordConnection();

  // Absolute path of `relative` inside the mount ("" is the mount root).
  std::string P(const std::string& relative) const {
    return relative.empty() ? mount_dir_ : mount_dir_ + "/" + relative;
  }
  // The same, quoted for the shell.
  std::string QP(const std::string& relative) const { return Quote(P(relative)); }

  std::string work_dir_;    // private temp dir
  std::string volume_dir_;  // work_dir_/volume
  std::string mount_dir_;   // work_dir_/mnt (a plain dir in native mode)
  std::string last_mount_output_;

 private:
  void StartWatchdog();
  void StopWatchdog();

  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_wake_;
  bool watchdog_stop_ = false;
  std::thread watchdog_;
  std::string fuse_connection_;  // /sys/fs/fuse/connections/N of the mount
  bool cleaned_up_ = false;
};

}  // namespace cairn_it

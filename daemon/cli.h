// Shared pieces of the cairn command line. Exit codes: 0 success, 1 the
// operation failed, 2 the command line was wrong.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/json.h"
#include "backend/volume/volume.h"

namespace cairn::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

using Args = std::vector<std::string>;

// Prints "cairn: VERB: message" to stderr and returns kExitFailed.
int Fail(const std::string& verb, const std::string& message);
int Fail(const std::string& verb, const absl::Status& status);
// Prints the usage error and the pointer to --help; returns kExitUsage.
int UsageError(const std::string& verb, const std::string& message);

// The value of option `name` at args[i] ("--name VALUE" or "--name=VALUE"),
// moving `i` onto the value; nullopt if args[i] is not that option, or it
// has no value (then `error` says so).
std::optional<std::string> OptionValue(const Args& args, size_t& i, const std::string& name,
                                       std::string* error);

bool WantsHelp(const Args& args);

// A cairn mount as /proc/self/mountinfo lists it.
struct MountEntry {
  std::string mountpoint;
  std::string volume_dir;  // the mount's source
};
// The cairn mount at `path` (absolute, normalised), if any.
std::optional<MountEntry> FindCairnMount(const std::string& path);
std::string AbsolutePath(const std::string& path);
// Where the volume of TARGET (a volume directory or a mountpoint) lives.
std::string VolumeDirOf(const std::string& target);

// The JSON object after "key": in `json` (braces matched), or "".
std::string JsonObject(const std::string& json, const std::string& key);
// The string after "key": in `json`, unescaped; "" if absent.
std::string JsonText(const std::string& json, const std::string& key);
// The flat JSON of counters the mounted daemon rewrites every 2 s in
// cache_dir/stats.json; "" when there is none.
std::string ReadDaemonStats(const VolumeConfig& config);
// Sends `request` to the daemon serving the volume in `volume_dir` (daemon/
// control_channel.h); `on_progress` gets the JSON of each progress line.
// Returns the JSON of the final "done" line, or the daemon's error
// (kFailedPrecondition), or kUnavailable when no daemon serves the volume.
absl::StatusOr<std::string> AskDaemon(
    const std::string& volume_dir, const std::string& volume_id, const std::string& request,
    const std::function<void(const std::string&)>& on_progress = nullptr);
// 1536 -> "1.5 KiB".
std::string Human(uint64_t bytes);
// The number after "key": in flat JSON the daemon wrote, if present.
// Progress of a long command (scrub, disk replace, fsck, tier in/out) on
// stderr: on a terminal a bar with rate and time left, redrawn in place; not
// on one (a log, a pipe, a systemd unit) a plain line every 10 seconds
// (CAIRN_PROGRESS_SECONDS sets the interval). Quiet for commands done sooner.
class Progress {
 public:
  // `what` names the command ("scrub"), `unit` what is counted ("blobs").
  Progress(std::string what, std::string unit);
  ~Progress() { Clear(); }
  // `done` of `total` units, `bytes` processed so far; with `total_bytes`,
  // the fraction done and the time left go by bytes.
  void Update(uint64_t done, uint64_t total, uint64_t bytes, uint64_t total_bytes = 0);
  // Removes the bar (a terminal) before the command prints its result.
  void Clear();

 private:
  std::string what_, unit_;
  bool tty_;
  double line_seconds_ = 10;
  std::chrono::steady_clock::time_point start_, last_line_;
  bool shown_ = false;
};

std::optional<uint64_t> StatNumber(const std::string& json, const std::string& key);
std::optional<double> StatDouble(const std::string& json, const std::string& key);

int FormatCommand(const Args& args);
int AttachCommand(const Args& args);
int MountCommand(const Args& args);
int ServeCommand(const Args& args);
int UmountCommand(const Args& args);
int StatusCommand(const Args& args);
int FsckCommand(const Args& args);
int ScrubCommand(const Args& args);
int DiskCommand(const Args& args);
int TierCommand(const Args& args);
int PinCommand(const Args& args, bool pin);
int BackupCommand(const Args& args);
int RestoreCommand(const Args& args);
// mount.cairn, as mount(8) runs it: VOLUME_DIR MOUNTPOINT [-sfnv] [-o OPTIONS].
int MountHelperCommand(const Args& args);
// umount.fuse.cairn, as umount(8) runs it: MOUNTPOINT [-nlfvr] [-t TYPE].
int UmountHelperCommand(const Args& args);

extern const char kFormatHelp[];
extern const char kAttachHelp[];
extern const char kMountHelp[];
extern const char kServeHelp[];
extern const char kMountHelperHelp[];
extern const char kUmountHelp[];
extern const char kUmountHelperHelp[];
extern const char kStatusHelp[];
extern const char kFsckHelp[];
extern const char kScrubHelp[];
extern const char kDiskHelp[];
extern const char kTierHelp[];
extern const char kPinHelp[];
extern const char kBackupHelp[];
extern const char kRestoreHelp[];

}  // namespace cairn::cli

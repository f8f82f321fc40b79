// cairn tier out|in|status|run and cairn pin|unpin: the remote tier by hand.
// Moves go through the daemon serving the volume (over the control
// channel); pins are an xattr set through the mount.
#include <ftw.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/control_channel.h"
#include "backend/namespace/file_location.h"
#include "backend/volume/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kTierHelp[] =
    "usage: cairn tier out PATH...\n"
    "       cairn tier in PATH...\n"
    "       cairn tier status VOLUME_DIR|MOUNTPOINT [--json]\n"
    "       cairn tier run VOLUME_DIR|MOUNTPOINT\n"
    "\n"
    "The remote tier ([tier] in cairn.toml) holds cold data in an S3 bucket;\n"
    "the daemon moves blobs of files unused for cold_after_seconds, and the\n"
    "coldest when the local disks pass high_watermark_percent. Reading moved\n"
    "data brings it through transparently.\n"
    "\n"
    "  out PATH...   move these files (directories: every file below) to the\n"
    "                remote tier now, freeing their local space\n"
    "  in PATH...    bring them back to the local disks and pin them there\n"
    "                (the remote copy is kept)\n"
    "  status        bytes local and remote, moves, errors, the remote's health\n"
    "  run           one pass of the policy now\n"
    "\n"
    "PATHs are on a mounted volume. getfattr -n user.cairn.location FILE tells\n"
    "where a file's data is: local, remote, local+remote or mixed.\n";

const char kPinHelp[] =
    "usage: cairn pin PATH...\n"
    "       cairn unpin PATH...\n"
    "\n"
    "A pinned file never moves to the remote tier (the xattr user.cairn.pin;\n"
    "setfattr -n user.cairn.pin -v 1 FILE does the same). Directories: every\n"
    "file below.\n";

namespace {

// The cairn mount holding `path`, walking up from it.
std::optional<MountEntry> MountHolding(const std::string& path) {
  std::string at = AbsolutePath(path);
  for (;;) {
    if (std::optional<MountEntry> mount = FindCairnMount(at)) return mount;
    size_t slash = at.find_last_of('/');
    if (at == "/" || slash == std::string::npos) return std::nullopt;
    at = slash == 0 ? "/" : at.substr(0, slash);
  }
}

struct FileEntry {
  std::string path;
  ino_t ino;
  uint64_t size;
};
std::vector<FileEntry>* g_files = nullptr;

int Collect(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && S_ISREG(st->st_mode)) {
    g_files->push_back(FileEntry{path, st->st_ino, static_cast<uint64_t>(st->st_size)});
  }
  return 0;
}

absl::StatusOr<std::vector<FileEntry>> RegularFiles(const std::vector<std::string>& paths) {
  std::vector<FileEntry> files;
  g_files = &files;
  for (const std::string& path : paths) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": ", strerror(errno)));
    }
    if (nftw(path.c_str(), Collect, 32, FTW_PHYS | FTW_MOUNT) != 0) {
      return absl::InternalError(absl::StrCat("cannot walk ", path, ": ", strerror(errno)));
    }
  }
  g_files = nullptr;
  return files;
}

int MoveFiles(const std::string& direction, const Args& paths) {
  const std::string verb = "tier " + direction;
  if (paths.empty()) return UsageError("tier", direction + " needs at least one PATH");
  std::optional<MountEntry> mount = MountHolding(paths[0]);
  if (!mount) {
    return Fail(verb, paths[0] + " is not on a mounted cairn volume; mount it first");
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(mount->volume_dir);
  if (!config.ok()) return Fail(verb, config.status());
  for (const std::string& path : paths) {
    std::optional<MountEntry> other = MountHolding(path);
    if (!other || other->mountpoint != mount->mountpoint) {
      return Fail(verb, path + " is not on the same cairn mount as " + paths[0]);
    }
  }
  absl::StatusOr<std::vector<FileEntry>> files = RegularFiles(paths);
  if (!files.ok()) return Fail(verb, files.status());
  uint64_t total_bytes = 0, done_bytes = 0;
  for (const FileEntry& f : *files) total_bytes += f.size;
  Progress progress(verb, "files");
  size_t done = 0;
  absl::flat_hash_map<ino_t, const FileEntry*> by_ino;
  for (const FileEntry& f : *files) by_ino[f.ino] = &f;
  // A few hundred files a request: the daemon moves their blobs in
  // parallel and reports each file as it is done.
  constexpr size_t kFilesPerRequest = 256;
  for (size_t first = 0; first < files->size(); first += kFilesPerRequest) {
    std::string request = absl::StrCat("tier\t", direction);
    for (size_t i = first; i < std::min(files->size(), first + kFilesPerRequest); ++i) {
      absl::StrAppend(&request, "\t", (*files)[i].ino);
    }
    std::string error;
    absl::StatusOr<MountRecord> record = ReadMountRecord(mount->volume_dir);
    if (!record.ok()) return Fail(verb, record.status());
    ControlTarget target{mount->volume_dir, config->volume_id, record->pid};
    absl::Status sent = ControlRequest(target, request, [&](const std::string& line) {
      if (line.rfind("error ", 0) == 0) {
        error = line.substr(6);
        return;
      }
      std::optional<uint64_t> ino = StatNumber(line, "ino");
      if (line.rfind("progress ", 0) != 0 || !ino) return;
      auto it = by_ino.find(*ino);
      done++;
      done_bytes += it == by_ino.end() ? 0 : it->second->size;
      progress.Update(done, files->size(), done_bytes, total_bytes);
    });
    if (!sent.ok()) return Fail(verb, sent);
    if (!error.empty()) {
      progress.Clear();
      // "inode N: why" names the file by its path.
      uint64_t ino = 0;
      size_t colon = error.find(':');
      if (error.rfind("inode ", 0) == 0 && colon != std::string::npos &&
          absl::SimpleAtoi(error.substr(6, colon - 6), &ino) && by_ino.contains(ino)) {
        error = by_ino[ino]->path + error.substr(colon);
      }
      return Fail(verb, error);
    }
  }
  progress.Clear();
  printf("%s: %zu files (%s) %s\n", verb.c_str(), files->size(), Human(total_bytes).c_str(),
         direction == "out" ? "moved to the remote tier" : "back on the local disks, pinned");
  return kExitOk;
}

int Status(const Args& args) {
  bool json = false;
  std::string target;
  for (const std::string& arg : args) {
    if (arg == "--json") {
      json = true;
    } else if (target.empty()) {
      target = arg;
    } else {
      return UsageError("tier", "status wants one VOLUME_DIR or MOUNTPOINT");
    }
  }
  if (target.empty()) return UsageError("tier", "status needs a VOLUME_DIR or MOUNTPOINT");
  std::string volume_dir = AbsolutePath(target);
  if (std::optional<MountEntry> mount = FindCairnMount(volume_dir)) volume_dir = mount->volume_dir;
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return Fail("tier", config.status());
  if (!config->tier) {
    return Fail("tier", volume_dir + " has no remote tier; add a [tier] section to cairn.toml");
  }
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  std::string stats =
      record.ok() && record->mounted ? JsonObject(ReadDaemonStats(*config), "tier") : "";
  if (json) {
    printf("%s\n", stats.empty() ? "null" : stats.c_str());
    return kExitOk;
  }
  printf("remote:     %s, bucket %s, prefix %s%s/\n", config->tier->endpoint.c_str(),
         config->tier->bucket.c_str(), config->tier->prefix.c_str(), config->volume_id.c_str());
  printf("policy:     out after %lld s unused; watermarks %lld%% / %lld%%\n",
         static_cast<long long>(config->tier->cold_after_seconds),
         static_cast<long long>(config->tier->high_watermark_percent),
         static_cast<long long>(config->tier->low_watermark_percent));
  if (stats.empty()) {
    printf("state:      volume not mounted (the daemon keeps the figures)\n");
    return kExitOk;
  }
  printf("data:       %s local, %s in the remote tier only (at the last pass)\n",
         Human(StatNumber(stats, "local_bytes").value_or(0)).c_str(),
         Human(StatNumber(stats, "remote_bytes").value_or(0)).c_str());
  printf("moves:      %llu out (%s), %llu in (%s), %llu errors\n",
         static_cast<unsigned long long>(StatNumber(stats, "moved_out").value_or(0)),
         Human(StatNumber(stats, "moved_out_bytes").value_or(0)).c_str(),
         static_cast<unsigned long long>(StatNumber(stats, "moved_in").value_or(0)),
         Human(StatNumber(stats, "moved_in_bytes").value_or(0)).c_str(),
         static_cast<unsigned long long>(StatNumber(stats, "errors").value_or(0)));
  const double pass_seconds = StatDouble(stats, "last_pass_seconds").value_or(0);
  const uint64_t pass_bytes = StatNumber(stats, "last_pass_moved_bytes").value_or(0);
  printf("queue:      %llu cold blobs (%s) waiting to move out; the last pass moved %s%s\n",
         static_cast<unsigned long long>(StatNumber(stats, "waiting").value_or(0)),
         Human(StatNumber(stats, "waiting_bytes").value_or(0)).c_str(), Human(pass_bytes).c_str(),
         pass_bytes > 0 && pass_seconds > 0
             ? absl::StrCat(" at ", Human(static_cast<uint64_t>(pass_bytes / pass_seconds)), "/s")
                   .c_str()
             : "");
  printf("reads:      %llu from the remote (%s), %llu errors; %llu blocks served from the local "
         "cache (%s held)\n",
         static_cast<unsigned long long>(StatNumber(stats, "remote_reads").value_or(0)),
         Human(StatNumber(stats, "remote_read_bytes").value_or(0)).c_str(),
         static_cast<unsigned long long>(StatNumber(stats, "remote_read_errors").value_or(0)),
         static_cast<unsigned long long>(StatNumber(stats, "block_cache_hits").value_or(0)),
         Human(StatNumber(stats, "block_cache_bytes").value_or(0)).c_str());
  bool healthy = stats.find("\"remote_healthy\": true") != std::string::npos;
  std::string error = JsonText(stats, "last_error");
  printf("remote:     %s%s\n", healthy ? "healthy" : "FAILING: ", healthy ? "" : error.c_str());
  return kExitOk;
}

int Run(const Args& args) {
  if (args.size() != 1) return UsageError("tier", "run wants one VOLUME_DIR or MOUNTPOINT");
  const std::string volume_dir = VolumeDirOf(args[0]);
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return Fail("tier", config.status());
  absl::StatusOr<std::string> result = AskDaemon(volume_dir, config->volume_id, "tier\tpass");
  if (absl::IsUnavailable(result.status())) {
    return Fail("tier", "the volume must be mounted: " + std::string(result.status().message()));
  }
  if (!result.ok()) return Fail("tier", result.status());
  printf("tier run: moved %llu blobs (%s)\n",
         static_cast<unsigned long long>(StatNumber(*result, "moved").value_or(0)),
         Human(StatNumber(*result, "moved_bytes").value_or(0)).c_str());
  return kExitOk;
}

}  // namespace

int TierCommand(const Args& args) {
  if (args.empty()) return UsageError("tier", "missing subcommand (out, in, status, run)");
  Args rest(args.begin() + 1, args.end());
  if (args[0] == "out" || args[0] == "in") return MoveFiles(args[0], rest);
  if (args[0] == "status") return Status(rest);
  if (args[0] == "run") return Run(rest);
  return UsageError("tier", "unknown subcommand '" + args[0] + "'");
}

int PinCommand(const Args& args, bool pin) {
  const char* verb = pin ? "pin" : "unpin";
  if (args.empty()) return UsageError(verb, "needs at least one PATH");
  absl::StatusOr<std::vector<FileEntry>> files = RegularFiles(args);
  if (!files.ok()) return Fail(verb, files.status());
  for (const FileEntry& f : *files) {
    int rc = pin ? setxattr(f.path.c_str(), kPinXattr, "1", 1, 0)
                 : removexattr(f.path.c_str(), kPinXattr);
    if (rc != 0 && !(errno == ENODATA && !pin)) {
      return Fail(verb, f.path + ": " + strerror(errno));
    }
  }
  printf("%s: %zu files %s\n", verb, files->size(), pin ? "pinned" : "unpinned");
  return kExitOk;
}

}  // namespace cairn::cli

#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "backend/crc32c.h"
#include "backend/env.h"
#include "backend/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kFsckHelp[] =
    "usage: cairn fsck VOLUME_DIR\n"
    "\n"
    "Checks an unmounted volume: every namespace record against the others\n"
    "(directory entries, link counts, file sizes, extents, blob references,\n"
    "counters) and every blob a file references (present, readable, the\n"
    "length and CRC32C the namespace recorded). Prints each problem found.\n"
    "It repairs nothing; like a mount, it releases files that were deleted\n"
    "while still open when the volume was last used.\n"
    "\n"
    "Exit status (as fsck(8)): 0 no problems, 4 problems found,\n"
    "8 the check could not run (not a volume, mounted, unreadable),\n"
    "16 bad command line.\n";

namespace {

constexpr int kFsckClean = 0;
constexpr int kFsckProblems = 4;
constexpr int kFsckCannotRun = 8;
constexpr int kFsckUsage = 16;

int CannotRun(const std::string& message) {
  fprintf(stderr, "cairn: fsck: %s\n", message.c_str());
  return kFsckCannotRun;
}

}  // namespace

int FsckCommand(const Args& args) {
  std::string target;
  for (const std::string& arg : args) {
    if (!arg.empty() && arg[0] == '-') {
      UsageError("fsck", "unknown option '" + arg + "'");
      return kFsckUsage;
    }
    if (!target.empty()) {
      UsageError("fsck", "unexpected argument '" + arg + "'");
      return kFsckUsage;
    }
    target = arg;
  }
  if (target.empty()) {
    UsageError("fsck", "missing VOLUME_DIR");
    return kFsckUsage;
  }
  std::string volume_dir = AbsolutePath(target);
  if (std::optional<MountEntry> mount = FindCairnMount(volume_dir)) {
    return CannotRun(absl::StrCat(volume_dir, " is a mountpoint of ", mount->volume_dir,
                                  "; unmount it (cairn umount ", volume_dir,
                                  ") and run cairn fsck ", mount->volume_dir));
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return CannotRun(std::string(config.status().message()));
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, *config);
  if (!volume.ok()) return CannotRun(std::string(volume.status().message()));

  absl::StatusOr<NamespaceCheckReport> report = (*volume)->ns().Check();
  if (!report.ok()) return CannotRun(std::string(report.status().message()));
  std::vector<std::string> problems = report->problems;

  const bool tty = isatty(STDERR_FILENO);
  uint64_t checked = 0, blob_bytes = 0;
  for (const auto& [id, record] : report->blobs) {
    absl::StatusOr<std::string> data = (*volume)->blobs().Read(id, 0, record.length);
    if (!data.ok()) {
      problems.push_back(absl::StrCat("blob ", id, ": ", data.status().message()));
    } else if (Crc32c(*data) != record.crc32c) {
      problems.push_back(absl::StrCat(
          "blob ", id, " holds other data than the namespace recorded (CRC32C mismatch)"));
    }
    blob_bytes += record.length;
    if (tty && ++checked % 64 == 0) {
      fprintf(stderr, "\rchecking blobs: %llu of %zu", static_cast<unsigned long long>(checked),
              report->blobs.size());
    }
  }
  if (tty && checked >= 64) fprintf(stderr, "\r%60s\r", "");

  // Journal records waiting for the next mount are normal after a crash.
  uint64_t journal_segments = 0;
  absl::StatusOr<std::vector<std::string>> segments =
      Env::Default()->ListDir(config->cache_dir + "/journal");
  if (segments.ok()) {
    for (const std::string& name : *segments) {
      if (name.size() > 4 && name.substr(name.size() - 4) == ".jnl") journal_segments++;
    }
  }

  for (const std::string& problem : problems) printf("problem: %s\n", problem.c_str());
  printf("%s: %llu inodes (%llu directories, %llu files, %llu deleted while open), "
         "%llu extents, %zu blobs (%llu bytes) verified; %zu problems\n",
         volume_dir.c_str(), static_cast<unsigned long long>(report->inodes),
         static_cast<unsigned long long>(report->directories),
         static_cast<unsigned long long>(report->files),
         static_cast<unsigned long long>(report->orphans),
         static_cast<unsigned long long>(report->extents), report->blobs.size(),
         static_cast<unsigned long long>(blob_bytes), problems.size());
  if (journal_segments > 1) {
    printf("note: the writeback journal holds %llu segments; the next mount replays "
           "the writes they hold that the namespace has not committed\n",
           static_cast<unsigned long long>(journal_segments));
  }
  return problems.empty() ? kFsckClean : kFsckProblems;
}

}  // namespace cairn::cli

// cairn scrub and cairn disk replace: on a mounted volume the daemon does
// the work (asked over backend/control_channel.h); on an unmounted one this
// process opens the volume and does it itself.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "daemon/control_channel.h"
#include "backend/services/storage_maintenance.h"
#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "daemon/cli.h"
#include "daemon/stats_json.h"

namespace cairn::cli {

const char kScrubHelp[] =
    "usage: cairn scrub VOLUME_DIR|MOUNTPOINT [--remote] [--no-repair] [--json]\n"
    "\n"
    "Reads every shard of every blob of file data, verifies its checksums and\n"
    "that the shards decode to the data the namespace recorded, and rewrites\n"
    "shards that are missing, unreadable or corrupt from the good ones. On a\n"
    "mounted volume the daemon does it while the volume stays in use. A\n"
    "progress bar with rate and time left shows on a terminal; elsewhere (a\n"
    "log, a pipe) a progress line every 10 seconds.\n"
    "\n"
    "With --remote it checks the remote copies instead: every replica object\n"
    "and remote tier object of a blob in use is read back whole and verified\n"
    "against the checksum the namespace recorded, and one that is missing or\n"
    "damaged is rewritten from a good copy (the local disks, the replica or\n"
    "the tier). This reads (and pays for) every remote object once.\n"
    "\n"
    "The daemon also scrubs in the background (scrub_interval_seconds and\n"
    "scrub_bytes_per_second in cairn.toml; remote_scrub_interval_seconds and\n"
    "remote_scrub_bytes_per_second for the remote copies).\n"
    "\n"
    "options:\n"
    "  --remote     check the replica and remote tier objects, not the shards\n"
    "  --no-repair  only report; rewrite nothing\n"
    "  --json       print the report as one JSON object\n"
    "\n"
    "Exit status: 0 every blob is whole with full redundancy (after repairs),\n"
    "1 something could not be repaired (a lost blob, a disk still missing, a\n"
    "remote object with no good copy, a remote that did not answer) or the\n"
    "scrub could not run, 2 bad command line.\n";

const char kDiskHelp[] =
    "usage: cairn disk replace VOLUME_DIR OLD NEW [--force] [--json]\n"
    "\n"
    "Puts the empty directory NEW (a new drive's mount point) in place of the\n"
    "volume's disk OLD (its path as cairn.toml and cairn status show it, or\n"
    "its index), then rebuilds every shard that belonged on it from the other\n"
    "disks, with progress. On a mounted volume the daemon does it while the\n"
    "volume stays in use; an interrupted rebuild goes on at the next mount.\n"
    "NEW may be OLD's own path once a fresh drive is mounted there.\n"
    "\n"
    "options:\n"
    "  --force  use NEW even if it is not empty, erasing what is there\n"
    "  --json   print the rebuild report as one JSON object\n"
    "\n"
    "Exit status: 0 the disk is rebuilt, 1 it failed or blobs could not be\n"
    "rebuilt, 2 bad command line.\n";

namespace {

void PrintReport(const char* verb, const ScrubReport& r, bool json) {
  if (json) {
    printf("%s\n", ScrubReportJson(r).c_str());
    return;
  }
  // A rebuild expects every shard of the new disk to be missing: only
  // what it could not fix is worth a line.
  bool rebuild = std::string(verb) == "disk replace";
  if (!rebuild || !r.Healthy()) {
    for (const std::string& problem : r.problems) printf("problem: %s\n", problem.c_str());
  }
  printf("%s: %llu blobs (%s) checked in %.1f s: %llu bad shards, %llu repaired, "
         "%llu on unavailable disks, %llu blobs lost\n",
         verb, static_cast<unsigned long long>(r.blobs_checked), Human(r.bytes_read).c_str(),
         r.seconds, static_cast<unsigned long long>(r.shards_bad),
         static_cast<unsigned long long>(r.shards_repaired),
         static_cast<unsigned long long>(r.shards_unavailable),
         static_cast<unsigned long long>(r.blobs_lost));
}

// The daemon's final "done JSON" back into a report.
ScrubReport ParseReport(const std::string& json) {
  ScrubReport r;
  r.blobs_total = StatNumber(json, "blobs_total").value_or(0);
  r.blobs_checked = StatNumber(json, "blobs_checked").value_or(0);
  r.bytes_read = StatNumber(json, "bytes_read").value_or(0);
  r.shards_bad = StatNumber(json, "shards_bad").value_or(0);
  r.shards_repaired = StatNumber(json, "shards_repaired").value_or(0);
  r.shards_unavailable = StatNumber(json, "shards_unavailable").value_or(0);
  r.blobs_lost = StatNumber(json, "blobs_lost").value_or(0);
  size_t at = json.find("\"seconds\": ");
  if (at != std::string::npos) r.seconds = strtod(json.c_str() + at + 11, nullptr);
  r.finished = json.find("\"finished\": true") != std::string::npos;
  // Problems are shown as the daemon logged them; keep the JSON as is.
  size_t problems = json.find("\"problems\": [");
  if (problems != std::string::npos) {
    std::string list = json.substr(problems + 13);
    size_t pos = 0;
    while ((pos = list.find('"', pos)) != std::string::npos) {
      size_t end = pos + 1;
      std::string text;
      while (end < list.size() && list[end] != '"') {
        if (list[end] == '\\' && end + 1 < list.size()) ++end;
        text += list[end++];
      }
      r.problems.push_back(text);
      pos = end + 1;
    }
  }
  return r;
}

// Sends `request` to the daemon, showing its progress; the final report.
absl::StatusOr<ScrubReport> AskDaemonForReport(const std::string& volume_dir,
                                               const VolumeConfig& config,
                                               const std::string& request, const char* what) {
  Progress bar(what, "blobs");
  absl::StatusOr<std::string> done =
      AskDaemon(volume_dir, config.volume_id, request, [&](const std::string& json) {
        ScrubReport r = ParseReport(json);
        bar.Update(r.blobs_checked, r.blobs_total, r.bytes_read);
      });
  bar.Clear();
  if (!done.ok()) return done.status();
  return ParseReport(*done);
}

absl::StatusOr<ScrubReport> ScrubHere(Volume& volume, bool repair, const char* what) {
  Progress bar(what, "blobs");
  ScrubOptions options;
  options.repair = repair;
  options.progress = [&](const ScrubReport& r) {
    bar.Update(r.blobs_checked, r.blobs_total, r.bytes_read);
  };
  absl::StatusOr<ScrubReport> report = ScrubBlobs(volume.ns(), *volume.striped(), options);
  bar.Clear();
  return report;
}

RemoteScrubReport ParseRemoteReport(const std::string& json) {
  RemoteScrubReport r;
  r.objects_checked = StatNumber(json, "objects_checked").value_or(0);
  r.bytes_read = StatNumber(json, "bytes_read").value_or(0);
  r.replica_bad = StatNumber(json, "replica_bad").value_or(0);
  r.replica_repaired = StatNumber(json, "replica_repaired").value_or(0);
  r.tier_bad = StatNumber(json, "tier_bad").value_or(0);
  r.tier_repaired = StatNumber(json, "tier_repaired").value_or(0);
  r.lost = StatNumber(json, "lost").value_or(0);
  r.unreachable = StatNumber(json, "unreachable").value_or(0);
  r.seconds = StatDouble(json, "seconds").value_or(0);
  r.finished = json.find("\"finished\": true") != std::string::npos;
  r.problems = ParseReport(json).problems;
  return r;
}

void PrintRemoteReport(const RemoteScrubReport& r, bool json) {
  if (json) {
    printf("%s\n", RemoteScrubReportJson(r).c_str());
    return;
  }
  for (const std::string& problem : r.problems) printf("problem: %s\n", problem.c_str());
  printf("remote scrub: %llu objects (%s) checked in %.1f s: %llu bad replica objects "
         "(%llu repaired), %llu bad tier objects (%llu repaired), %llu lost%s\n",
         static_cast<unsigned long long>(r.objects_checked), Human(r.bytes_read).c_str(),
         r.seconds, static_cast<unsigned long long>(r.replica_bad),
         static_cast<unsigned long long>(r.replica_repaired),
         static_cast<unsigned long long>(r.tier_bad),
         static_cast<unsigned long long>(r.tier_repaired),
         static_cast<unsigned long long>(r.lost),
         r.unreachable > 0 ? "; stopped: the remote did not answer, run it again later" : "");
}

// cairn scrub --remote: by the daemon, or here on an unmounted volume.
int ScrubRemote(const std::string& volume_dir, const VolumeConfig& config, bool mounted,
                bool repair, bool json) {
  if (!config.replica.has_value() && !config.tier.has_value()) {
    return Fail("scrub", absl::FailedPreconditionError(
                             "this volume has no remote copies: neither a [replica] nor a "
                             "[tier] in cairn.toml"));
  }
  Progress bar("remote scrub", "objects");
  auto show = [&bar](const RemoteScrubReport& r) { bar.Update(r.objects_checked, 0, r.bytes_read); };
  absl::StatusOr<RemoteScrubReport> report;
  if (mounted) {
    absl::StatusOr<std::string> done =
        AskDaemon(volume_dir, config.volume_id, repair ? "scrub\tremote" : "scrub\tremote\tnorepair",
                  [&](const std::string& json) { show(ParseRemoteReport(json)); });
    if (done.ok()) {
      report = ParseRemoteReport(*done);
    } else {
      report = done.status();
    }
  } else {
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, config);
    if (!volume.ok()) return Fail("scrub", volume.status());
    VolumeServices::Options options;
    options.background = false;
    VolumeServices services(**volume, options);
    ScrubOptions scrub;
    scrub.repair = repair;
    report = services.remote_scrubber()->RunPass(scrub, show);
  }
  bar.Clear();
  if (!report.ok()) return Fail("scrub", report.status());
  PrintRemoteReport(*report, json);
  return report->Healthy() && report->finished ? kExitOk : kExitFailed;
}

absl::StatusOr<std::unique_ptr<Volume>> OpenStriped(const std::string& volume_dir,
                                                   const VolumeConfig& config) {
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, config);
  if (!volume.ok()) return volume.status();
  if ((*volume)->striped() == nullptr) {
    return absl::FailedPreconditionError(
        "this volume has format 1 (whole blob files in one directory, no shards); "
        "cairn fsck verifies its blobs");
  }
  return volume;
}

}  // namespace

int ScrubCommand(const Args& args) {
  bool json = false, repair = true, remote = false;
  std::string target;
  for (const std::string& arg : args) {
    if (arg == "--json") {
      json = true;
    } else if (arg == "--remote") {
      remote = true;
    } else if (arg == "--no-repair") {
      repair = false;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("scrub", "unknown option '" + arg + "'");
    } else if (target.empty()) {
      target = arg;
    } else {
      return UsageError("scrub", "unexpected argument '" + arg + "'");
    }
  }
  if (target.empty()) return UsageError("scrub", "missing VOLUME_DIR or MOUNTPOINT");
  std::string volume_dir = VolumeDirOf(target);
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return Fail("scrub", config.status());
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return Fail("scrub", record.status());
  if (remote) return ScrubRemote(volume_dir, *config, record->mounted, repair, json);
  absl::StatusOr<ScrubReport> report;
  if (record->mounted) {
    report = AskDaemonForReport(volume_dir, *config, repair ? "scrub" : "scrub\tnorepair", "scrub");
  } else {
    absl::StatusOr<std::unique_ptr<Volume>> volume = OpenStriped(volume_dir, *config);
    if (!volume.ok()) return Fail("scrub", volume.status());
    report = ScrubHere(**volume, repair, "scrub");
  }
  if (!report.ok()) return Fail("scrub", report.status());
  PrintReport("scrub", *report, json);
  return report->Healthy() ? kExitOk : kExitFailed;
}

int DiskCommand(const Args& args) {
  if (args.empty() || args[0] != "replace") {
    return UsageError("disk", args.empty() ? "missing subcommand (replace)"
                                           : "unknown subcommand '" + args[0] + "'");
  }
  bool json = false, force = false;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--force") {
      force = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("disk", "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 3) {
    return UsageError("disk", "replace wants VOLUME_DIR OLD NEW");
  }
  std::string volume_dir = VolumeDirOf(positional[0]);
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return Fail("disk", config.status());
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return Fail("disk", record.status());
  // Paths are resolved here: the daemon's working directory is not ours.
  std::string old_disk = positional[1];
  if (old_disk.find('/') != std::string::npos) old_disk = AbsolutePath(old_disk);
  std::string new_disk = AbsolutePath(positional[2]);
  absl::StatusOr<ScrubReport> report;
  if (record->mounted) {
    report = AskDaemonForReport(volume_dir, *config,
                       absl::StrCat("replace\t", old_disk, "\t", new_disk, "\t", force ? "1" : "0"),
                       "rebuild");
  } else {
    absl::StatusOr<std::unique_ptr<Volume>> volume = OpenStriped(volume_dir, *config);
    if (!volume.ok()) return Fail("disk", volume.status());
    absl::StatusOr<int> index = (*volume)->ReplaceDisk(old_disk, new_disk, force);
    if (!index.ok()) return Fail("disk", index.status());
    report = ScrubHere(**volume, true, "rebuild");
    if (report.ok() && report->finished) {
      (*volume)->ns().SetVolumeMeta(kRebuildPendingKey, "").IgnoreError();
    }
  }
  if (!report.ok()) return Fail("disk", report.status());
  PrintReport("disk replace", *report, json);
  return report->Healthy() ? kExitOk : kExitFailed;
}

}  // namespace cairn::cli

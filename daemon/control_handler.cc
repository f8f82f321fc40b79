#include "daemon/control_handler.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "backend/base/json.h"
#include "backend/services/replica_gc.h"
#include "backend/services/storage_maintenance.h"
#include "daemon/stats_json.h"

namespace cairn {

void HandleControlRequest(Volume& volume, VolumeServices& services, FileDataCache& cache,
                          const DaemonControls& controls, const std::string& request,
                          const std::function<void(const std::string&)>& reply,
                          const std::function<bool()>& stopping) {
  std::vector<std::string> words = absl::StrSplit(request, '\t');
  // s3 serve [LISTEN]: a read-only volume is served too (writes answer
  // with an error, as on its mount).
  if (words[0] == "s3") {
    if (words.size() < 2 || words.size() > 3 || words[1] != "serve" || !controls.serve_s3) {
      return reply("error bad s3 request");
    }
    absl::StatusOr<std::string> url = controls.serve_s3(words.size() == 3 ? words[2] : "");
    if (!url.ok()) return reply("error " + std::string(url.status().message()));
    return reply("done {\"url\": " + JsonString(*url) + "}");
  }
  if (volume.read_only()) {
    return reply(absl::StrCat("error ", volume.dir(), " is mounted read-only (-o ro), which "
                              "writes nothing: unmount it and mount it read-write for scrubs, "
                              "disk replacement, tier moves and backups"));
  }
  TieringService* tiering = services.tiering();
  BackupService* backups = services.backups();
  if (words[0] == "backup") {
    if (backups == nullptr) {
      return reply("error this volume has no replica: add a [replica] section to cairn.toml "
                   "(docs/CONFIG.md) and mount again");
    }
    if (words.size() == 2 && words[1] == "claim") {
      if (absl::Status s = volume.replica_owner()->Claim(); !s.ok()) {
        return reply("error " + std::string(s.message()));
      }
      return reply("done {}");
    }
    if (words.size() == 2 && words[1] == "gc") {
      absl::StatusOr<ReplicaGcReport> gc = backups->CollectNow();
      if (!gc.ok()) return reply("error " + std::string(gc.status().message()));
      return reply("done " + ReplicaGcJson(*gc));
    }
    if (words.size() != 1) return reply("error bad backup request");
    // What the write cache holds goes into the backup too.
    if (absl::Status s = cache.FlushAll(); !s.ok()) {
      return reply("error could not store the written data first: " + std::string(s.message()));
    }
    absl::StatusOr<BackupService::Result> result = backups->RunNow();
    if (!result.ok()) return reply("error " + std::string(result.status().message()));
    return reply("done " + BackupResultJson(*result));
  }
  if (words[0] == "tier") {
    if (tiering == nullptr) {
      return reply("error this volume has no remote tier: add a [tier] section to cairn.toml "
                   "(docs/CONFIG.md) and mount again");
    }
    // tier out|in INO...: progress {"ino": N} as each file is moved.
    if (words.size() >= 3 && (words[1] == "out" || words[1] == "in")) {
      std::vector<InodeId> inos;
      for (size_t i = 2; i < words.size(); ++i) {
        InodeId ino = 0;
        if (!absl::SimpleAtoi(words[i], &ino)) return reply("error bad tier request");
        // Data still in the write cache goes to the local disks first, so
        // what moves is the file as the user last wrote it.
        if (absl::Status s = cache.Flush(ino); !s.ok()) {
          return reply(absl::StrCat("error inode ", ino, ": ", s.message()));
        }
        inos.push_back(ino);
      }
      auto file_done = [&reply](InodeId ino) { reply(absl::StrCat("progress {\"ino\": ", ino, "}")); };
      absl::Status moved = words[1] == "out" ? tiering->MoveFilesOut(inos, file_done)
                                             : tiering->MoveFilesIn(inos, file_done);
      if (!moved.ok()) return reply("error " + std::string(moved.message()));
      return reply("done {}");
    }
    if (words.size() == 2 && words[1] == "pass") {
      absl::StatusOr<TieringService::PassReport> pass = tiering->RunPass();
      if (!pass.ok()) return reply("error " + std::string(pass.status().message()));
      return reply(absl::StrFormat("done {\"moved\": %d, \"moved_bytes\": %d}", pass->moved,
                                   pass->moved_bytes));
    }
    return reply("error bad tier request");
  }
  // scrub remote [norepair]: progress lines, then the report.
  if (words[0] == "scrub" && words.size() >= 2 && words[1] == "remote") {
    RemoteScrubber* scrubber = services.remote_scrubber();
    if (scrubber == nullptr) {
      return reply("error this volume has no remote copies: neither a [replica] nor a [tier] "
                   "in cairn.toml");
    }
    ScrubOptions options;
    options.should_stop = stopping;
    options.repair = !(words.size() > 2 && words[2] == "norepair");
    absl::StatusOr<RemoteScrubReport> report =
        scrubber->RunPass(options, [&reply](const RemoteScrubReport& progress) {
          if (!progress.finished) reply("progress " + RemoteScrubReportJson(progress));
        });
    if (!report.ok()) return reply("error " + std::string(report.status().message()));
    if (!report->finished && report->unreachable == 0) {
      return reply("error the daemon is shutting down; scrub again later");
    }
    return reply("done " + RemoteScrubReportJson(*report));
  }
  StorageMaintenance* maintenance = services.maintenance();
  if (maintenance == nullptr || volume.striped() == nullptr) {
    return reply("error this volume keeps its data in one directory (format 1): it has no "
                 "shards to scrub and no disks to replace");
  }
  StripedBlobStore& store = *volume.striped();
  ScrubOptions scrub;
  scrub.should_stop = stopping;
  const char* what = words[0] == "replace" ? "rebuild" : "scrub";
  scrub.progress = [&reply, maintenance, what](const ScrubReport& report) {
    maintenance->NoteManualProgress(what, report);
    if (!report.finished) reply("progress " + ScrubReportJson(report));
  };
  // However it ends, `cairn status` stops showing it as running.
  struct Done {
    StorageMaintenance& maintenance;
    const char* what;
    ~Done() {
      ScrubReport over;
      over.finished = true;
      maintenance.NoteManualProgress(what, over);
    }
  } done{*maintenance, what};
  if (words[0] == "scrub") {
    scrub.repair = !(words.size() > 1 && words[1] == "norepair");
    absl::StatusOr<ScrubReport> report =
        maintenance->RunExclusive([&] { return ScrubBlobs(volume.ns(), store, scrub); });
    if (!report.ok()) return reply("error " + std::string(report.status().message()));
    if (!report->finished) return reply("error the daemon is shutting down; scrub again later");
    return reply("done " + ScrubReportJson(*report));
  }
  if (words[0] == "replace" && words.size() == 4) {
    absl::StatusOr<ScrubReport> report = maintenance->RunExclusive(
        [&]() -> absl::StatusOr<ScrubReport> {
          absl::StatusOr<int> index = volume.ReplaceDisk(words[1], words[2], words[3] == "1");
          if (!index.ok()) return index.status();
          absl::StatusOr<ScrubReport> rebuilt = ScrubBlobs(volume.ns(), store, scrub);
          if (rebuilt.ok() && rebuilt->finished) {
            volume.ns().SetVolumeMeta(kRebuildPendingKey, "").IgnoreError();
          }
          return rebuilt;
        });
    if (!report.ok()) return reply("error " + std::string(report.status().message()));
    if (!report->finished) {
      return reply("error the daemon is shutting down; the rebuild goes on at the next mount");
    }
    return reply("done " + ScrubReportJson(*report));
  }
  reply("error unknown request '" + words[0] + "' (cairn and its daemon differ in version?)");
}

}  // namespace cairn

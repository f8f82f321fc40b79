#include <sys/statvfs.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "backend/base/clock.h"
#include "backend/services/storage_maintenance.h"
#include "backend/volume/volume.h"
#include "daemon/cli.h"
#include "backend/volume/shared_volume.h"
#include "daemon/stats_json.h"

namespace cairn::cli {

const char kStatusHelp[] =
    "usage: cairn status VOLUME_DIR|MOUNTPOINT [--json]\n"
    "\n"
    "Says whether the volume is mounted, where and by which daemon process\n"
    "(or served over S3 without a mount: cairn serve s3, \"s3_only\" in --json),\n"
    "where S3 is served, and how much the volume holds. While a daemon\n"
    "serves it, also the cache: written data\n"
    "not yet stored as blobs, the writeback journal's size, and the read\n"
    "cache's size and hit rate (\"cache\" in --json; null when unmounted).\n"
    "Files a journal replay found damaged are counted (cairn fsck names them),\n"
    "and with a replica or tier, what the last scrub of the remote copies\n"
    "found. On an unmounted volume it writes nothing, so it works on a full\n"
    "disk. On a shared volume, every host's session with the database: host,\n"
    "pid, mountpoint, last heartbeat, expired or not, bytes not yet stored\n"
    "(\"sessions\" in --json; null on a single-host volume).\n"
    "\n"
    "options:\n"
    "  --json   print one JSON object instead of text\n";

namespace {

// 42 -> "42 s", 7200 -> "2 h": how long ago, for a person.
std::string Ago(int64_t seconds) {
  if (seconds < 120) return absl::StrCat(seconds, " s");
  if (seconds < 7200) return absl::StrCat(seconds / 60, " min");
  if (seconds < 2 * 86400) return absl::StrCat(seconds / 3600, " h");
  return absl::StrCat(seconds / 86400, " d");
}


std::string LocalTime(uint64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(unix_seconds),
                          absl::LocalTimeZone());
}

// The background scrub of the replica and tier objects: what its last
// complete pass found, and the one under way.
void PrintRemoteScrub(const std::string& json) {
  uint64_t last = StatNumber(json, "last_finished").value_or(0);
  std::string done = JsonObject(json, "last_complete");
  std::string pass = JsonObject(json, "pass");
  auto n = [](const std::string& report, const char* key) {
    return static_cast<unsigned long long>(StatNumber(report, key).value_or(0));
  };
  if (last == 0 || done.find("\"finished\": true") == std::string::npos) {
    printf("remote scrub: no pass finished yet");
  } else {
    printf("remote scrub: last pass finished %s: %llu objects, %llu bad replica objects "
           "(%llu repaired), %llu bad tier objects (%llu repaired), %llu lost",
           LocalTime(last).c_str(), n(done, "objects_checked"), n(done, "replica_bad"),
           n(done, "replica_repaired"), n(done, "tier_bad"), n(done, "tier_repaired"),
           n(done, "lost"));
  }
  if (json.find("\"running\": true") != std::string::npos) {
    printf("; pass running: %llu objects checked, %llu bad, %llu repaired",
           n(pass, "objects_checked"), n(pass, "replica_bad") + n(pass, "tier_bad"),
           n(pass, "replica_repaired") + n(pass, "tier_repaired"));
    if (n(pass, "unreachable") > 0) printf(", waiting for the remote to answer");
  }
  if (json.find("\"overdue\": true") != std::string::npos) {
    printf("; OVERDUE: a pass takes longer than remote_scrub_interval_seconds, raise "
           "remote_scrub_bytes_per_second");
  }
  printf("\n");
}

// The disks, redundancy, repair queue and scrub of a striped volume.
void PrintStorage(const std::string& storage, bool mounted) {
  uint64_t queued = StatNumber(storage, "repair_queue").value_or(0);
  std::vector<std::string> disks;
  size_t list = storage.find("\"disks\": [");
  size_t end = storage.find("]", list);
  if (list != std::string::npos && end != std::string::npos) {
    std::string text = storage.substr(list + 10, end - list - 10);
    size_t pos = 0;
    while ((pos = text.find('{', pos)) != std::string::npos) {
      size_t close = text.find('}', pos);
      disks.push_back(text.substr(pos, close - pos + 1));
      pos = close;
    }
  }
  int down = 0;
  for (const std::string& d : disks) down += JsonText(d, "state") != "ok";
  printf("storage:    %s over %zu disk%s; %s; %llu of %llu blobs degraded, %llu queued for "
         "repair\n",
         JsonText(storage, "redundancy").c_str(), disks.size(), disks.size() == 1 ? "" : "s",
         down == 0 ? "all disks working"
                   : absl::StrFormat("DEGRADED: %d disk%s down", down, down == 1 ? "" : "s")
                         .c_str(),
         static_cast<unsigned long long>(StatNumber(storage, "degraded_blobs").value_or(0)),
         static_cast<unsigned long long>(StatNumber(storage, "blobs").value_or(0)),
         static_cast<unsigned long long>(queued));
  for (const std::string& d : disks) {
    std::string state = JsonText(d, "state");
    printf("disk %llu:     %s  %s", static_cast<unsigned long long>(StatNumber(d, "index").value_or(0)),
           JsonText(d, "path").c_str(), state.c_str());
    if (state == "ok") {
      printf(", %s in %llu shards, %s free of %s\n",
             Human(StatNumber(d, "used_bytes").value_or(0)).c_str(),
             static_cast<unsigned long long>(StatNumber(d, "shards").value_or(0)),
             Human(StatNumber(d, "free_bytes").value_or(0)).c_str(),
             Human(StatNumber(d, "capacity_bytes").value_or(0)).c_str());
    } else {
      printf(": %s\n", JsonText(d, "problem").c_str());
    }
  }
  std::string scrub = JsonObject(storage, "scrub");
  if (!scrub.empty()) {
    uint64_t last = StatNumber(scrub, "last_finished").value_or(0);
    std::string pass = JsonObject(scrub, "pass");
    bool running = scrub.find("\"running\": true") != std::string::npos;
    printf("scrub:      %s",
           last == 0 ? "never finished" : absl::StrCat("last finished ", LocalTime(last)).c_str());
    if (running) {
      printf("; background pass running: %llu of about %llu blobs checked",
             static_cast<unsigned long long>(StatNumber(pass, "blobs_checked").value_or(0)),
             static_cast<unsigned long long>(StatNumber(pass, "blobs_total").value_or(0)));
    }
    std::string manual = JsonObject(scrub, "manual");
    if (!manual.empty()) {
      printf("; %s running: %llu of about %llu blobs checked, %llu shards repaired",
             JsonText(manual, "what").c_str(),
             static_cast<unsigned long long>(StatNumber(manual, "blobs_checked").value_or(0)),
             static_cast<unsigned long long>(StatNumber(manual, "blobs_total").value_or(0)),
             static_cast<unsigned long long>(StatNumber(manual, "shards_repaired").value_or(0)));
    }
    printf("\n");
  }
  std::string tier = JsonObject(storage, "tier");
  if (!tier.empty()) {
    bool healthy = tier.find("\"remote_healthy\": true") != std::string::npos;
    printf("tier:       %s local, %s remote only; %llu moved out, %llu in; remote %s\n",
           Human(StatNumber(tier, "local_bytes").value_or(0)).c_str(),
           Human(StatNumber(tier, "remote_bytes").value_or(0)).c_str(),
           static_cast<unsigned long long>(StatNumber(tier, "moved_out").value_or(0)),
           static_cast<unsigned long long>(StatNumber(tier, "moved_in").value_or(0)),
           healthy ? "healthy" : ("FAILING: " + JsonText(tier, "last_error")).c_str());
  }
  std::string replica = JsonObject(storage, "replica");
  if (!replica.empty()) {
    bool healthy = replica.find("\"healthy\": true") != std::string::npos;
    bool all = replica.find("\"queue_counted_all\": true") != std::string::npos;
    printf("replica:    %s%llu blobs (%s) waiting, lag %llu s; %llu copied (%s); %s\n",
           all ? "" : "more than ",
           static_cast<unsigned long long>(StatNumber(replica, "queued_blobs").value_or(0)),
           Human(StatNumber(replica, "queued_bytes").value_or(0)).c_str(),
           static_cast<unsigned long long>(StatNumber(replica, "lag_seconds").value_or(0)),
           static_cast<unsigned long long>(StatNumber(replica, "copied").value_or(0)),
           Human(StatNumber(replica, "copied_bytes").value_or(0)).c_str(),
           healthy ? "healthy" : ("FAILING: " + JsonText(replica, "last_error")).c_str());
    // The namespace backups: the restore point a lost machine falls back to.
    std::string last_backup = JsonText(replica, "last_backup");
    uint64_t last_time = StatNumber(replica, "last_backup_time").value_or(0);
    uint64_t error_time = StatNumber(replica, "last_backup_error_time").value_or(0);
    int64_t age = Clock::Default()->NowSeconds() - static_cast<int64_t>(last_time);
    printf("backups:    %s; %llu kept%s\n",
           last_backup.empty()
               ? "none yet"
               : absl::StrFormat("last %s, %s ago (%s)", last_backup, Ago(std::max<int64_t>(age, 0)),
                                 Human(StatNumber(replica, "last_backup_bytes").value_or(0)))
                     .c_str(),
           static_cast<unsigned long long>(StatNumber(replica, "backups_kept").value_or(0)),
           error_time > last_time
               ? ("; LAST BACKUP FAILED: " + JsonText(replica, "last_backup_error")).c_str()
               : "");
  }
  std::string remote_scrub = JsonObject(storage, "remote_scrub");
  if (!remote_scrub.empty()) PrintRemoteScrub(remote_scrub);
  if (mounted) {
    printf("events:     %llu reads rebuilt, %llu checksum failures, %llu missing shards, "
           "%llu I/O errors, %llu degraded writes, %llu shards repaired (since mount)\n",
           static_cast<unsigned long long>(StatNumber(storage, "reconstructions").value_or(0)),
           static_cast<unsigned long long>(StatNumber(storage, "checksum_failures").value_or(0)),
           static_cast<unsigned long long>(StatNumber(storage, "missing_shards").value_or(0)),
           static_cast<unsigned long long>(StatNumber(storage, "io_errors").value_or(0)),
           static_cast<unsigned long long>(StatNumber(storage, "degraded_writes").value_or(0)),
           static_cast<unsigned long long>(StatNumber(storage, "shards_repaired").value_or(0)));
  }
}

}  // namespace

int StatusCommand(const Args& args) {
  bool json = false;
  std::string target;
  for (const std::string& arg : args) {
    if (arg == "--json") {
      json = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("status", "unknown option '" + arg + "'");
    } else if (target.empty()) {
      target = arg;
    } else {
      return UsageError("status", "unexpected argument '" + arg + "'");
    }
  }
  if (target.empty()) return UsageError("status", "missing VOLUME_DIR or MOUNTPOINT");
  std::string path = AbsolutePath(target);
  std::string volume_dir = path;
  if (std::optional<MountEntry> mount = FindCairnMount(path)) {
    volume_dir = mount->volume_dir;
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return Fail("status", config.status());
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return Fail("status", record.status());

  uint64_t files = 0, data_bytes = 0, used = 0, capacity = 0, free_bytes = 0;
  uint64_t damaged_files = 0;  // marked by a journal replay that lost their data
  std::string storage;  // JSON; empty for a format-1 volume
  if (record->mounted) {
    struct statvfs vfs;
    if (!record->mountpoint.empty() && statvfs(record->mountpoint.c_str(), &vfs) == 0) {
      capacity = uint64_t{vfs.f_blocks} * vfs.f_frsize;
      free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
      used = capacity - uint64_t{vfs.f_bfree} * vfs.f_frsize;
      files = vfs.f_files - vfs.f_ffree;
    }
  } else {
    // Looking changes nothing (and so works on a full disk).
    VolumeOpenOptions open;
    open.read_only = true;
    absl::StatusOr<std::unique_ptr<Volume>> volume =
        Volume::Open(volume_dir, *config, Io(), open);
    if (!volume.ok()) return Fail("status", volume.status());
    absl::StatusOr<NamespaceStats> stats = (*volume)->ns().Stats();
    absl::StatusOr<StoreUsage> usage = (*volume)->blobs().Usage();
    if (stats.ok()) {
      files = stats->inode_count;
      data_bytes = stats->data_bytes;
    }
    if (usage.ok()) {
      used = usage->used_bytes;
      capacity = usage->capacity_bytes;
      free_bytes = usage->free_bytes;
    }
    if (StripedBlobStore* striped = (*volume)->striped()) {
      storage = StorageJson(GetStorageStatus((*volume)->ns(), *striped), nullptr);
      absl::StatusOr<std::optional<std::string>> last =
          (*volume)->ns().GetVolumeMeta(kScrubFinishedKey);
      storage.pop_back();
      absl::StrAppend(&storage, ", \"scrub\": {\"running\": false, \"last_finished\": ",
                      last.ok() && last->has_value() ? **last : "0", "}");
      if (config->replica.has_value() || config->tier.has_value()) {
        RemoteScrubStatus remote = RecordedRemoteScrub((*volume)->ns());
        remote.interval_seconds = config->remote_scrub_interval_seconds;
        remote.bytes_per_second = config->remote_scrub_bytes_per_second;
        absl::StrAppend(&storage, ", \"remote_scrub\": ", RemoteScrubJson(remote));
      }
      storage += "}";
    }
    absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> damaged =
        (*volume)->ns().DamagedFiles();
    if (damaged.ok()) damaged_files = damaged->size();
  }

  // A shared volume: the daemons of every host that has it open, from the
  // database (which changes nothing by being asked).
  std::vector<KvStore::SessionInfo> sessions;
  std::string sessions_error;
  if (config->shared()) {
    NamespaceOptions ns_options;
    ns_options.read_only = true;
    absl::StatusOr<std::unique_ptr<NamespaceStore>> shared =
        OpenSharedNamespace(*config, ns_options, nullptr);
    absl::StatusOr<std::vector<KvStore::SessionInfo>> listed =
        shared.ok() ? (*shared)->ListSessions()
                    : absl::StatusOr<std::vector<KvStore::SessionInfo>>(shared.status());
    if (listed.ok()) {
      sessions = std::move(*listed);
    } else {
      sessions_error = std::string(listed.status().message());
    }
  }
  std::string sessions_json = "[";
  for (const KvStore::SessionInfo& session : sessions) {
    if (sessions_json.size() > 1) sessions_json += ", ";
    absl::StrAppend(&sessions_json, "{\"id\": ", session.id, ", \"host\": ",
                    JsonString(session.host), ", \"pid\": ", session.pid,
                    ", \"mountpoint\": ", JsonString(session.mountpoint),
                    ", \"heartbeat_unix_ms\": ", session.heartbeat_unix_ms,
                    ", \"expires_unix_ms\": ", session.expires_unix_ms,
                    ", \"journal_backlog\": ", session.journal_backlog,
                    ", \"alive\": ", session.alive ? "true" : "false", "}");
  }
  sessions_json += "]";

  std::string cache_stats = record->mounted ? ReadDaemonStats(*config) : "";
  if (record->mounted) {
    storage = JsonObject(cache_stats, "storage");
    damaged_files = StatNumber(cache_stats, "damaged_files").value_or(0);
  }
  // A daemon serving S3 without a mount (cairn serve s3) holds the volume
  // as a mount's daemon does.
  const bool s3_only = record->mounted && !record->s3_only_url.empty();
  const bool mounted = record->mounted && !s3_only;
  if (json) {
    printf("{\"volume\": %s, \"volume_id\": %s, \"format_version\": %d, "
           "\"mounted\": %s, \"s3_only\": %s, \"mountpoint\": %s, \"pid\": %d, "
           "\"files\": %llu, "
           "\"data_bytes\": %llu, \"used_bytes\": %llu, \"capacity_bytes\": %llu, "
           "\"free_bytes\": %llu, \"damaged_files\": %llu, \"storage\": %s, \"s3\": %s, "
           "\"cache\": %s, \"sessions\": %s}\n",
           JsonString(volume_dir).c_str(), JsonString(config->volume_id).c_str(),
           config->format_version, mounted ? "true" : "false", s3_only ? "true" : "false",
           mounted ? JsonString(record->mountpoint).c_str() : "null",
           record->mounted ? record->pid : 0,
           static_cast<unsigned long long>(files),
           static_cast<unsigned long long>(data_bytes),
           static_cast<unsigned long long>(used),
           static_cast<unsigned long long>(capacity),
           static_cast<unsigned long long>(free_bytes),
           static_cast<unsigned long long>(damaged_files),
           storage.empty() ? "null" : storage.c_str(),
           JsonObject(cache_stats, "s3").empty() ? "null" : JsonObject(cache_stats, "s3").c_str(),
           cache_stats.empty() ? "null" : cache_stats.c_str(),
           config->shared() && sessions_error.empty() ? sessions_json.c_str() : "null");
    return kExitOk;
  }
  printf("volume:     %s\n", volume_dir.c_str());
  printf("volume id:  %s (format %d)\n", config->volume_id.c_str(), config->format_version);
  if (config->shared()) {
    printf("shared:     namespace %s, data in s3://%s/%s%s/\n",
           UrlWithoutPassword(config->shared_namespace->url).c_str(),
           config->shared_blobs->bucket.c_str(), config->shared_blobs->prefix.c_str(),
           config->volume_id.c_str());
    if (!sessions_error.empty()) {
      printf("sessions:   cannot be listed: %s\n", sessions_error.c_str());
    } else if (sessions.empty()) {
      printf("sessions:   none (no host has it mounted)\n");
    }
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (const KvStore::SessionInfo& session : sessions) {
      printf("session %llu: %s pid %d at %s; heartbeat %s ago%s; %s not yet stored\n",
             static_cast<unsigned long long>(session.id), session.host.c_str(), session.pid,
             session.mountpoint.empty() ? "(S3 only)" : session.mountpoint.c_str(),
             Ago(std::max<int64_t>(0, (now_ms - session.heartbeat_unix_ms) / 1000)).c_str(),
             session.alive ? "" : ", EXPIRED", Human(session.journal_backlog).c_str());
    }
  }
  if (record->mounted) {
    if (s3_only) {
      printf("mounted:    no; served over S3 only by process %d (cairn serve s3; stop it with "
             "cairn umount %s)\n",
             record->pid, volume_dir.c_str());
    } else {
      printf("mounted:    yes, at %s by process %d\n", record->mountpoint.c_str(), record->pid);
      printf("usage:      %s used of %s, %s free; %llu files\n", Human(used).c_str(),
             Human(capacity).c_str(), Human(free_bytes).c_str(),
             static_cast<unsigned long long>(files));
    }
    if (!cache_stats.empty()) {
      uint64_t hits = StatNumber(cache_stats, "read_cache_hits").value_or(0);
      uint64_t misses = StatNumber(cache_stats, "read_cache_misses").value_or(0);
      printf("cache:      %s not yet stored; journal %s in %llu segments\n",
             Human(StatNumber(cache_stats, "dirty_bytes").value_or(0)).c_str(),
             Human(StatNumber(cache_stats, "journal_bytes").value_or(0)).c_str(),
             static_cast<unsigned long long>(
                 StatNumber(cache_stats, "journal_segments").value_or(0)));
      printf("read cache: %s, %llu hits, %llu misses (%s hit rate), %llu chunk reads\n",
             Human(StatNumber(cache_stats, "read_cache_bytes").value_or(0)).c_str(),
             static_cast<unsigned long long>(hits), static_cast<unsigned long long>(misses),
             hits + misses == 0
                 ? "no"
                 : absl::StrFormat("%.0f%%", 100.0 * hits / (hits + misses)).c_str(),
             static_cast<unsigned long long>(StatNumber(cache_stats, "ranged_reads").value_or(0)));
    }
  } else {
    printf("mounted:    no\n");
    if (config->shared()) {
      printf("usage:      %llu files, %s of file data, in the bucket (no fixed size)\n",
             static_cast<unsigned long long>(files), Human(data_bytes).c_str());
    } else {
      printf("usage:      %llu files, %s of file data, %s in blobs; room for %s more of %s\n",
             static_cast<unsigned long long>(files), Human(data_bytes).c_str(),
             Human(used).c_str(), Human(free_bytes).c_str(), Human(capacity).c_str());
    }
  }
  if (damaged_files > 0) {
    printf("DAMAGED:    %llu file%s lost data that was written before a crash (reads fail "
           "with EIO until rewritten or deleted); cairn fsck %s names them\n",
           static_cast<unsigned long long>(damaged_files), damaged_files == 1 ? "" : "s",
           volume_dir.c_str());
  }
  if (std::string s3 = JsonObject(cache_stats, "s3"); !s3.empty()) {
    std::string listen = JsonText(s3, "listen");
    auto number = [&](const char* key) {
      return static_cast<unsigned long long>(StatNumber(s3, key).value_or(0));
    };
    const bool tls = s3.find("\"tls\": true") != std::string::npos;
    // Failed handshakes are clients that cannot be served at all (plain
    // HTTP, a certificate they do not trust): worth a look when there are any.
    std::string failed_handshakes;
    if (number("tls_handshake_failures") > 0) {
      failed_handshakes = absl::StrFormat("; %llu failed TLS handshakes",
                                          number("tls_handshake_failures"));
    }
    printf("s3:         serving %s://%s: %llu requests (%llu client errors, %llu server "
           "errors), %llu connections open; %s in, %s out%s\n",
           tls ? "https" : "http", listen.c_str(), number("requests"), number("client_errors"),
           number("server_errors"), number("connections"),
           Human(StatNumber(s3, "bytes_received").value_or(0)).c_str(),
           Human(StatNumber(s3, "bytes_sent").value_or(0)).c_str(), failed_handshakes.c_str());
  }
  if (!storage.empty()) PrintStorage(storage, record->mounted);
  return kExitOk;
}

}  // namespace cairn::cli

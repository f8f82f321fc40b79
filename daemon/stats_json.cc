#include "daemon/stats_json.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backend/base/json.h"

namespace cairn {
namespace {

const char* Bool(bool value) { return value ? "true" : "false"; }

// `fields` ("\"a\": 1, \"b\": 2") wrapped in braces.
std::string Object(const std::string& fields) { return "{" + fields + "}"; }

}  // namespace

std::string ScrubReportJson(const ScrubReport& r) {
  std::vector<std::string> quoted;
  for (const std::string& p : r.problems) quoted.push_back(JsonString(p));
  return absl::StrFormat(
      "{\"blobs_total\": %d, \"blobs_checked\": %d, \"bytes_read\": %d, \"shards_bad\": %d, "
      "\"shards_repaired\": %d, \"shards_unavailable\": %d, \"blobs_lost\": %d, "
      "\"seconds\": %.3f, \"finished\": %s, \"healthy\": %s, \"problems\": [%s]}",
      r.blobs_total, r.blobs_checked, r.bytes_read, r.shards_bad, r.shards_repaired,
      r.shards_unavailable, r.blobs_lost, r.seconds, Bool(r.finished), Bool(r.Healthy()),
      absl::StrJoin(quoted, ", "));
}

std::string RemoteScrubReportJson(const RemoteScrubReport& r) {
  std::vector<std::string> quoted;
  for (const std::string& p : r.problems) quoted.push_back(JsonString(p));
  return absl::StrFormat(
      "{\"objects_checked\": %d, \"bytes_read\": %d, \"replica_bad\": %d, "
      "\"replica_repaired\": %d, \"tier_bad\": %d, \"tier_repaired\": %d, \"lost\": %d, "
      "\"unreachable\": %d, \"seconds\": %.3f, \"finished\": %s, \"healthy\": %s, "
      "\"problems\": [%s]}",
      r.objects_checked, r.bytes_read, r.replica_bad, r.replica_repaired, r.tier_bad,
      r.tier_repaired, r.lost, r.unreachable, r.seconds, Bool(r.finished), Bool(r.Healthy()),
      absl::StrJoin(quoted, ", "));
}

std::string RemoteScrubJson(const RemoteScrubStatus& s) {
  return absl::StrFormat(
      "{\"interval_seconds\": %d, \"bytes_per_second\": %d, \"running\": %s, "
      "\"last_started\": %d, \"last_finished\": %d, \"overdue\": %s, \"pass\": %s, "
      "\"last_complete\": %s}",
      s.interval_seconds, s.bytes_per_second, Bool(s.running), s.last_started, s.last_finished,
      Bool(s.overdue), RemoteScrubReportJson(s.pass), RemoteScrubReportJson(s.last_complete));
}

std::string StorageJson(const StorageStatus& s, const ScrubStatus* scrub) {
  std::vector<std::string> disks;
  for (const DiskInfo& d : s.disks) {
    disks.push_back(absl::StrFormat(
        "{\"index\": %d, \"path\": %s, \"state\": \"%s\", \"problem\": %s, "
        "\"used_bytes\": %d, \"free_bytes\": %d, \"capacity_bytes\": %d, \"shards\": %d}",
        d.index, JsonString(d.path), DiskStateName(d.state), JsonString(d.problem), d.used_bytes,
        d.free_bytes, d.capacity_bytes, d.shard_count));
  }
  const StripedStoreCounters& c = s.counters;
  std::string fields = absl::StrFormat(
      "\"redundancy\": \"%s\", \"disks\": [%s], \"blobs\": %d, \"degraded_blobs\": %d, "
      "\"repair_queue\": %d, "
      "\"degraded_writes\": %d, \"reconstructions\": %d, \"checksum_failures\": %d, "
      "\"missing_shards\": %d, \"io_errors\": %d, \"shards_repaired\": %d, "
      "\"shards_written\": %d, \"bytes_written\": %d, \"compressed_blobs\": %d",
      s.redundancy.ToString(), absl::StrJoin(disks, ", "), s.redundancy_counts.blobs,
      s.redundancy_counts.degraded, s.redundancy_counts.repair_queue, c.degraded_writes,
      c.reconstructions, c.checksum_failures, c.missing_shards, c.io_errors, c.shards_repaired,
      c.shards_written, c.bytes_written, c.compressed_blobs);
  if (scrub != nullptr) {
    std::string manual =
        scrub->manual_what.empty()
            ? "null"
            : absl::StrFormat("{\"what\": %s, \"progress\": %s}", JsonString(scrub->manual_what),
                              ScrubReportJson(scrub->manual));
    absl::StrAppendFormat(
        &fields,
        ", \"scrub\": {\"interval_seconds\": %d, \"bytes_per_second\": %d, \"running\": %s, "
        "\"last_finished\": %d, \"pass\": %s, \"manual\": %s}",
        scrub->interval_seconds, scrub->bytes_per_second, Bool(scrub->running),
        scrub->last_finished, ScrubReportJson(scrub->pass), manual);
  }
  return Object(fields);
}

std::string TierJson(const TieringService::Status& t, const TieredBlobStore::Stats* reads) {
  const TieringService::PassReport& last = t.last_pass;
  std::string fields = absl::StrFormat(
      "\"endpoint\": %s, \"bucket\": %s, \"local_bytes\": %d, \"remote_bytes\": %d, "
      "\"candidates\": %d, \"waiting\": %d, \"waiting_bytes\": %d, "
      "\"last_pass_moved_bytes\": %d, \"moved_out\": %d, \"moved_out_bytes\": %d, "
      "\"moved_in\": %d, \"moved_in_bytes\": %d, \"errors\": %d, \"last_pass\": %d, "
      "\"last_pass_seconds\": %.3f, \"last_error\": %s, \"last_error_time\": %d, "
      "\"remote_healthy\": %s",
      JsonString(t.endpoint), JsonString(t.bucket), last.local_bytes, last.remote_bytes,
      last.candidates, last.waiting, last.waiting_bytes, last.moved_bytes, t.moves.moved_out,
      t.moves.moved_out_bytes, t.moves.moved_in, t.moves.moved_in_bytes, t.moves.errors,
      t.last_pass_time, last.seconds, JsonString(t.last_error), t.last_error_time,
      Bool(t.remote_healthy));
  if (reads != nullptr) {
    absl::StrAppendFormat(
        &fields,
        ", \"remote_reads\": %d, \"remote_read_bytes\": %d, \"remote_read_errors\": %d, "
        "\"local_fallbacks\": %d, \"block_cache_hits\": %d, \"block_cache_bytes\": %d",
        reads->remote_reads, reads->remote_read_bytes, reads->remote_read_errors,
        reads->local_fallbacks, reads->cache_hits, reads->cache_bytes);
  }
  return Object(fields);
}

std::string ReplicaJson(const Replicator::Status& r, const BackupService::Status* backups) {
  std::string fields = absl::StrFormat(
      "\"queued_blobs\": %d, \"queued_bytes\": %d, \"queue_counted_all\": %s, "
      "\"lag_seconds\": %d, \"copied\": %d, \"copied_bytes\": %d, \"errors\": %d, "
      "\"last_error\": %s, \"last_error_time\": %d, \"last_empty_time\": %d, "
      "\"healthy\": %s",
      r.backlog.blobs, r.backlog.bytes, Bool(r.backlog.counted_all), r.lag_seconds,
      r.totals.copied, r.totals.copied_bytes, r.totals.errors, JsonString(r.last_error),
      r.last_error_time, r.last_empty_time, Bool(r.healthy));
  if (backups != nullptr) {
    absl::StrAppendFormat(
        &fields,
        ", \"last_backup\": %s, \"last_backup_time\": %d, \"last_backup_bytes\": %d, "
        "\"backups_kept\": %d, \"backup_errors\": %d, \"last_backup_error\": %s, "
        "\"last_backup_error_time\": %d, \"gc_deleted_objects\": %d",
        JsonString(backups->last_id), backups->last_time, backups->last_stored_bytes,
        backups->kept, backups->errors, JsonString(backups->last_error),
        backups->last_error_time, backups->gc_deleted);
  }
  return Object(fields);
}

std::string ReplicaGcJson(const ReplicaGcReport& r) {
  return absl::StrFormat(
      "{\"backups_deleted\": %d, \"backups_kept\": %d, \"objects_listed\": %d, "
      "\"objects_deleted\": %d}",
      r.backups_deleted, r.backups_kept, r.objects_listed, r.objects_deleted);
}

std::string BackupManifestJson(const BackupManifest& m) {
  return absl::StrFormat(
      "{\"backup_id\": %s, \"volume_id\": %s, \"created\": %d, \"inodes\": %d, "
      "\"data_bytes\": %d, \"blobs\": %d, \"blob_bytes\": %d, \"stored_bytes\": %d}",
      JsonString(m.backup_id), JsonString(m.volume_id), m.created_sec, m.inodes, m.data_bytes,
      m.blob_count, m.blob_bytes, m.StoredBytes());
}

std::string BackupResultJson(const BackupService::Result& result) {
  return absl::StrFormat("{\"backup\": %s, \"gc\": %s, \"gc_error\": %s}",
                         BackupManifestJson(result.manifest), ReplicaGcJson(result.gc),
                         JsonString(result.gc_error));
}

std::string DaemonStatsJson(const DaemonStats& d) {
  const FileDataCache::Stats& s = d.cache;
  std::string json = absl::StrCat(
      "{\"updated\": ", d.updated, ", \"dirty_bytes\": ", s.dirty_bytes,
      ", \"journal_bytes\": ", s.journal_bytes, ", \"journal_segments\": ", s.journal_segments,
      ", \"read_cache_bytes\": ", s.read_cache_bytes,
      ", \"read_cache_hits\": ", s.read_cache_hits,
      ", \"read_cache_misses\": ", s.read_cache_misses, ", \"ranged_reads\": ", s.ranged_reads,
      ", \"readahead_prefetched\": ", s.readahead_prefetched,
      ", \"blobs_written\": ", s.blobs_written,
      ", \"blobs_collected\": ", d.collector.blobs_collected,
      ", \"blobs_compacted\": ", d.collector.blobs_compacted,
      ", \"write_through\": ", s.write_through,
      ", \"large_write_bytes\": ", s.large_write_bytes,
      ", \"large_write_journaled_bytes\": ", s.large_write_journaled_bytes,
      ", \"streamed_bytes\": ", s.streamed_bytes,
      ", \"damaged_files\": ", d.damaged_files);
  // "storage" holds the striped store's figures and, with a tier or a
  // replica, theirs: status reads them from there.
  std::vector<std::string> storage;
  if (d.storage != nullptr) {
    std::string striped = StorageJson(*d.storage, d.scrub);
    storage.push_back(striped.substr(1, striped.size() - 2));
  }
  if (d.tier != nullptr) storage.push_back("\"tier\": " + TierJson(*d.tier, d.tier_reads));
  if (d.replica != nullptr) {
    storage.push_back("\"replica\": " + ReplicaJson(*d.replica, d.backups));
  }
  if (d.remote_scrub != nullptr) {
    storage.push_back("\"remote_scrub\": " + RemoteScrubJson(*d.remote_scrub));
  }
  if (!storage.empty()) absl::StrAppend(&json, ", \"storage\": {", absl::StrJoin(storage, ", "), "}");
  if (d.s3 != nullptr) {
    absl::StrAppend(&json, ", \"s3\": {\"listen\": ", JsonString(d.s3_address),
                    ", \"tls\": ", d.s3->tls ? "true" : "false",
                    ", \"requests\": ", d.s3->requests,
                    ", \"client_errors\": ", d.s3->client_errors,
                    ", \"server_errors\": ", d.s3->server_errors,
                    ", \"connections\": ", d.s3->connections,
                    ", \"bytes_received\": ", d.s3->bytes_received,
                    ", \"bytes_sent\": ", d.s3->bytes_sent,
                    ", \"tls_handshake_failures\": ", d.s3->tls_handshake_failures, "}");
  }
  return json + "}\n";
}

}  // namespace cairn

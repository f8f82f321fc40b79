#include "daemon/volume_metrics.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/metrics_text.h"

namespace cairn {
namespace {

void AppendFuseMetricsTo(const FuseMetrics& metrics, MetricsText* out) {
  auto each_used_op = [&](auto fn) {
    for (size_t i = 0; i < kFuseOpCount; ++i) {
      const FuseOpCounters& c = metrics.ops[i];
      if (c.requests.load(std::memory_order_relaxed) == 0) continue;
      fn(FuseOpName(static_cast<FuseOp>(i)), c);
    }
  };
  out->Family("cairn_fuse_requests_total", MetricType::kCounter,
              "FUSE requests served, by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    out->Value("cairn_fuse_requests_total", c.requests.load(std::memory_order_relaxed),
               {{"op", op}});
  });
  out->Family("cairn_fuse_errors_total", MetricType::kCounter,
              "FUSE requests answered with an error (errno), by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    out->Value("cairn_fuse_errors_total", c.errors.load(std::memory_order_relaxed),
               {{"op", op}});
  });
  out->Family("cairn_fuse_request_duration_seconds", MetricType::kHistogram,
              "Time from a FUSE request reaching its handler to the reply, by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    LatencyHistogram::Snapshot s = c.latency.Read();
    out->Histogram("cairn_fuse_request_duration_seconds", kLatencyBucketSeconds, s.counts,
                   s.sum_seconds, {{"op", op}});
  });
  out->Family("cairn_read_bytes_total", MetricType::kCounter,
              "Bytes returned by FUSE read requests.");
  out->Value("cairn_read_bytes_total", metrics.read_bytes.load(std::memory_order_relaxed));
  out->Family("cairn_written_bytes_total", MetricType::kCounter,
              "Bytes accepted by FUSE write requests.");
  out->Value("cairn_written_bytes_total",
             metrics.written_bytes.load(std::memory_order_relaxed));
}


void Counter(MetricsText* out, std::string_view name, uint64_t value, std::string_view help) {
  out->Family(name, MetricType::kCounter, help);
  out->Value(name, value);
}

void Gauge(MetricsText* out, std::string_view name, double value, std::string_view help) {
  out->Family(name, MetricType::kGauge, help);
  out->Value(name, value);
}

void AppendCache(FileDataCache& cache, const BlobCollector* collector, MetricsText* out) {
  FileDataCache::Stats s = cache.GetStats();
  BlobCollector::Stats gc = collector != nullptr ? collector->GetStats() : BlobCollector::Stats();
  Gauge(out, "cairn_cache_dirty_bytes", s.dirty_bytes,
        "Written data held in memory, not yet stored as blobs.");
  Gauge(out, "cairn_cache_journal_bytes", s.journal_bytes,
        "Bytes in the writeback journal (cache_dir/journal).");
  Gauge(out, "cairn_cache_journal_segments", s.journal_segments,
        "Segments of the writeback journal; each waits for its data to be stored.");
  Gauge(out, "cairn_cache_read_cache_bytes", s.read_cache_bytes,
        "Memory held by the read cache of verified blob contents.");
  Counter(out, "cairn_cache_read_hits_total", s.read_cache_hits,
          "Reads served from the read cache.");
  Counter(out, "cairn_cache_read_misses_total", s.read_cache_misses,
          "Reads that had to load blob data from the store.");
  Counter(out, "cairn_cache_ranged_reads_total", s.ranged_reads,
          "Random reads served without loading a whole blob.");
  Counter(out, "cairn_cache_readahead_sequential_reads_total", s.readahead_sequential_reads,
          "Reads the readahead recognised as sequential.");
  Counter(out, "cairn_cache_readahead_prefetched_blobs_total", s.readahead_prefetched,
          "Blobs loaded ahead of a sequential reader.");
  Counter(out, "cairn_cache_blobs_written_total", s.blobs_written,
          "Blobs stored from written data.");
  Counter(out, "cairn_cache_blobs_collected_total", gc.blobs_collected,
          "Unreferenced blobs deleted after gc_grace_seconds.");
  Counter(out, "cairn_cache_blobs_compacted_total", gc.blobs_compacted,
          "Blobs rewritten to drop data no file uses any more.");
  Counter(out, "cairn_cache_write_through_total", s.write_through,
          "Writes the journal could not take, stored directly before returning.");
  Counter(out, "cairn_cache_large_write_bytes_total", s.large_write_bytes,
          "Bytes of large WRITEs that waited for their blob instead of the journal.");
  Counter(out, "cairn_cache_large_write_journaled_bytes_total", s.large_write_journaled_bytes,
          "Of those, bytes journaled after all because the file's writes paused.");
  Counter(out, "cairn_cache_streamed_bytes_total", s.streamed_bytes,
          "Bytes of S3 bodies stored straight into blobs, without the journal.");
}

void AppendSharedSweep(const SharedBlobSweeper& sweeper, MetricsText* out) {
  SharedBlobSweeper::Stats stats = sweeper.GetStats();
  Counter(out, "cairn_shared_sweeps_total", stats.sweeps,
          "Complete sweeps of the shared volume's bucket by this daemon as leader.");
  Counter(out, "cairn_shared_sweep_deleted_objects_total", stats.objects_deleted,
          "Objects no blob record claimed, an hour old, deleted from the bucket.");
}

void AppendNamespace(NamespaceStore& ns, MetricsText* out) {
  absl::StatusOr<NamespaceStats> stats = ns.Stats();
  if (!stats.ok()) return;
  Gauge(out, "cairn_namespace_inodes", stats->inode_count,
        "Inodes in the namespace (files not yet released after unlink included).");
  Counter(out, "cairn_namespace_commits_total", stats->log_writes,
          "Batches written to the namespace's log: one per metadata change or data commit.");
  Counter(out, "cairn_namespace_log_syncs_total", stats->log_syncs,
          "Syncs of the namespace's log to disk (fsync, or a commit that must be durable).");
}

void AppendStorage(NamespaceStore& ns, StripedBlobStore& store, MetricsText* out) {
  std::vector<DiskInfo> disks = store.Disks();
  struct DiskFamily {
    const char* name;
    const char* help;
    double (*value)(const DiskInfo&);
  };
  static const DiskFamily kDiskFamilies[] = {
      {"cairn_storage_disk_up", "1 if the disk is in use, 0 if missing or failed.",
       [](const DiskInfo& d) { return d.state == DiskState::kOk ? 1.0 : 0.0; }},
      {"cairn_storage_disk_used_bytes", "Bytes of cairn's shard files on the disk.",
       [](const DiskInfo& d) { return static_cast<double>(d.used_bytes); }},
      {"cairn_storage_disk_free_bytes", "Free bytes of the filesystem holding the disk.",
       [](const DiskInfo& d) { return static_cast<double>(d.free_bytes); }},
      {"cairn_storage_disk_capacity_bytes", "Size of the filesystem holding the disk.",
       [](const DiskInfo& d) { return static_cast<double>(d.capacity_bytes); }},
      {"cairn_storage_disk_shards", "Shard files on the disk.",
       [](const DiskInfo& d) { return static_cast<double>(d.shard_count); }},
  };
  for (const DiskFamily& family : kDiskFamilies) {
    out->Family(family.name, MetricType::kGauge, family.help);
    for (const DiskInfo& d : disks) {
      std::string index = std::to_string(d.index);
      out->Value(family.name, family.value(d), {{"disk", index}, {"path", d.path}});
    }
  }
  RedundancyCounts redundancy = CountRedundancy(ns, store);
  Gauge(out, "cairn_storage_blobs", redundancy.blobs, "Blobs in the striped store.");
  Gauge(out, "cairn_storage_degraded_blobs", redundancy.degraded,
        "Blobs without full redundancy (a shard on a down disk, or queued for repair).");
  Gauge(out, "cairn_storage_repair_queue_blobs", redundancy.repair_queue,
        "Blobs queued for repair (background queue).");
  StripedStoreCounters c = store.Counters();
  Counter(out, "cairn_storage_shards_written_total", c.shards_written, "Shard files written.");
  Counter(out, "cairn_storage_shard_written_bytes_total", c.bytes_written,
          "Bytes of shard files written, headers included.");
  Counter(out, "cairn_storage_degraded_writes_total", c.degraded_writes,
          "Blobs stored without every shard (a disk was down).");
  Counter(out, "cairn_storage_degraded_reads_total", c.reconstructions,
          "Reads that had to rebuild a shard from the others.");
  Counter(out, "cairn_storage_checksum_failures_total", c.checksum_failures,
          "Shards whose data did not match its checksum.");
  Counter(out, "cairn_storage_missing_shards_total", c.missing_shards,
          "Shards found absent on a working disk.");
  Counter(out, "cairn_storage_io_errors_total", c.io_errors, "Shard reads or writes that failed.");
  Counter(out, "cairn_storage_shards_repaired_total", c.shards_repaired,
          "Shards rewritten by repair, scrub or rebuild.");
  Counter(out, "cairn_storage_compressed_blobs_total", c.compressed_blobs,
          "Blobs stored compressed.");
}

void AppendScrub(StorageMaintenance& maintenance, MetricsText* out) {
  ScrubStatus scrub = maintenance.GetScrubStatus();
  Gauge(out, "cairn_scrub_running", scrub.running ? 1 : 0,
        "1 while a background scrub pass is under way.");
  Gauge(out, "cairn_scrub_last_finished_timestamp_seconds", scrub.last_finished,
        "Unix time the last complete background scrub pass ended (0: never).");
  Gauge(out, "cairn_scrub_pass_blobs", scrub.pass.blobs_total,
        "Blobs the current (or last) background scrub pass expects to check.");
  Gauge(out, "cairn_scrub_pass_checked_blobs", scrub.pass.blobs_checked,
        "Blobs checked so far by the current (or last) background scrub pass.");
  Gauge(out, "cairn_scrub_pass_read_bytes", scrub.pass.bytes_read,
        "Bytes read so far by the current (or last) background scrub pass.");
  Gauge(out, "cairn_scrub_pass_bad_shards", scrub.pass.shards_bad,
        "Bad shards found by the current (or last) background scrub pass.");
}

void AppendRemoteScrub(RemoteScrubber& scrubber, MetricsText* out) {
  RemoteScrubStatus status = scrubber.GetStatus();
  const RemoteScrubReport& done = status.last_complete;
  Gauge(out, "cairn_remote_scrub_running", status.running ? 1 : 0,
        "1 while a background pass over the remote copies is under way.");
  Gauge(out, "cairn_remote_scrub_overdue", status.overdue ? 1 : 0,
        "1 while a remote scrub pass has run longer than its interval.");
  Gauge(out, "cairn_remote_scrub_last_finished_timestamp_seconds", status.last_finished,
        "Unix time the last complete pass over the remote copies ended (0: never).");
  Gauge(out, "cairn_remote_scrub_checked_objects", done.objects_checked,
        "Remote objects the last complete pass checked.");
  Gauge(out, "cairn_remote_scrub_bad_replica_objects", done.replica_bad,
        "Missing or damaged replica objects the last complete pass found.");
  Gauge(out, "cairn_remote_scrub_repaired_replica_objects", done.replica_repaired,
        "Of those, rewritten from a good copy.");
  Gauge(out, "cairn_remote_scrub_bad_tier_objects", done.tier_bad,
        "Missing or damaged remote tier objects the last complete pass found.");
  Gauge(out, "cairn_remote_scrub_repaired_tier_objects", done.tier_repaired,
        "Of those, rewritten from a good copy.");
  Gauge(out, "cairn_remote_scrub_lost_objects", done.lost,
        "Bad remote objects the last complete pass found no good copy for.");
  Gauge(out, "cairn_remote_scrub_pass_checked_objects", status.pass.objects_checked,
        "Remote objects checked so far by the current (or last) pass.");
  Gauge(out, "cairn_remote_scrub_pass_bad_objects",
        status.pass.replica_bad + status.pass.tier_bad,
        "Bad remote objects found so far by the current (or last) pass.");
}

// Reads of remote blobs (`remote`_reads_total, ...) and the local block
// cache in front of them (`cache`_hits_total, ...), as a remote tier and a
// shared volume's bucket both count them; `where` names the remote in the
// help texts.
struct RemoteReads {
  uint64_t reads, bytes, errors, cache_hits, cache_bytes, cache_skipped;
};
void AppendRemoteReads(MetricsText* out, absl::string_view remote, absl::string_view cache,
                       absl::string_view where, const RemoteReads& r) {
  Counter(out, absl::StrCat(remote, "_reads_total"), r.reads,
          absl::StrCat("Reads of data from ", where, "."));
  Counter(out, absl::StrCat(remote, "_read_bytes_total"), r.bytes,
          absl::StrCat("Bytes read from ", where, "."));
  Counter(out, absl::StrCat(remote, "_read_errors_total"), r.errors,
          absl::StrCat("Reads from ", where, " that failed."));
  Counter(out, absl::StrCat(cache, "_hits_total"), r.cache_hits,
          absl::StrCat("Blocks of ", where, " served from the local block cache."));
  Gauge(out, absl::StrCat(cache, "_bytes"), r.cache_bytes,
        absl::StrCat("Bytes held by the local block cache of ", where, "."));
  Counter(out, absl::StrCat(cache, "_skipped_total"), r.cache_skipped,
          absl::StrCat("Blocks of ", where, " left out of the local block cache: its write "
                       "queue was full, or caching them would have left less than a tenth "
                       "of its filesystem free."));
}

void AppendTier(const VolumeMetricsSources& s, MetricsText* out) {
  if (s.tiered != nullptr) {
    TieredBlobStore::Stats t = s.tiered->GetStats();
    AppendRemoteReads(out, "cairn_tier_remote", "cairn_tier_block_cache", "the remote tier",
                      {t.remote_reads, t.remote_read_bytes, t.remote_read_errors, t.cache_hits,
                       t.cache_bytes, t.cache_skipped});
    Counter(out, "cairn_tier_local_fallbacks_total", t.local_fallbacks,
            "Reads the remote served because the local copy failed.");
  }
  if (s.shared_blobs != nullptr) {
    SharedBlobStore::Stats b = s.shared_blobs->GetStats();
    AppendRemoteReads(out, "cairn_shared_bucket", "cairn_shared_block_cache",
                      "a shared volume's bucket",
                      {b.remote_reads, b.remote_read_bytes, b.remote_read_errors, b.cache_hits,
                       b.cache_bytes, b.cache_skipped});
  }
  if (s.mover != nullptr) {
    TierMover::Stats m = s.mover->GetStats();
    Counter(out, "cairn_tier_moved_out_blobs_total", m.moved_out,
            "Blobs moved to the remote tier.");
    Counter(out, "cairn_tier_moved_out_bytes_total", m.moved_out_bytes,
            "Bytes moved to the remote tier.");
    Counter(out, "cairn_tier_moved_in_blobs_total", m.moved_in,
            "Blobs brought back to the local disks.");
    Counter(out, "cairn_tier_moved_in_bytes_total", m.moved_in_bytes,
            "Bytes brought back to the local disks.");
    Counter(out, "cairn_tier_move_errors_total", m.errors, "Blob moves that failed.");
  }
  if (s.tiering != nullptr) {
    TieringService::Status tier = s.tiering->GetStatus();
    Gauge(out, "cairn_tier_waiting_blobs", tier.last_pass.waiting,
          "Cold blobs the last tiering pass could not move yet (background queue).");
    Gauge(out, "cairn_tier_waiting_bytes", tier.last_pass.waiting_bytes,
          "Bytes of the cold blobs waiting to move.");
    Gauge(out, "cairn_tier_local_bytes", tier.last_pass.local_bytes,
          "Referenced blob bytes on the local disks, as of the last tiering pass.");
    Gauge(out, "cairn_tier_remote_bytes", tier.last_pass.remote_bytes,
          "Referenced blob bytes only in the remote tier, as of the last tiering pass.");
    Gauge(out, "cairn_tier_last_pass_timestamp_seconds", tier.last_pass_time,
          "Unix time of the last tiering pass (0: none yet).");
    Gauge(out, "cairn_tier_remote_healthy", tier.remote_healthy ? 1 : 0,
          "0 if the remote failed since the last good tiering pass, else 1.");
  }
}

void AppendReplica(Replicator& replicator, MetricsText* out) {
  Replicator::Status status = replicator.GetStatus();
  const Replicator::Stats& stats = status.totals;
  Gauge(out, "cairn_replica_queued_blobs", status.backlog.blobs,
        "Blobs waiting to be copied to the replica (counted up to 100000).");
  Gauge(out, "cairn_replica_queued_bytes", status.backlog.bytes,
        "Bytes of the blobs waiting to be copied to the replica.");
  Gauge(out, "cairn_replica_lag_seconds", status.lag_seconds,
        "Age of the oldest blob not yet in the replica (the recovery point now).");
  Counter(out, "cairn_replica_copied_blobs_total", stats.copied,
          "Blobs copied to the replica and verified.");
  Counter(out, "cairn_replica_copied_bytes_total", stats.copied_bytes,
          "Bytes copied to the replica and verified.");
  Counter(out, "cairn_replica_errors_total", stats.errors,
          "Replication passes stopped by an error.");
  Gauge(out, "cairn_replica_healthy", status.healthy ? 1 : 0,
        "0 if replication failed since the queue was last emptied, else 1.");
}

void AppendBackups(BackupService& backups, MetricsText* out) {
  BackupService::Status status = backups.GetStatus();
  Gauge(out, "cairn_replica_last_backup_timestamp_seconds", status.last_time,
        "When the newest namespace backup in the replica was taken (0: none yet).");
  Gauge(out, "cairn_replica_last_backup_bytes", status.last_stored_bytes,
        "Bytes of the newest namespace backup (checkpoint files and blob list).");
  Gauge(out, "cairn_replica_backups_kept", status.kept,
        "Complete backups kept in the replica after the last collection.");
  Counter(out, "cairn_replica_backup_errors_total", status.errors,
          "Backups or replica garbage collections that failed.");
  Counter(out, "cairn_replica_gc_deleted_objects_total", status.gc_deleted,
          "Replica objects deleted as needed by no kept backup and no file.");
}

}  // namespace

void AppendFuseMetrics(const FuseMetrics& metrics, MetricsText* out) {
  AppendFuseMetricsTo(metrics, out);
}

void AppendS3Metrics(const frontend::S3Metrics& metrics, MetricsText* out) {
  using frontend::S3OpCounters;
  auto each_used_op = [&](auto fn) {
    for (size_t i = 0; i < frontend::kS3OpCount; ++i) {
      const S3OpCounters& c = metrics.ops[i];
      if (c.requests.load(std::memory_order_relaxed) == 0) continue;
      fn(frontend::S3OpName(static_cast<frontend::S3Op>(i)), c);
    }
  };
  out->Family("cairn_s3_requests_total", MetricType::kCounter,
              "S3 requests answered, by operation.");
  each_used_op([&](const char* op, const S3OpCounters& c) {
    out->Value("cairn_s3_requests_total", c.requests.load(std::memory_order_relaxed),
               {{"op", op}});
  });
  out->Family("cairn_s3_errors_total", MetricType::kCounter,
              "S3 requests answered with an error, by operation and class (4xx: the "
              "client's, 5xx: the server's).");
  each_used_op([&](const char* op, const S3OpCounters& c) {
    out->Value("cairn_s3_errors_total", c.client_errors.load(std::memory_order_relaxed),
               {{"op", op}, {"class", "4xx"}});
    out->Value("cairn_s3_errors_total", c.server_errors.load(std::memory_order_relaxed),
               {{"op", op}, {"class", "5xx"}});
  });
  out->Family("cairn_s3_request_duration_seconds", MetricType::kHistogram,
              "Time from an S3 request's head read to its answer sent, by operation.");
  each_used_op([&](const char* op, const S3OpCounters& c) {
    LatencyHistogram::Snapshot s = c.latency.Read();
    out->Histogram("cairn_s3_request_duration_seconds", kLatencyBucketSeconds, s.counts,
                   s.sum_seconds, {{"op", op}});
  });
  out->Family("cairn_s3_received_bytes_total", MetricType::kCounter,
              "Bytes of S3 request bodies received, as sent (framing included).");
  out->Value("cairn_s3_received_bytes_total",
             metrics.bytes_received.load(std::memory_order_relaxed));
  out->Family("cairn_s3_sent_bytes_total", MetricType::kCounter,
              "Bytes of S3 response bodies sent.");
  out->Value("cairn_s3_sent_bytes_total", metrics.bytes_sent.load(std::memory_order_relaxed));
  out->Family("cairn_s3_connections", MetricType::kGauge, "S3 connections open.");
  out->Value("cairn_s3_connections", metrics.connections.load(std::memory_order_relaxed));
  out->Family("cairn_s3_tls_handshake_failures_total", MetricType::kCounter,
              "S3 connections closed before a TLS session was set up (plain HTTP, an "
              "untrusted certificate, a timeout).");
  out->Value("cairn_s3_tls_handshake_failures_total",
             metrics.tls_handshake_failures.load(std::memory_order_relaxed));
}

std::string RenderVolumeMetrics(const VolumeMetricsSources& sources) {
  MetricsText out;
  if (sources.fuse != nullptr) AppendFuseMetricsTo(*sources.fuse, &out);
  if (sources.s3 != nullptr) AppendS3Metrics(*sources.s3, &out);
  if (sources.cache != nullptr) AppendCache(*sources.cache, sources.collector, &out);
  if (sources.shared_sweeper != nullptr) AppendSharedSweep(*sources.shared_sweeper, &out);
  if (sources.ns != nullptr) AppendNamespace(*sources.ns, &out);
  if (sources.ns != nullptr && sources.striped != nullptr) {
    AppendStorage(*sources.ns, *sources.striped, &out);
  }
  if (sources.maintenance != nullptr) AppendScrub(*sources.maintenance, &out);
  AppendTier(sources, &out);
  if (sources.replicator != nullptr) AppendReplica(*sources.replicator, &out);
  if (sources.backups != nullptr) AppendBackups(*sources.backups, &out);
  if (sources.remote_scrubber != nullptr) AppendRemoteScrub(*sources.remote_scrubber, &out);
  return out.text();
}

}  // namespace cairn

// The JSON the daemon writes: stats.json (which `cairn status` reads from
// another process), the control channel's answers, and --json output. The
// services keep typed figures; they are rendered here, once.
#pragma once

#include <string>

#include "backend/services/backup.h"
#include "backend/services/backup_service.h"
#include "backend/services/blob_gc.h"
#include "backend/services/replica_gc.h"
#include "backend/services/remote_scrub.h"
#include "backend/services/replication.h"
#include "backend/services/storage_maintenance.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "cache/file_data_cache.h"
#include "frontend/s3_server.h"

namespace cairn {

std::string ScrubReportJson(const ScrubReport& report);
std::string RemoteScrubReportJson(const RemoteScrubReport& report);
std::string RemoteScrubJson(const RemoteScrubStatus& status);
// `scrub`, when given, goes inside as "scrub".
std::string StorageJson(const StorageStatus& storage, const ScrubStatus* scrub);
// `reads`, when given, adds the remote reads and the block cache.
std::string TierJson(const TieringService::Status& tier, const TieredBlobStore::Stats* reads);
// `backups`, when given, adds the last backup and the replica's collection.
std::string ReplicaJson(const Replicator::Status& replica, const BackupService::Status* backups);
std::string ReplicaGcJson(const ReplicaGcReport& report);
std::string BackupManifestJson(const BackupManifest& manifest);
std::string BackupResultJson(const BackupService::Result& result);

// Everything stats.json holds; null parts are left out.
struct DaemonStats {
  int64_t updated = 0;  // Unix seconds
  FileDataCache::Stats cache;
  BlobCollector::Stats collector;
  uint64_t damaged_files = 0;
  const StorageStatus* storage = nullptr;
  const ScrubStatus* scrub = nullptr;
  const TieringService::Status* tier = nullptr;
  const TieredBlobStore::Stats* tier_reads = nullptr;
  const Replicator::Status* replica = nullptr;
  const BackupService::Status* backups = nullptr;
  const RemoteScrubStatus* remote_scrub = nullptr;
  const frontend::S3ServerStats* s3 = nullptr;  // with [s3]
  std::string s3_address;
};
// One line of JSON.
std::string DaemonStatsJson(const DaemonStats& stats);

}  // namespace cairn

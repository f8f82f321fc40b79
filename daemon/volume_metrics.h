// Everything a mounted volume reports to Prometheus, gathered at each scrape
// from the counters its parts keep anyway (the same ones stats.json shows).
#pragma once

#include <string>

#include "backend/blob/striped_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/backup_service.h"
#include "backend/services/blob_gc.h"
#include "backend/services/remote_scrub.h"
#include "backend/services/replication.h"
#include "backend/services/shared_blob_store.h"
#include "backend/services/shared_blob_sweep.h"
#include "backend/services/storage_maintenance.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "cache/file_data_cache.h"
#include "daemon/metrics_text.h"
#include "fs/fuse_metrics.h"
#include "frontend/s3_metrics.h"

namespace cairn {

// The parts to report on; a null part's families are left out (no striped
// store on a format 1 volume, no tier without [tier]). The parts must
// outlive every RenderVolumeMetrics call.
struct VolumeMetricsSources {
  const FuseMetrics* fuse = nullptr;
  FileDataCache* cache = nullptr;
  const BlobCollector* collector = nullptr;
  const SharedBlobSweeper* shared_sweeper = nullptr;  // a shared volume's
  NamespaceStore* ns = nullptr;
  StripedBlobStore* striped = nullptr;
  StorageMaintenance* maintenance = nullptr;
  TieredBlobStore* tiered = nullptr;
  SharedBlobStore* shared_blobs = nullptr;  // a shared volume's
  TierMover* mover = nullptr;
  TieringService* tiering = nullptr;
  Replicator* replicator = nullptr;
  RemoteScrubber* remote_scrubber = nullptr;
  BackupService* backups = nullptr;
  const frontend::S3Metrics* s3 = nullptr;  // with [s3]
};

// The cairn_fuse_* and cairn_{read,written}_bytes_total families. Operations
// never requested are left out, so a scrape lists what the mount served.
void AppendFuseMetrics(const FuseMetrics& metrics, MetricsText* out);

// The cairn_s3_* families; operations never requested are left out.
void AppendS3Metrics(const frontend::S3Metrics& metrics, MetricsText* out);

// The metrics text (docs/METRICS.md lists every name).
std::string RenderVolumeMetrics(const VolumeMetricsSources& sources);

}  // namespace cairn

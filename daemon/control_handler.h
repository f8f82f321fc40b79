// What the daemon does for the cairn commands that reach it over the
// control channel (control_channel.h): scrub, disk replace, tier moves and
// passes, backups, the replica's garbage collection and claim, serving S3.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"

#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "cache/file_data_cache.h"

namespace cairn {

// What the daemon itself does on request, beside its volume's services.
struct DaemonControls {
  // `cairn serve s3`: serve S3 at HOST:PORT ("": [s3] listen); the URL
  // served at, or why not.
  std::function<absl::StatusOr<std::string>(const std::string& listen)> serve_s3;
};

// Serves one request line: `reply` sends "progress JSON", then "done JSON"
// or "error MESSAGE"; `stopping` turns true when the daemon shuts down.
void HandleControlRequest(Volume& volume, VolumeServices& services, FileDataCache& cache,
                          const DaemonControls& controls, const std::string& request,
                          const std::function<void(const std::string&)>& reply,
                          const std::function<bool()>& stopping);

}  // namespace cairn

// What the daemon does for the cairn commands that reach it over the
// control channel (control_channel.h): scrub, disk replace, tier moves and
// passes, backups, the replica's garbage collection and claim.
#pragma once

#include <functional>
#include <string>

#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "cache/file_data_cache.h"

namespace cairn {

// Serves one request line: `reply` sends "progress JSON", then "done JSON"
// or "error MESSAGE"; `stopping` turns true when the daemon shuts down.
void HandleControlRequest(Volume& volume, VolumeServices& services, FileDataCache& cache,
                          const std::string& request,
                          const std::function<void(const std::string&)>& reply,
                          const std::function<bool()>& stopping);

}  // namespace cairn

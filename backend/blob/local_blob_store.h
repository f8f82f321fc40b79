// The first data path: every blob is one file in a single directory, with a
// self-describing, checksummed header. The striped, erasure-coded store
// replaces it behind the BlobStore interface.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/base/env.h"

namespace cairn {

class LocalBlobStore : public BlobStore {
 public:
  // Opens (creating if needed) the store in `dir`. `env` must outlive it.
  static absl::StatusOr<std::unique_ptr<LocalBlobStore>> Open(
      const std::string& dir, Env* env = Env::Default());
};

}  // namespace cairn

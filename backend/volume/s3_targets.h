// From a bucket named in cairn.toml ([tier], [replica]) to the options of
// an S3 client for it, and a quick look whether it answers.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/config/config.h"
#include "backend/s3/object_store.h"
#include "backend/volume/io.h"

namespace cairn {

// The S3 client options for `tier`: endpoint, bucket, addressing (auto:
// virtual-hosted for AWS endpoints, path style elsewhere) and credentials
// (the config, the environment, a credentials file; `config_path` is
// cairn.toml, whose mode is checked when it holds a secret).
absl::StatusOr<s3::S3Options> TierS3Options(const TierConfig& tier, const std::string& config_path,
                                            Env* env = Env::Default());
// The same for a shared volume's bucket, whose reads and uploads are
// retried for its read_timeout_seconds as the tier's reads are.
absl::StatusOr<s3::S3Options> SharedBlobsS3Options(const SharedBlobsConfig& blobs,
                                                   const std::string& config_path,
                                                   Env* env = Env::Default());
// The same for any bucket of cairn's (the replica's), with the client's
// default retry limits.
absl::StatusOr<s3::S3Options> S3TargetOptions(const S3Target& target,
                                              const std::string& config_path,
                                              Env* env = Env::Default());

// A store for `target` from io.remote (`config_path` as above).
absl::StatusOr<std::unique_ptr<s3::ObjectStore>> OpenS3Target(const Io& io, const S3Target& target,
                                                              const std::string& config_path);

// Asks the remote for one short listing under the volume's prefix, giving
// up after about `seconds` (one attempt): OK, or the error that says what to
// check (unreachable, wrong credentials, no such bucket). For the warning
// a mount prints; nothing depends on it.
absl::Status ProbeRemote(const Io& io, const TierConfig& tier, const std::string& config_path,
                         const std::string& volume_id, int seconds);

}  // namespace cairn

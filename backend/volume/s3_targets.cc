#include "backend/volume/s3_targets.h"

#include <cstdlib>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "backend/s3/credentials.h"

namespace cairn {

namespace {

// A request waits for the remote this long in all, retries included,
// however quickly each attempt fails: a remote restarting for a few
// seconds must not hand readers EIO, and one that takes connections and
// never answers must not hold them for several stalls. The time bounds the
// retries, not their number.
absl::StatusOr<s3::S3Options> RetriedFor(absl::StatusOr<s3::S3Options> options,
                                         int64_t seconds) {
  if (!options.ok()) return options;
  options->max_retry_seconds = static_cast<double>(seconds);
  options->max_attempts = std::numeric_limits<int>::max();
  return options;
}

}  // namespace

absl::StatusOr<s3::S3Options> TierS3Options(const TierConfig& tier, const std::string& config_path,
                                            Env* env) {
  return RetriedFor(S3TargetOptions(tier, config_path, env), tier.read_timeout_seconds);
}

absl::StatusOr<s3::S3Options> SharedBlobsS3Options(const SharedBlobsConfig& blobs,
                                                   const std::string& config_path, Env* env) {
  return RetriedFor(S3TargetOptions(blobs, config_path, env), blobs.read_timeout_seconds);
}

absl::StatusOr<s3::S3Options> S3TargetOptions(const S3Target& tier,
                                              const std::string& config_path, Env* env) {
  s3::S3Options options;
  options.endpoint = tier.endpoint;
  options.bucket = tier.bucket;
  options.region = tier.region;
  options.ca_file = tier.ca_file;
  options.storage_class = tier.storage_class;
  options.path_style = tier.addressing == "path" ||
                       (tier.addressing == "auto" &&
                        tier.endpoint.find("amazonaws.com") == std::string::npos);
  s3::CredentialSources sources;
  if (!tier.secret_access_key.empty() || !tier.access_key_id.empty()) {
    sources.config = s3::Credentials{tier.access_key_id, tier.secret_access_key, ""};
  }
  sources.config_path = config_path;
  sources.credentials_file = tier.credentials_file;
  sources.profile = tier.profile;
  sources.env = env;
  absl::StatusOr<s3::Credentials> credentials = s3::ResolveCredentials(sources, ::getenv);
  if (!credentials.ok()) return credentials.status();
  options.credentials = *credentials;
  return options;
}

absl::StatusOr<std::unique_ptr<s3::ObjectStore>> OpenS3Target(const Io& io, const S3Target& target,
                                                              const std::string& config_path) {
  absl::StatusOr<s3::S3Options> options = S3TargetOptions(target, config_path, io.env);
  if (!options.ok()) return options.status();
  return io.remote->Open(*options);
}

absl::Status ProbeRemote(const Io& io, const TierConfig& tier, const std::string& config_path,
                         const std::string& volume_id, int seconds) {
  absl::StatusOr<s3::S3Options> options = TierS3Options(tier, config_path, io.env);
  if (!options.ok()) return options.status();
  options->max_attempts = 1;
  options->max_retry_seconds = seconds;
  options->connect_timeout_ms = seconds * 1000;
  options->stall_seconds = seconds;
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client = io.remote->Open(*options);
  if (!client.ok()) return client.status();
  // A prefix no object has: the answer is short, and proves the bucket
  // exists and these credentials may list it.
  return (*client)->ListObjects(absl::StrCat(tier.prefix, volume_id, "/probe-")).status();
}

}  // namespace cairn

// Where the remote tier's S3 credentials come from, in this order:
//   1. the volume's cairn.toml ([tier] or [replica] access_key_id / secret_access_key),
//   2. the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//      AWS_SESSION_TOKEN),
//   3. a shared credentials file with profiles, as the AWS CLI writes it
//      (the file given, else $AWS_SHARED_CREDENTIALS_FILE, else
//      ~/.aws/credentials; the profile given, else $AWS_PROFILE, else
//      "default").
// A file holding a secret that users other than its owner can read is
// refused, saying how to fix it. Secrets never appear in messages.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "backend/base/env.h"
#include "backend/s3/sigv4.h"

namespace cairn::s3 {

struct CredentialSources {
  // From cairn.toml, with the file's path (its mode is checked).
  std::optional<Credentials> config;
  std::string config_path;
  std::string credentials_file;  // "" for the default
  std::string profile;           // "" for the default
  Env* env = Env::Default();     // where the files are read
};

using GetEnv = std::function<const char*(const char*)>;

// The first source that has credentials; kNotFound naming every place
// looked at when none has.
absl::StatusOr<Credentials> ResolveCredentials(const CredentialSources& sources,
                                               const GetEnv& getenv_fn);

// One profile of an AWS shared credentials file (INI). `path` is for
// messages.
absl::StatusOr<Credentials> ParseCredentialsFile(std::string_view text,
                                                 const std::string& profile,
                                                 const std::string& path);

// kAccessDenied if `path` can be read by anyone but its owner.
absl::Status CheckSecretFileMode(Env* env, const std::string& path);

}  // namespace cairn::s3

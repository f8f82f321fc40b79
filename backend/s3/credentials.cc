#include "backend/s3/credentials.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"

namespace cairn::s3 {
namespace {

std::string Trim(const std::string& text) {
  size_t start = text.find_first_not_of(" \t\r");
  if (start == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(start, end - start + 1);
}

std::string EnvOr(const GetEnv& getenv_fn, const char* name, const std::string& fallback) {
  const char* value = getenv_fn(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace

absl::Status CheckSecretFileMode(Env* env, const std::string& path) {
  absl::StatusOr<FileInfo> info = env->Stat(path);
  if (!info.ok()) {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat("cannot read ", path, ": ", info.status().message()));
  }
  if ((info->permissions & 077) != 0) {
    return FsError(FsErrorKind::kAccessDenied,
                   absl::StrFormat("%s holds an S3 secret key and other users can read it "
                                   "(mode %04o); refusing to use it. Run: chmod 600 %s",
                                   path, info->permissions, path));
  }
  return absl::OkStatus();
}

absl::StatusOr<Credentials> ParseCredentialsFile(std::string_view text,
                                                 const std::string& profile,
                                                 const std::string& path) {
  std::istringstream in{std::string(text)};
  std::string line, section;
  bool found_section = false;
  Credentials credentials;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#' || trimmed[0] == ';') continue;
    if (trimmed.front() == '[') {
      if (trimmed.back() != ']') {
        return FsError(FsErrorKind::kInvalid,
                       absl::StrCat(path, ": line ", number, ": a section needs a closing ]"));
      }
      section = Trim(trimmed.substr(1, trimmed.size() - 2));
      // The AWS config file names sections "profile NAME".
      if (section.rfind("profile ", 0) == 0) section = Trim(section.substr(8));
      found_section = found_section || section == profile;
      continue;
    }
    if (section != profile) continue;
    size_t eq = trimmed.find('=');
    if (eq == std::string::npos) {
      return FsError(FsErrorKind::kInvalid,
                     absl::StrCat(path, ": line ", number, ": expected key = value"));
    }
    std::string key = Trim(trimmed.substr(0, eq)), value = Trim(trimmed.substr(eq + 1));
    if (key == "aws_access_key_id") credentials.access_key_id = value;
    if (key == "aws_secret_access_key") credentials.secret_access_key = value;
    if (key == "aws_session_token") credentials.session_token = value;
  }
  if (!found_section) {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat(path, " has no profile [", profile, "]"));
  }
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat(path, ": profile [", profile,
                                "] needs aws_access_key_id and aws_secret_access_key"));
  }
  return credentials;
}

absl::StatusOr<Credentials> ResolveCredentials(const CredentialSources& sources,
                                               const GetEnv& getenv_fn) {
  if (sources.config && !sources.config->secret_access_key.empty()) {
    if (!sources.config_path.empty()) {
      if (absl::Status s = CheckSecretFileMode(sources.env, sources.config_path); !s.ok()) return s;
    }
    if (sources.config->access_key_id.empty()) {
      return FsError(FsErrorKind::kInvalid,
                     absl::StrCat(sources.config_path, ": [tier] or [replica] has a secret_access_key "
                                  "but no access_key_id"));
    }
    return *sources.config;
  }
  std::string env_key = EnvOr(getenv_fn, "AWS_ACCESS_KEY_ID", "");
  std::string env_secret = EnvOr(getenv_fn, "AWS_SECRET_ACCESS_KEY", "");
  if (!env_key.empty() && !env_secret.empty()) {
    return Credentials{env_key, env_secret, EnvOr(getenv_fn, "AWS_SESSION_TOKEN", "")};
  }
  std::string home = EnvOr(getenv_fn, "HOME", "");
  std::string path = !sources.credentials_file.empty()
                         ? sources.credentials_file
                         : EnvOr(getenv_fn, "AWS_SHARED_CREDENTIALS_FILE",
                                 home.empty() ? "" : home + "/.aws/credentials");
  std::string profile = !sources.profile.empty() ? sources.profile
                                                 : EnvOr(getenv_fn, "AWS_PROFILE", "default");
  absl::StatusOr<std::string> text =
      path.empty() ? absl::StatusOr<std::string>(absl::NotFoundError("no path"))
                   : ReadFileToString(sources.env, path);
  if (!text.ok()) {
    return FsError(FsErrorKind::kNotFound,
                   absl::StrCat("no S3 credentials: none in ", sources.config_path.empty()
                                                                   ? "the config"
                                                                   : sources.config_path,
                                " ([tier] or [replica] access_key_id, secret_access_key), none in the "
                                "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), and ",
                                path.empty() ? "no credentials file" : "no file " + path));
  }
  if (absl::Status s = CheckSecretFileMode(sources.env, path); !s.ok()) return s;
  return ParseCredentialsFile(*text, profile, path);
}

}  // namespace cairn::s3

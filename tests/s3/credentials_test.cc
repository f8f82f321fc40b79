#include "backend/s3/credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "backend/base/fs_error.h"
#include "tests/support/temp_dir.h"

namespace cairn::s3 {
namespace {

class S3CredentialsTest : public ::testing::Test {
 protected:
  GetEnv Env() {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }
  std::string WriteFile(const std::string& name, const std::string& text, mode_t mode) {
    std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
};

constexpr char kFile[] =
    "# written by aws configure\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULT\n"
    "aws_secret_access_key = secret-default\n"
    "\n"
    "[profile backup]\n"
    "aws_access_key_id=AKIDBACKUP\n"
    "aws_secret_access_key=secret-backup\n"
    "aws_session_token = token-backup\n";

TEST_F(S3CredentialsTest, ConfigComesFirstThenEnvironmentThenTheFile) {
  env_["HOME"] = dir_.path();
  std::string config = WriteFile("cairn.toml", "", 0600);
  CredentialSources sources;
  sources.config = Credentials{"AKIDCONFIG", "secret-config", ""};
  sources.config_path = config;
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "secret-env";
  EXPECT_EQ(ResolveCredentials(sources, Env())->access_key_id, "AKIDCONFIG");
  sources.config.reset();
  EXPECT_EQ(ResolveCredentials(sources, Env())->access_key_id, "AKIDENV");
  env_.erase("AWS_ACCESS_KEY_ID");
  std::filesystem::create_directories(dir_.path() + "/.aws");
  WriteFile(".aws/credentials", kFile, 0600);
  EXPECT_EQ(ResolveCredentials(sources, Env())->access_key_id, "AKIDDEFAULT");
  env_["AWS_PROFILE"] = "backup";
  absl::StatusOr<Credentials> backup = ResolveCredentials(sources, Env());
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->access_key_id, "AKIDBACKUP");
  EXPECT_EQ(backup->session_token, "token-backup");
  sources.profile = "nobody";
  EXPECT_EQ(GetFsErrorKind(ResolveCredentials(sources, Env()).status()), FsErrorKind::kNotFound);
}

TEST_F(S3CredentialsTest, SecretFilesOthersCanReadAreRefusedWithTheFix) {
  CredentialSources sources;
  sources.credentials_file = WriteFile("credentials", kFile, 0644);
  absl::StatusOr<Credentials> refused = ResolveCredentials(sources, Env());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(GetFsErrorKind(refused.status()), FsErrorKind::kAccessDenied);
  EXPECT_NE(refused.status().message().find("chmod 600"), std::string::npos);
  EXPECT_EQ(refused.status().message().find("secret-default"), std::string::npos);
  sources.config = Credentials{"AKIDCONFIG", "secret-config", ""};
  sources.config_path = WriteFile("cairn.toml", "", 0640);
  EXPECT_EQ(GetFsErrorKind(ResolveCredentials(sources, Env()).status()),
            FsErrorKind::kAccessDenied);
}

TEST_F(S3CredentialsTest, NothingAnywhereNamesEveryPlaceLookedAt) {
  env_["HOME"] = dir_.path();
  absl::StatusOr<Credentials> none = ResolveCredentials(CredentialSources{}, Env());
  ASSERT_FALSE(none.ok());
  std::string message(none.status().message());
  EXPECT_NE(message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << message;
  EXPECT_NE(message.find(".aws/credentials"), std::string::npos) << message;
}

TEST_F(S3CredentialsTest, MalformedFilesSayWhereAndIncompleteProfilesAreRefused) {
  EXPECT_FALSE(ParseCredentialsFile("[default\nx=y\n", "default", "f").ok());
  EXPECT_FALSE(ParseCredentialsFile("[default]\njust words\n", "default", "f").ok());
  absl::StatusOr<Credentials> half =
      ParseCredentialsFile("[default]\naws_access_key_id = A\n", "default", "f");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("aws_secret_access_key"), std::string::npos);
}

}  // namespace
}  // namespace cairn::s3

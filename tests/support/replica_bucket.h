// The common ground of the replication and backup suites: a three-disk
// volume (VOLUME_DIR/cairn.toml owner-only, as a [replica] with a secret
// needs), a replica bucket on a private s3rver on 127.0.0.1 behind the
// tests' fault proxy, and an S3 client of the test's own that gives up
// quickly.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "backend/s3/s3_client.h"
#include "backend/volume/volume.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/s3rver.h"
#include "tests/support/temp_dir.h"

namespace cairn {

class ReplicaBucketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = S3rver::Start("replica", &why);
    if (!server_) GTEST_SKIP() << why;
    proxy_ = FaultProxy::Start(server_->port());
    FormatOptions format;
    for (int i = 0; i < 3; ++i) format.disks.push_back(absl::StrCat(dir_.path(), "/disk", i));
    ASSERT_TRUE(FormatVolume(Vol(), format).ok());
    ASSERT_EQ(chmod((Vol() + "/cairn.toml").c_str(), 0600), 0);
    s3::S3Options options;
    options.endpoint = proxy_->endpoint();
    options.bucket = "replica";
    options.credentials = {S3rver::kAccessKey, S3rver::kSecretKey, ""};
    options.first_backoff_seconds = 0.01;
    options.max_attempts = 3;
    options.stall_seconds = 1;
    client_ = std::move(*s3::S3Client::Create(options));
  }
  std::string Vol() { return dir_.path() + "/vol"; }
  // A [replica] section naming the bucket through the proxy.
  ReplicaConfig ReplicaSection() {
    ReplicaConfig replica;
    replica.endpoint = proxy_->endpoint();
    replica.bucket = "replica";
    replica.access_key_id = S3rver::kAccessKey;
    replica.secret_access_key = S3rver::kSecretKey;
    return replica;
  }

  TempDir dir_;
  std::unique_ptr<S3rver> server_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<s3::S3Client> client_;
};

}  // namespace cairn

// The S3 client against a real S3 server (s3rver on 127.0.0.1, which checks
// Signature V4), and its retry policy on its own.
#include "backend/s3/s3_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"

namespace cairn::s3 {
namespace {

TEST(S3RetryPolicyTest, RetriesServerTroubleAndNotRequestErrors) {
  for (long status : {500L, 502L, 503L, 504L}) EXPECT_TRUE(ShouldRetry(status, false, "")) << status;
  EXPECT_TRUE(ShouldRetry(0, true, ""));  // reset, refused, stalled
  EXPECT_TRUE(ShouldRetry(503, false, "SlowDown"));
  EXPECT_TRUE(ShouldRetry(400, false, "RequestTimeout"));
  for (const char* code : {"AccessDenied", "NoSuchBucket", "SignatureDoesNotMatch",
                           "InvalidAccessKeyId", "RequestTimeTooSkewed", "NoSuchKey"}) {
    EXPECT_FALSE(ShouldRetry(403, false, code)) << code;
  }
  EXPECT_FALSE(ShouldRetry(404, false, ""));
}

TEST(S3RetryPolicyTest, BackoffGrowsExponentiallyWithFullJitterUpToTheCap) {
  EXPECT_DOUBLE_EQ(BackoffSeconds(1, 0.1, 8, 1.0), 0.1);
  EXPECT_DOUBLE_EQ(BackoffSeconds(2, 0.1, 8, 1.0), 0.2);
  EXPECT_DOUBLE_EQ(BackoffSeconds(5, 0.1, 8, 1.0), 1.6);
  EXPECT_DOUBLE_EQ(BackoffSeconds(30, 0.1, 8, 1.0), 8.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(4, 0.1, 8, 0.5), 0.4);
  EXPECT_DOUBLE_EQ(BackoffSeconds(4, 0.1, 8, 0.0), 0.0);
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = S3rver::Start("cairn-test", &why);
    if (!server_) GTEST_SKIP() << why;
  }
  S3Options Options() {
    S3Options options;
    options.endpoint = server_->endpoint();
    options.bucket = "cairn-test";
    options.credentials = {S3rver::kAccessKey, S3rver::kSecretKey, ""};
    options.first_backoff_seconds = 0.01;
    return options;
  }
  std::unique_ptr<S3Client> Client(const S3Options& options) {
    absl::StatusOr<std::unique_ptr<S3Client>> client = S3Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  std::unique_ptr<S3rver> server_;
};

TEST_F(S3ClientTest, PutGetRangeHeadListDelete) {
  auto client = Client(Options());
  std::string data = RandomBytes(300000, 1);
  std::string key = "blobs/00/0000000000000001 with space+plus&amp";
  ASSERT_TRUE(client->PutObject(key, data, Crc32c(data)).ok());
  absl::StatusOr<std::string> got = client->GetObject(key);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  absl::StatusOr<std::string> part = client->GetObject(key, std::make_pair(1000, 5000));
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_EQ(*part, data.substr(1000, 5000));
  absl::StatusOr<ObjectInfo> info = client->HeadObject(key);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, data.size());
  ASSERT_TRUE(client->PutObject("blobs/01/second", "x").ok());
  ASSERT_TRUE(client->PutObject("other/third", "y").ok());
  absl::StatusOr<std::vector<ObjectEntry>> listed = client->ListObjects("blobs/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::set<std::string> keys;
  for (const ObjectEntry& e : *listed) keys.insert(e.key);
  EXPECT_EQ(keys, (std::set<std::string>{key, "blobs/01/second"}));
  ASSERT_TRUE(client->DeleteObject(key).ok());
  EXPECT_EQ(GetFsErrorKind(client->HeadObject(key).status()), FsErrorKind::kNotFound);
  EXPECT_EQ(GetFsErrorKind(client->GetObject(key).status()), FsErrorKind::kNotFound);
  EXPECT_TRUE(client->DeleteObject(key).ok()) << "deleting what is gone is fine";
  ASSERT_TRUE(client->DeleteObjects({"blobs/01/second", "other/third"}).ok());
  EXPECT_TRUE(client->ListObjects("")->empty());
}

TEST_F(S3ClientTest, ListingFollowsContinuationTokens) {
  auto client = Client(Options());
  for (int i = 0; i < 1005; ++i) {
    ASSERT_TRUE(client->PutObject(absl::StrCat("many/", 10000 + i), "").ok()) << i;
  }
  absl::StatusOr<std::vector<ObjectEntry>> listed = client->ListObjects("many/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 1005u);
}

TEST_F(S3ClientTest, LargeObjectsGoUpInPartsAndLeaveNoUploadBehind) {
  S3Options options = Options();
  options.multipart_threshold = 6 << 20;
  options.part_bytes = 5 << 20;
  auto client = Client(options);
  std::string data = RandomBytes(13 << 20, 2);  // three parts
  ASSERT_TRUE(client->PutObject("big", data).ok());
  EXPECT_EQ(*client->GetObject("big"), data);
  absl::StatusOr<std::vector<MultipartUpload>> open = client->ListMultipartUploads("");
  // s3rver cannot list multipart uploads; a real S3 or MinIO can.
  if (!open.ok() && open.status().message().find("NotImplemented") != std::string::npos) return;
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_TRUE(open->empty());
}

// s3rver checks the access key id but not V4 signatures (the AWS test
// vectors in sigv4_test.cc cover the signing).
TEST_F(S3ClientTest, WrongCredentialsAndMissingBucketSayWhatToCheck) {
  S3Options wrong = Options();
  wrong.credentials = {"NOT-A-KEY", "not-the-secret", ""};
  auto client = Client(wrong);
  absl::Status denied = client->PutObject("k", "v");
  EXPECT_EQ(GetFsErrorKind(denied), FsErrorKind::kAccessDenied) << denied;
  EXPECT_NE(denied.message().find("access key"), std::string::npos) << denied;
  EXPECT_EQ(denied.message().find("not-the-secret"), std::string::npos) << "secrets never shown";
  EXPECT_EQ(client->GetStats().retries, 0u) << "a wrong key is not retried";
  S3Options missing = Options();
  missing.bucket = "no-such-bucket";
  absl::Status absent = Client(missing)->PutObject("k", "v");
  EXPECT_EQ(GetFsErrorKind(absent), FsErrorKind::kNotFound) << absent;
  EXPECT_NE(absent.message().find("bucket"), std::string::npos) << absent;
}

TEST_F(S3ClientTest, AServerThatIsDownIsRetriedThenReportedAndComesBack) {
  S3Options options = Options();
  options.max_attempts = 4;
  options.connect_timeout_ms = 500;
  auto client = Client(options);
  ASSERT_TRUE(client->PutObject("k", "before").ok());
  server_->Stop();
  absl::StatusOr<std::string> down = client->GetObject("k");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(GetFsErrorKind(down.status()), FsErrorKind::kIo);
  EXPECT_NE(down.status().message().find("cannot reach"), std::string::npos) << down.status();
  EXPECT_GE(client->GetStats().retries, 3u);
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  EXPECT_EQ(*client->GetObject("k"), "before");
}

// The client through the tests' fault-injecting proxy: every fault a
// remote can throw is retried and the bytes that arrive are the right ones.
class S3FaultTest : public S3ClientTest {
 protected:
  void SetUp() override {
    S3ClientTest::SetUp();
    if (IsSkipped()) return;
    proxy_ = FaultProxy::Start(server_->port());
    ASSERT_NE(proxy_, nullptr);
    S3Options options = Options();
    options.endpoint = proxy_->endpoint();
    options.stall_seconds = 1;
    options.max_attempts = 8;
    client_ = Client(options);
  }
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<S3Client> client_;
};

TEST_F(S3FaultTest, ThrottlingAndServerErrorsAreRetried) {
  std::string data = RandomBytes(200000, 3);
  proxy_->slow_down = 3;
  ASSERT_TRUE(client_->PutObject("k", data).ok());
  proxy_->server_error = 2;
  absl::StatusOr<std::string> got = client_->GetObject("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(proxy_->faults.load(), 5);
  EXPECT_EQ(client_->GetStats().retries, 5u);
}

TEST_F(S3FaultTest, ResponsesCutMidBodyAreFetchedAgainWhole) {
  std::string data = RandomBytes(1 << 20, 4);
  ASSERT_TRUE(client_->PutObject("k", data).ok());
  proxy_->reset_mid_body = 2;
  absl::StatusOr<std::string> got = client_->GetObject("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  proxy_->reset_mid_body = 1;
  absl::StatusOr<std::string> part = client_->GetObject("k", std::make_pair(4096, 100000));
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_EQ(*part, data.substr(4096, 100000));
}

TEST_F(S3FaultTest, StalledTransfersAreAbortedAndRetried) {
  ASSERT_TRUE(client_->PutObject("k", "value").ok());
  proxy_->stall_seconds = 4;
  proxy_->stall = 1;
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> got = client_->GetObject("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "value");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4))
      << "the stall was waited out instead of cut short";
}

TEST_F(S3FaultTest, PersistentFaultsEndInAnErrorNamingTheServerAndTheCode) {
  proxy_->slow_down = 1000;
  absl::Status failed = client_->PutObject("k", "v");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(GetFsErrorKind(failed), FsErrorKind::kIo);
  EXPECT_NE(failed.message().find("SlowDown"), std::string::npos) << failed;
  EXPECT_NE(failed.message().find("127.0.0.1"), std::string::npos) << failed;
  EXPECT_EQ(proxy_->requests.load(), 8) << "bounded attempts";
  proxy_->slow_down = 0;
  EXPECT_TRUE(client_->PutObject("k", "v").ok()) << "and it works again afterwards";
}

// The proxy keeps the ledger of multipart uploads that s3rver cannot list.
TEST_F(S3FaultTest, MultipartUploadsUnderFaultsCompleteOrAreAbortedNeverLeftOpen) {
  S3Options options = Options();
  options.endpoint = proxy_->endpoint();
  options.multipart_threshold = 6 << 20;
  options.part_bytes = 5 << 20;
  options.max_attempts = 8;
  options.first_backoff_seconds = 0.01;
  auto client = Client(options);
  std::string data = RandomBytes(13 << 20, 5);  // three parts
  // Throttling and a response cut short on the way: retried, completed.
  // (Faults on the parts: a CreateMultipartUpload whose answer is lost
  // leaves an upload the client never learns of; only a listing finds it,
  // which cairn fsck --repair does, or the bucket's lifecycle rule.)
  proxy_->faults_only_on_parts = true;
  proxy_->slow_down = 2;
  proxy_->reset_mid_body = 1;
  absl::Status through = client->PutObject("through-faults", data);
  ASSERT_TRUE(through.ok()) << through;
  EXPECT_EQ(*client->GetObject("through-faults"), data);
  EXPECT_GE(proxy_->uploads_started(), 1);
  EXPECT_TRUE(proxy_->OpenUploads().empty());
  // Every attempt at the parts fails: the upload fails and is aborted.
  proxy_->server_error_on_part = 1000;
  absl::Status failed = client->PutObject("never", data);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(GetFsErrorKind(client->HeadObject("never").status()), FsErrorKind::kNotFound);
  EXPECT_TRUE(proxy_->OpenUploads().empty()) << "a failed upload is aborted";
  EXPECT_GE(proxy_->uploads_started(), 2);
  proxy_->server_error_on_part = 0;
  // After the server restarts, uploads go through again.
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  ASSERT_TRUE(client->PutObject("after-restart", data).ok());
  EXPECT_EQ(*client->GetObject("after-restart"), data);
  EXPECT_TRUE(proxy_->OpenUploads().empty());
}

TEST(S3ClientOptionsTest, BadEndpointsAndMissingCredentialsAreRefused) {
  S3Options options;
  options.bucket = "b";
  options.credentials = {"a", "b", ""};
  for (const char* endpoint : {"", "s3.amazonaws.com", "ftp://x", "https://host/path"}) {
    options.endpoint = endpoint;
    EXPECT_FALSE(S3Client::Create(options).ok()) << endpoint;
  }
  options.endpoint = "https://s3.amazonaws.com";
  options.credentials = {};
  EXPECT_FALSE(S3Client::Create(options).ok());
}

}  // namespace
}  // namespace cairn::s3

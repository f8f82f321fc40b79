// The metrics text format, the HTTP server that serves it, and the
// [metrics] section of cairn.toml.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <thread>

#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "fs/fuse_metrics.h"
#include "daemon/metrics_server.h"
#include "daemon/metrics_text.h"
#include "daemon/volume_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/loopback.h"
#include "tests/support/mem_env.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

// --- Text format -------------------------------------------------------------

TEST(MetricsTextTest, FamilyStartsWithHelpAndTypeLines) {
  MetricsText out;
  out.Family("cairn_things_total", MetricType::kCounter, "Things done.");
  out.Value("cairn_things_total", uint64_t{7});
  out.Family("cairn_level_bytes", MetricType::kGauge, "A level, \\ and\nnewline.");
  out.Value("cairn_level_bytes", 0.5);
  EXPECT_EQ(out.text(),
            "# HELP cairn_things_total Things done.\n"
            "# TYPE cairn_things_total counter\n"
            "cairn_things_total 7\n"
            "# HELP cairn_level_bytes A level, \\\\ and\\nnewline.\n"
            "# TYPE cairn_level_bytes gauge\n"
            "cairn_level_bytes 0.5\n");
}

TEST(MetricsTextTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  MetricsText out;
  out.Value("cairn_disk_up", uint64_t{1}, {{"disk", "0"}, {"path", "/srv/\"d\"\\x\n"}});
  EXPECT_EQ(out.text(), "cairn_disk_up{disk=\"0\",path=\"/srv/\\\"d\\\"\\\\x\\n\"} 1\n");
}

TEST(MetricsTextTest, ValuesUseThePrometheusSpellings) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(12345678), "12345678");
  EXPECT_EQ(FormatMetricValue(0.0001), "0.0001");
  EXPECT_EQ(FormatMetricValue(0.00202), "0.00202");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  MetricsText out;
  out.Value("big_total", uint64_t{18446744073709551615u});  // exact, not as a double
  EXPECT_EQ(out.text(), "big_total 18446744073709551615\n");
}

TEST(MetricsTextTest, HistogramBucketsAreCumulativeAndInfEqualsCount) {
  const double bounds[] = {0.1, 1, 5};
  const uint64_t counts[] = {2, 0, 3, 4};  // per bucket; the last is above 5
  MetricsText out;
  out.Family("cairn_wait_seconds", MetricType::kHistogram, "Waits.");
  out.Histogram("cairn_wait_seconds", bounds, counts, 42.25, {{"op", "read"}});
  EXPECT_EQ(out.text(),
            "# HELP cairn_wait_seconds Waits.\n"
            "# TYPE cairn_wait_seconds histogram\n"
            "cairn_wait_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n"
            "cairn_wait_seconds_bucket{op=\"read\",le=\"1\"} 2\n"
            "cairn_wait_seconds_bucket{op=\"read\",le=\"5\"} 5\n"
            "cairn_wait_seconds_bucket{op=\"read\",le=\"+Inf\"} 9\n"
            "cairn_wait_seconds_sum{op=\"read\"} 42.25\n"
            "cairn_wait_seconds_count{op=\"read\"} 9\n");
}

TEST(MetricsTextTest, LatencyHistogramPutsBoundsInTheirOwnBucket) {
  LatencyHistogram h;
  h.Record(100'000);          // exactly 0.0001 s: le="0.0001" (upper bounds are inclusive)
  h.Record(100'001);          // just above: the next bucket
  h.Record(7'000'000'000);    // 7 s: only +Inf
  LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.counts[0], 1u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts.back(), 1u);
  EXPECT_NEAR(s.sum_seconds, 7.000200001, 1e-9);
}

TEST(MetricsTextTest, FuseMetricsListEveryUsedOperationWithTypes) {
  FuseMetrics metrics;
  metrics.Record(FuseOp::kWrite, 2'000'000, /*failed=*/false);
  metrics.Record(FuseOp::kWrite, 20'000, /*failed=*/true);
  metrics.written_bytes += 4096;
  MetricsText out;
  AppendFuseMetrics(metrics, &out);
  const std::string& text = out.text();
  EXPECT_THAT(text, HasSubstr("# TYPE cairn_fuse_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_requests_total{op=\"write\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_errors_total{op=\"write\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cairn_fuse_request_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_request_duration_seconds_bucket{op=\"write\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_request_duration_seconds_bucket{op=\"write\",le=\"0.001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_request_duration_seconds_bucket{op=\"write\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_request_duration_seconds_bucket{op=\"write\",le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_fuse_request_duration_seconds_count{op=\"write\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_written_bytes_total 4096\n"));
  EXPECT_THAT(text, HasSubstr("cairn_read_bytes_total 0\n"));
  EXPECT_EQ(text.find("op=\"read\""), std::string::npos) << "unused operations are left out";
  // Every sample belongs to a family announced before it.
  size_t help = 0, type = 0;
  for (size_t at = 0; (at = text.find("# HELP ", at)) != std::string::npos; ++at) help++;
  for (size_t at = 0; (at = text.find("# TYPE ", at)) != std::string::npos; ++at) type++;
  EXPECT_EQ(help, 5u);
  EXPECT_EQ(type, 5u);
}

TEST(S3MetricsTest, RequestsAreCountedByOperationAndErrorClass) {
  frontend::S3Metrics metrics;
  metrics.Record(frontend::S3Op::kPutObject, 200, 2'000'000);
  metrics.Record(frontend::S3Op::kPutObject, 403, 50'000);
  metrics.Record(frontend::S3Op::kGetObject, 500, 50'000);
  metrics.bytes_received += 1000;
  metrics.connections = 2;
  MetricsText out;
  AppendS3Metrics(metrics, &out);
  const std::string& text = out.text();
  EXPECT_THAT(text, HasSubstr("cairn_s3_requests_total{op=\"PutObject\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_s3_errors_total{op=\"PutObject\",class=\"4xx\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cairn_s3_errors_total{op=\"PutObject\",class=\"5xx\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cairn_s3_errors_total{op=\"GetObject\",class=\"5xx\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("cairn_s3_request_duration_seconds_bucket{op=\"PutObject\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_s3_received_bytes_total 1000\n"));
  EXPECT_THAT(text, HasSubstr("cairn_s3_connections 2\n"));
  EXPECT_EQ(text.find("op=\"ListBuckets\""), std::string::npos) << "unused operations are left out";
}

TEST(S3MetricsTest, RequestsAreClassifiedAsTheHandlerRoutesThem) {
  using frontend::ClassifyS3Request;
  using frontend::S3Op;
  frontend::S3Request r;
  r.method = "GET";
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kListBuckets);
  r.bucket = "b";
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kListObjects);
  r.query = {{"list-type", "2"}};
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kListObjectsV2);
  r.query = {{"uploads", ""}};
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kListMultipartUploads);
  r.key = "k";
  r.method = "POST";
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kCreateMultipartUpload);
  r.method = "PUT";
  r.query = {{"uploadId", "x"}, {"partNumber", "1"}};
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kUploadPart);
  r.headers = {{"x-amz-copy-source", "b/a"}};
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kUploadPartCopy);
  r.query.clear();
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kCopyObject);
  r.headers.clear();
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kPutObject);
  r.method = "PATCH";
  EXPECT_EQ(ClassifyS3Request(r), S3Op::kOther);
}

// --- HTTP server -------------------------------------------------------------

// Sends `request` to 127.0.0.1:port and returns everything the server
// answers until it closes (bounded by a few seconds).
std::string Exchange(int port, const std::string& request, bool close_write = false) {
  return LoopbackExchange(port, request, close_write).value_or("connect failed");
}

// --- A volume's figures -------------------------------------------------------

TEST(VolumeMetricsTest, ReplicaMetricsShowTheQueueTheLagAndTheCopies) {
  MemEnv env;
  env.SetCapacity(256 << 20);  // a reserve of 4 MiB, not 64
  FakeClock clock;
  FakeObjectStoreFactory buckets(&clock);
  Io io{&env, &clock, &buckets};
  ASSERT_TRUE(FormatVolume("/vol", FormatOptions(), io).ok());
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig("/vol", "", &env);
  ASSERT_TRUE(config.ok()) << config.status();
  ReplicaConfig replica;
  replica.endpoint = "http://fake";
  replica.bucket = "replica";
  replica.access_key_id = "AKID";
  replica.secret_access_key = "secret";
  config->replica = replica;
  ASSERT_TRUE(SaveVolumeConfig("/vol", *config, &env).ok());
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open("/vol", *config, io);
  ASSERT_TRUE(volume.ok()) << volume.status();
  VolumeServices::Options options;
  options.background = false;
  VolumeServices services(**volume, options);
  WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "m", std::string(100000, 'm'));
  VolumeMetricsSources sources;
  sources.replicator = services.replicator();
  std::string before = RenderVolumeMetrics(sources);
  EXPECT_THAT(before, HasSubstr("cairn_replica_queued_blobs 1\n"));
  EXPECT_THAT(before, HasSubstr("# TYPE cairn_replica_lag_seconds gauge"));
  ASSERT_TRUE(services.replicator()->RunPass().ok());
  std::string after = RenderVolumeMetrics(sources);
  EXPECT_THAT(after, HasSubstr("cairn_replica_queued_blobs 0\n"));
  EXPECT_THAT(after, HasSubstr("cairn_replica_copied_blobs_total 1\n"));
  EXPECT_THAT(after, HasSubstr("cairn_replica_copied_bytes_total 100000\n"));
}

// A volume and a bucket of its own, as a shared volume's blobs are kept.
class SharedVolumeMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.SetCapacity(256 << 20);
    ASSERT_TRUE(FormatVolume("/vol", FormatOptions(), io_).ok());
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig("/vol", "", &env_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open("/vol", *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    FakeObjectStore::Options bucket_options;
    bucket_options.clock = &clock_;
    bucket_ = std::make_unique<FakeObjectStore>(bucket_options);
    remote_ = std::make_unique<RemoteBlobStore>(*bucket_, "vol/", config->volume_id);
  }

  MemEnv env_;
  FakeClock clock_;
  FakeObjectStoreFactory buckets_{&clock_};
  Io io_{&env_, &clock_, &buckets_};
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<FakeObjectStore> bucket_;
  std::unique_ptr<RemoteBlobStore> remote_;
};

TEST_F(SharedVolumeMetricsTest, SweepMetricsCountTheObjectsItDeleted) {
  // The sweep, as a shared volume's leader runs it.
  absl::StatusOr<BlobId> id = volume_->ns().AllocateBlobIds(1);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(remote_->Put(*id, "left by a crash").ok());
  SharedBlobSweeper::Options options;
  options.background = false;
  options.clock = &clock_;
  SharedBlobSweeper sweeper(volume_->ns(), *remote_, options);
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(sweeper.SweepNow().ok());
  VolumeMetricsSources sources;
  sources.shared_sweeper = &sweeper;
  std::string text = RenderVolumeMetrics(sources);
  EXPECT_THAT(text, HasSubstr("cairn_shared_sweeps_total 1\n"));
  EXPECT_THAT(text, HasSubstr("cairn_shared_sweep_deleted_objects_total 1\n"));
}

TEST_F(SharedVolumeMetricsTest, BucketMetricsCountReadsBytesAndFailures) {
  SharedBlobStore shared(volume_->ns(), *remote_, /*block_cache=*/nullptr);
  absl::StatusOr<BlobId> ids = volume_->ns().AllocateBlobIds(2);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_TRUE(remote_->Put(*ids, "in the bucket").ok());
  absl::StatusOr<std::string> read = shared.Read(*ids, 0, 13);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(shared.Read(*ids + 1, 0, 4).ok()) << "never stored";
  VolumeMetricsSources sources;
  sources.shared_blobs = &shared;
  std::string text = RenderVolumeMetrics(sources);
  EXPECT_THAT(text, HasSubstr("cairn_shared_bucket_reads_total 2\n"));
  EXPECT_THAT(text, HasSubstr("cairn_shared_bucket_read_bytes_total 13\n"));
  EXPECT_THAT(text, HasSubstr("cairn_shared_bucket_read_errors_total 1\n"));
  EXPECT_THAT(text, HasSubstr("cairn_shared_block_cache_skipped_total 0\n"));
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = MetricsServer::Start("127.0.0.1:0", [] {
      return std::string("# HELP cairn_up Up.\n# TYPE cairn_up gauge\ncairn_up 1\n");
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, GetMetricsAnswersWithTheTextFormat) {
  std::string answer = Exchange(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_THAT(answer, HasSubstr("\r\nContent-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(answer, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(answer, HasSubstr("\r\n\r\n# HELP cairn_up Up.\n"));
  EXPECT_THAT(answer, HasSubstr("Content-Length: 53\r\n"));  // the body's length
  // HTTP/1.0 with bare newlines and a query string works too.
  answer = Exchange(server_->port(), "GET /metrics?x=1 HTTP/1.0\n\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
}

TEST_F(MetricsServerTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_EQ(Exchange(server_->port(), "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0u);
  EXPECT_EQ(Exchange(server_->port(), "GET /metricsx HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0),
            0u);
  EXPECT_EQ(Exchange(server_->port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405 ", 0),
            0u);
  std::string head = Exchange(server_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(head.find("cairn_up"), std::string::npos) << "HEAD has no body";
}

TEST_F(MetricsServerTest, OversizedRequestIsRefusedAndServingGoesOn) {
  std::string huge = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(20000, 'a') + "\r\n\r\n";
  EXPECT_EQ(Exchange(server_->port(), huge).rfind("HTTP/1.1 431 ", 0), 0u);
  std::string endless(MetricsServer::kMaxRequestBytes + 1, 'x');  // no end of headers at all
  EXPECT_EQ(Exchange(server_->port(), endless).rfind("HTTP/1.1 431 ", 0), 0u);
  EXPECT_EQ(Exchange(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0),
            0u);
}

TEST_F(MetricsServerTest, GarbageIsAnsweredWith400OrIgnored) {
  const std::string garbage[] = {
      std::string("\0\1\2\3\r\n\r\n", 8),
      "GET\r\n\r\n",
      "GET /metrics\r\n\r\n",
      "GET /metrics HTTP/2.0\r\n\r\n",
      "GET  /metrics HTTP/1.1 extra\r\n\r\n",
      "\r\n\r\n",
  };
  for (const std::string& request : garbage) {
    EXPECT_EQ(Exchange(server_->port(), request).rfind("HTTP/1.1 400 ", 0), 0u) << request;
  }
  // A client that closes before any request line gets nothing, harmlessly.
  EXPECT_EQ(Exchange(server_->port(), "GE", /*close_write=*/true), "");
  EXPECT_EQ(Exchange(server_->port(), "", /*close_write=*/true), "");
  // A complete request line whose client then closes is still served.
  EXPECT_EQ(Exchange(server_->port(), "GET /metrics HTTP/1.0\r\n", true).rfind("HTTP/1.1 200 ", 0),
            0u);
  EXPECT_EQ(Exchange(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0),
            0u);
}

TEST_F(MetricsServerTest, StopIsPromptWhileAClientSendsNothing) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server waits on it now
  auto start = std::chrono::steady_clock::now();
  server_.reset();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  close(fd);
}

TEST_F(MetricsServerTest, AddressInUseIsAnErrorNamingIt) {
  std::string address = "127.0.0.1:" + std::to_string(server_->port());
  auto second = MetricsServer::Start(address, [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(address));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
}

// --- [metrics] in cairn.toml ---------------------------------------------------

class MetricsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = FormatVolume(Vol(), {});
    ASSERT_TRUE(config.ok()) << config.status();
    formatted_ = ConfigText();
  }
  std::string Vol() { return dir_.path() + "/vol"; }
  // The file as format wrote it, plus `text`.
  void FormattedPlus(const std::string& text) {
    std::ofstream(Vol() + "/cairn.toml", std::ios::trunc) << formatted_ << text;
  }
  std::string ConfigText() {
    std::ifstream in(Vol() + "/cairn.toml");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  TempDir dir_;
  std::string formatted_;
};

TEST_F(MetricsConfigTest, OffByDefaultWithACommentedExample) {
  auto loaded = LoadVolumeConfig(Vol());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->metrics.listen, "");
  EXPECT_THAT(ConfigText(), HasSubstr("# [metrics]\n# listen = \"127.0.0.1:9464\"\n"));
}

TEST_F(MetricsConfigTest, ListenIsReadAndWrittenBack) {
  FormattedPlus("[metrics]\nlisten = \"127.0.0.1:9464\"\n");
  auto loaded = LoadVolumeConfig(Vol());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->metrics.listen, "127.0.0.1:9464");
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *loaded).ok());
  EXPECT_THAT(ConfigText(), HasSubstr("\n[metrics]\nlisten = '127.0.0.1:9464'\n"));
  auto again = LoadVolumeConfig(Vol());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->metrics.listen, "127.0.0.1:9464");
  // Turned off again, the section goes back to a comment.
  again->metrics.listen = "";
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *again).ok());
  EXPECT_THAT(ConfigText(), HasSubstr("# [metrics]\n"));
  EXPECT_EQ(LoadVolumeConfig(Vol())->metrics.listen, "");
}

TEST_F(MetricsConfigTest, GoodAddressesAreAccepted) {
  for (const char* listen : {"127.0.0.1:9464", "0.0.0.0:65535", "[::1]:9464", "localhost:1", ""}) {
    FormattedPlus(std::string("[metrics]\nlisten = \"") + listen + "\"\n");
    auto loaded = LoadVolumeConfig(Vol());
    ASSERT_TRUE(loaded.ok()) << listen << ": " << loaded.status();
    EXPECT_EQ(loaded->metrics.listen, listen);
  }
  absl::StatusOr<ListenAddress> v6 = ParseListenAddress("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(ParseListenAddress("localhost:9")->host, "127.0.0.1");
}

TEST_F(MetricsConfigTest, BadValuesAreRefusedNamingFileAndKey) {
  const std::string bad_lines[] = {
      "listen = \"9464\"",            // no host
      "listen = \"127.0.0.1\"",       // no port
      "listen = \"127.0.0.1:\"",
      "listen = \"127.0.0.1:65536\"",  // port out of range
      "listen = \"127.0.0.1:0\"",
      "listen = \"127.0.0.1:-1\"",
      "listen = \"127.0.0.1:99999999999\"",
      "listen = \"999.0.0.1:80\"",
      "listen = \"example.com:80\"",   // names would need a resolver at mount
      "listen = \"::1:80\"",           // IPv6 needs brackets
      "listen = \"[::1:80\"",
      "listen = 9464",                 // not a string
  };
  for (const std::string& line : bad_lines) {
    FormattedPlus("[metrics]\n" + line + "\n");
    auto loaded = LoadVolumeConfig(Vol());
    ASSERT_FALSE(loaded.ok()) << line;
    std::string message(loaded.status().message());
    EXPECT_THAT(message, HasSubstr("cairn.toml")) << line;
    EXPECT_THAT(message, HasSubstr("[metrics] key 'listen'")) << line;
  }
  FormattedPlus("[metrics]\nport = 9464\n");
  auto unknown = LoadVolumeConfig(Vol());
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("[metrics] key 'port'"));
  FormattedPlus("metrics = \"127.0.0.1:9464\"\n");
  auto not_table = LoadVolumeConfig(Vol());
  EXPECT_FALSE(not_table.ok());
}

}  // namespace
}  // namespace cairn

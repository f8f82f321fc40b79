// The S3 frontend's HTTP side over a volume in memory, spoken to with raw
// HTTP on 127.0.0.1 (signed with cairn's own SigV4 client code) and over
// TLS with certificates made by the test, and the [s3] section of
// cairn.toml.
#include "frontend/s3_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "backend/config/config.h"
#include "backend/s3/sigv4.h"
#include "backend/volume/volume.h"
#include "fs/mounted_volume.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/loopback.h"
#include "tests/support/mem_env.h"
#include "tests/support/temp_dir.h"

namespace cairn::frontend {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kVolumeDir[] = "/vol";

class S3ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    io_ = Io{&env_, &clock_, &buckets_};
    env_.SetCapacity(256 << 20);
    ASSERT_TRUE(FormatVolume(kVolumeDir, FormatOptions{}, io_).ok());
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(kVolumeDir, "", &env_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(kVolumeDir, *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    MountedVolume::Options options;
    options.background_flush = false;
    absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
        MountedVolume::Open(*volume_, options);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    mounted_ = std::move(*mounted);
    handler_ = std::make_unique<S3Handler>(mounted_->fs(), S3Handler::Options{});
    keys_ = dir_.path() + "/s3-keys";
    WriteKeys("AKTEST secret-of-the-test 0 0\n", 0600);
  }

  void TearDown() override {
    server_.reset();
    handler_.reset();
    if (mounted_) EXPECT_TRUE(mounted_->Close().ok());
  }

  void WriteKeys(const std::string& text, mode_t mode) {
    std::ofstream(keys_, std::ios::trunc) << text;
    chmod(keys_.c_str(), mode);
  }

  absl::Status Start(S3Server::Options options = {}) {
    options.listen = "127.0.0.1:0";
    options.keys_file = keys_;
    absl::StatusOr<std::unique_ptr<S3Server>> server = S3Server::Start(*handler_, options);
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    port_ = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
    return absl::OkStatus();
  }

  // One signed request's text; `last` asks the server to close after it.
  std::string Signed(const std::string& method, const std::string& path, const std::string& body,
                     bool last, const std::string& secret = "secret-of-the-test",
                     const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    s3::SigningRequest request;
    request.method = method;
    request.host = absl::StrCat("127.0.0.1:", port_);
    request.path = path.substr(0, path.find('?'));
    if (size_t q = path.find('?'); q != std::string::npos) {
      // Names and values here need no decoding.
      for (const std::string& pair :
           std::vector<std::string>(absl::StrSplit(path.substr(q + 1), '&'))) {
        size_t eq = pair.find('=');
        request.query.emplace_back(pair.substr(0, eq),
                                   eq == std::string::npos ? "" : pair.substr(eq + 1));
      }
    }
    request.payload_sha256 = s3::Sha256Hex(body);
    request.amz_date = s3::AmzDate(absl::ToUnixSeconds(absl::Now()));
    request.region = "us-east-1";
    request.headers = extra;
    std::string text = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", request.host, "\r\n");
    for (const auto& [name, value] : s3::SignV4(request, {"AKTEST", secret, ""})) {
      absl::StrAppend(&text, name, ": ", value, "\r\n");
    }
    for (const auto& [name, value] : extra) absl::StrAppend(&text, name, ": ", value, "\r\n");
    absl::StrAppend(&text, "Content-Length: ", body.size(), "\r\n");
    if (last) absl::StrAppend(&text, "Connection: close\r\n");
    return absl::StrCat(text, "\r\n", body);
  }

  FakeClock clock_;
  MemEnv env_{&clock_};
  FakeObjectStoreFactory buckets_;
  Io io_;
  TempDir dir_;
  std::string keys_;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<MountedVolume> mounted_;
  std::unique_ptr<S3Handler> handler_;
  std::unique_ptr<S3Server> server_;
  int port_ = 0;
};

TEST_F(S3ServerTest, OneConnectionServesRequestsOneAfterAnother) {
  ASSERT_TRUE(Start().ok());
  std::string requests = Signed("PUT", "/bucket", "", false) +
                         Signed("PUT", "/bucket/dir/key.txt", "hello, s3", false) +
                         Signed("GET", "/bucket/dir/key.txt", "", false) +
                         Signed("GET", "/bucket?list-type=2", "", true);
  std::optional<std::string> answer = LoopbackExchange(port_, requests);
  ASSERT_TRUE(answer.has_value());
  // Four answers on the one connection, in order.
  size_t count = 0;
  for (size_t at = 0; (at = answer->find("HTTP/1.1 200", at)) != std::string::npos; ++at) ++count;
  EXPECT_EQ(count, 4u) << *answer;
  EXPECT_THAT(*answer, HasSubstr("\r\n\r\nhello, s3"));
  EXPECT_THAT(*answer, HasSubstr("<Key>dir/key.txt</Key>"));
  EXPECT_EQ(server_->stats().requests, 4u);
}

TEST_F(S3ServerTest, ABadSignatureIsRefusedBeforeTheBodyIsRead) {
  ASSERT_TRUE(Start().ok());
  ASSERT_THAT(*LoopbackExchange(port_, Signed("PUT", "/bucket", "", true)),
              HasSubstr("HTTP/1.1 200"));
  // The client waits for 100 Continue, which a refused request never gets.
  std::string put = Signed("PUT", "/bucket/k", "body that must not land", true, "wrong-secret",
                           {{"Expect", "100-continue"}});
  std::optional<std::string> answer = LoopbackExchange(port_, put);
  ASSERT_TRUE(answer.has_value());
  EXPECT_THAT(*answer, HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(*answer, HasSubstr("<Code>SignatureDoesNotMatch</Code>"));
  EXPECT_THAT(*answer, Not(HasSubstr("100 Continue")));
  absl::StatusOr<InodeAttr> bucket = mounted_->fs().Find(kRootInode, "bucket");
  ASSERT_TRUE(bucket.ok());
  EXPECT_FALSE(mounted_->fs().Find(bucket->ino, "k").ok());
  EXPECT_EQ(server_->stats().client_errors, 1u);
}

TEST_F(S3ServerTest, AChangedBodyIsRefusedAndLeavesNoObject) {
  ASSERT_TRUE(Start().ok());
  ASSERT_THAT(*LoopbackExchange(port_, Signed("PUT", "/bucket", "", true)),
              HasSubstr("HTTP/1.1 200"));
  std::string put = Signed("PUT", "/bucket/k", "the signed body", true);
  put.replace(put.size() - 4, 4, "BODY");  // same length, other bytes
  std::optional<std::string> answer = LoopbackExchange(port_, put);
  ASSERT_TRUE(answer.has_value());
  EXPECT_THAT(*answer, HasSubstr("<Code>XAmzContentSHA256Mismatch</Code>"));
  absl::StatusOr<InodeAttr> bucket = mounted_->fs().Find(kRootInode, "bucket");
  EXPECT_FALSE(mounted_->fs().Find(bucket->ino, "k").ok());
}

TEST_F(S3ServerTest, AChecksumHeaderIsCheckedAgainstTheBody) {
  ASSERT_TRUE(Start().ok());
  ASSERT_THAT(*LoopbackExchange(port_, Signed("PUT", "/bucket", "", true)),
              HasSubstr("HTTP/1.1 200"));
  // CRC32 of "hello world" is 0x0d4a1185; CRC32C 0xc99465aa.
  std::optional<std::string> good = LoopbackExchange(
      port_, Signed("PUT", "/bucket/ok", "hello world", true, "secret-of-the-test",
                    {{"x-amz-checksum-crc32", "DUoRhQ=="}}));
  EXPECT_THAT(*good, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(*good, HasSubstr("x-amz-checksum-crc32: DUoRhQ=="));
  std::optional<std::string> bad = LoopbackExchange(
      port_, Signed("PUT", "/bucket/bad", "hello world", true, "secret-of-the-test",
                    {{"x-amz-checksum-crc32c", "DUoRhQ=="}}));
  EXPECT_THAT(*bad, HasSubstr("<Code>BadDigest</Code>"));
  // CRC64NVME of "hello world" is 0x8d29d5c3f6ea8ebe.
  std::optional<std::string> good64 = LoopbackExchange(
      port_, Signed("PUT", "/bucket/ok64", "hello world", true, "secret-of-the-test",
                    {{"x-amz-checksum-crc64nvme", "jSnVw/bqjr4="}}));
  EXPECT_THAT(*good64, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(*good64, HasSubstr("x-amz-checksum-crc64nvme: jSnVw/bqjr4="));
  std::optional<std::string> bad64 = LoopbackExchange(
      port_, Signed("PUT", "/bucket/bad64", "hello world!", true, "secret-of-the-test",
                    {{"x-amz-checksum-crc64nvme", "jSnVw/bqjr4="}}));
  EXPECT_THAT(*bad64, HasSubstr("<Code>BadDigest</Code>"));
  absl::StatusOr<InodeAttr> bucket = mounted_->fs().Find(kRootInode, "bucket");
  EXPECT_TRUE(mounted_->fs().Find(bucket->ino, "ok").ok());
  EXPECT_FALSE(mounted_->fs().Find(bucket->ino, "bad").ok());
  EXPECT_TRUE(mounted_->fs().Find(bucket->ino, "ok64").ok());
  EXPECT_FALSE(mounted_->fs().Find(bucket->ino, "bad64").ok());
}

TEST_F(S3ServerTest, ASilentConnectionIsClosedAfterTheIdleTimeout) {
  S3Server::Options options;
  options.idle_timeout_seconds = 1;
  ASSERT_TRUE(Start(options).ok());
  // Nothing at all, and a request head left unfinished: both hold a thread
  // until the timeout.
  for (const std::string& sent : {std::string(), std::string("GET /bucket HTTP/1.1\r\n")}) {
    absl::Time start = absl::Now();
    std::optional<std::string> answer = LoopbackExchange(port_, sent);
    ASSERT_TRUE(answer.has_value());
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "still open after the idle timeout";
  }
  EXPECT_THAT(*LoopbackExchange(port_, Signed("PUT", "/bucket", "", true)),
              HasSubstr("HTTP/1.1 200"));
}

TEST_F(S3ServerTest, AnUnsafeOrMissingKeysFileRefusesTheStart) {
  WriteKeys("AKTEST secret 0 0\n", 0644);
  absl::Status started = Start();
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr(keys_));
  EXPECT_THAT(std::string(started.message()), HasSubstr("chmod"));
  std::remove(keys_.c_str());
  started = Start();
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr(keys_));
}

// --- TLS ---------------------------------------------------------------------

// A self-signed certificate for 127.0.0.1 and its private key, as PEM.
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
};

TestCertificate MakeCertificate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, "IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(cert, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<size_t>(size));
    BIO_free(bio);
    return text;
  };
  TestCertificate made;
  made.cert_pem = pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert); });
  made.key_pem = pem([&](BIO* bio) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  X509_free(cert);
  EVP_PKEY_free(key);
  return made;
}

// Sends `request` over TLS to 127.0.0.1:port, trusting only the
// certificate in `ca_file`, and returns what the server answers until it
// closes (at most 10 s); nullopt if there was no TLS session.
// `max_version` caps the version the client offers.
std::optional<std::string> TlsExchange(int port, const std::string& request,
                                       const std::string& ca_file, int max_version = 0) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (max_version != 0) {
    // Old versions need the weak algorithms OpenSSL no longer allows.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::optional<std::string> answer;
  SSL* ssl = SSL_new(ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1) {
    size_t written = 0;
    if (request.empty() || SSL_write_ex(ssl, request.data(), request.size(), &written) == 1) {
      answer.emplace();
      char buffer[8192];
      size_t got = 0;
      while (SSL_read_ex(ssl, buffer, sizeof buffer, &got) == 1) answer->append(buffer, got);
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return answer;
}

class S3TlsServerTest : public S3ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(S3ServerTest::SetUp());
    cert_ = dir_.path() + "/cert.pem";
    key_ = dir_.path() + "/key.pem";
    TestCertificate made = MakeCertificate();
    WriteFile(cert_, made.cert_pem, 0644);
    WriteFile(key_, made.key_pem, 0600);
  }
  static void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path, std::ios::trunc) << text;
    chmod(path.c_str(), mode);
  }
  absl::Status StartTls(S3Server::Options options = {}) {
    options.tls_cert_file = cert_;
    options.tls_key_file = key_;
    return Start(options);
  }
  std::string cert_;
  std::string key_;
};

TEST_F(S3TlsServerTest, SignedRequestsOverTlsAreServed) {
  ASSERT_TRUE(StartTls().ok());
  EXPECT_EQ(server_->url(), "https://" + server_->address());
  std::string requests = Signed("PUT", "/bucket", "", false) +
                         Signed("PUT", "/bucket/key.txt", "over tls", false) +
                         Signed("GET", "/bucket/key.txt", "", true);
  std::optional<std::string> answer = TlsExchange(port_, requests, cert_);
  ASSERT_TRUE(answer.has_value()) << "no TLS session";
  size_t count = 0;
  for (size_t at = 0; (at = answer->find("HTTP/1.1 200", at)) != std::string::npos; ++at) ++count;
  EXPECT_EQ(count, 3u) << *answer;
  EXPECT_THAT(*answer, HasSubstr("\r\n\r\nover tls"));
  S3ServerStats stats = server_->stats();
  EXPECT_TRUE(stats.tls);
  EXPECT_EQ(stats.requests, 3u);
  EXPECT_EQ(stats.tls_handshake_failures, 0u);
}

TEST_F(S3TlsServerTest, PlainHttpIsToldToUseHttpsAndServingGoesOn) {
  ASSERT_TRUE(StartTls().ok());
  std::optional<std::string> plain = LoopbackExchange(port_, Signed("PUT", "/bucket", "", true));
  ASSERT_TRUE(plain.has_value());
  EXPECT_THAT(*plain, HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(*plain, HasSubstr("use https://" + server_->address()));
  // Neither HTTP nor TLS: the connection is closed, nothing answered.
  std::optional<std::string> junk = LoopbackExchange(port_, std::string(300, '\x07'));
  ASSERT_TRUE(junk.has_value());
  EXPECT_EQ(*junk, "");
  absl::StatusOr<InodeAttr> bucket = mounted_->fs().Find(kRootInode, "bucket");
  EXPECT_FALSE(bucket.ok()) << "a plain request was served";
  EXPECT_THAT(*TlsExchange(port_, Signed("PUT", "/bucket", "", true), cert_),
              HasSubstr("HTTP/1.1 200"));
  EXPECT_EQ(server_->stats().tls_handshake_failures, 2u);
}

TEST_F(S3TlsServerTest, AHandshakeNotFinishedInTimeIsGivenUp) {
  S3Server::Options options;
  options.handshake_timeout_seconds = 1;
  ASSERT_TRUE(StartTls(options).ok());
  // A TLS record header, then silence.
  absl::Time start = absl::Now();
  std::optional<std::string> answer = LoopbackExchange(port_, std::string("\x16\x03\x01", 3));
  ASSERT_TRUE(answer.has_value());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the handshake had no deadline";
  EXPECT_EQ(server_->stats().tls_handshake_failures, 1u);
}

TEST_F(S3TlsServerTest, VersionsBeforeTls12AreRefused) {
  ASSERT_TRUE(StartTls().ok());
  EXPECT_FALSE(TlsExchange(port_, Signed("PUT", "/bucket", "", true), cert_, TLS1_1_VERSION)
                   .has_value());
  EXPECT_TRUE(TlsExchange(port_, Signed("PUT", "/bucket", "", true), cert_, TLS1_2_VERSION)
                  .has_value());
  EXPECT_EQ(server_->stats().tls_handshake_failures, 1u);
}

TEST_F(S3TlsServerTest, AKeyOfAnotherCertificateRefusesTheStart) {
  WriteFile(key_, MakeCertificate().key_pem, 0600);
  absl::Status started = StartTls();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr("does not go with the certificate"));
  EXPECT_THAT(std::string(started.message()), HasSubstr(key_));
  EXPECT_THAT(std::string(started.message()), HasSubstr(cert_));
}

TEST_F(S3TlsServerTest, AKeyFileReadableByOthersRefusesTheStart) {
  chmod(key_.c_str(), 0640);
  absl::Status started = StartTls();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr("chmod 600 " + key_));
}

TEST_F(S3TlsServerTest, MissingOrNonPemFilesRefuseTheStart) {
  WriteFile(cert_, "not a certificate\n", 0644);
  absl::Status started = StartTls();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr("[s3] tls_cert: " + cert_));
  EXPECT_THAT(std::string(started.message()), HasSubstr("not a PEM certificate chain"));

  TestCertificate made = MakeCertificate();
  WriteFile(cert_, made.cert_pem, 0644);
  WriteFile(key_, made.cert_pem, 0600);  // a certificate where the key should be
  started = StartTls();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr("[s3] tls_key: " + key_));

  std::remove(key_.c_str());
  started = StartTls();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()), HasSubstr("cannot read " + key_));
}

// --- [s3] in cairn.toml -----------------------------------------------------

class S3ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
    std::ifstream in(Vol() + "/cairn.toml");
    formatted_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string Vol() { return dir_.path() + "/vol"; }
  absl::StatusOr<VolumeConfig> LoadWith(const std::string& text) {
    std::ofstream(Vol() + "/cairn.toml", std::ios::trunc) << formatted_ << text;
    return LoadVolumeConfig(Vol());
  }
  TempDir dir_;
  std::string formatted_;
};

TEST_F(S3ConfigTest, OffByDefaultAndReadBackAsWritten) {
  EXPECT_THAT(formatted_, HasSubstr("# [s3]\n# listen = \"127.0.0.1:9000\"\n"));
  absl::StatusOr<VolumeConfig> plain = LoadWith("");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->s3.listen, "");
  EXPECT_EQ(plain->s3.KeysFile("/v"), "/v/s3-keys");

  absl::StatusOr<VolumeConfig> on = LoadWith(
      "[s3]\nlisten = \"127.0.0.1:9000\"\nkeys_file = \"/etc/k\"\nregion = \"eu-west-1\"\n");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->s3.listen, "127.0.0.1:9000");
  EXPECT_EQ(on->s3.KeysFile("/v"), "/etc/k");
  EXPECT_EQ(on->s3.region, "eu-west-1");
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *on).ok());
  absl::StatusOr<VolumeConfig> again = LoadVolumeConfig(Vol());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->s3.listen, "127.0.0.1:9000");
  EXPECT_EQ(again->s3.keys_file, "/etc/k");
  EXPECT_EQ(again->s3.region, "eu-west-1");
}

TEST_F(S3ConfigTest, ListeningBeyondLoopbackMustBeAskedFor) {
  absl::StatusOr<VolumeConfig> open = LoadWith("[s3]\nlisten = \"0.0.0.0:9000\"\n");
  ASSERT_FALSE(open.ok());
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("[s3] key 'listen'"));
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("allow_insecure"));
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("tls_cert"));
  EXPECT_TRUE(LoadWith("[s3]\nlisten = \"0.0.0.0:9000\"\nallow_insecure = true\n").ok());
  EXPECT_TRUE(LoadWith("[s3]\nlisten = \"[::1]:9000\"\n").ok());
  EXPECT_TRUE(LoadWith("[s3]\nlisten = \"localhost:9000\"\n").ok());
}

TEST_F(S3ConfigTest, TlsCertAndKeyGoTogether) {
  absl::StatusOr<VolumeConfig> cert_only =
      LoadWith("[s3]\nlisten = \"127.0.0.1:9000\"\ntls_cert = \"cert.pem\"\n");
  ASSERT_FALSE(cert_only.ok());
  EXPECT_THAT(std::string(cert_only.status().message()), HasSubstr("[s3] key 'tls_cert'"));
  EXPECT_THAT(std::string(cert_only.status().message()), HasSubstr("tls_key is not"));
  absl::StatusOr<VolumeConfig> key_only =
      LoadWith("[s3]\nlisten = \"127.0.0.1:9000\"\ntls_key = \"/etc/k.pem\"\n");
  ASSERT_FALSE(key_only.ok());
  EXPECT_THAT(std::string(key_only.status().message()), HasSubstr("[s3] key 'tls_key'"));
  EXPECT_THAT(std::string(key_only.status().message()), HasSubstr("tls_cert is not"));
}

TEST_F(S3ConfigTest, TlsFilesResolveInTheVolumeDirAndAllowAnyAddress) {
  absl::StatusOr<VolumeConfig> tls = LoadWith(
      "[s3]\nlisten = \"0.0.0.0:9443\"\ntls_cert = \"cert.pem\"\ntls_key = \"/etc/k.pem\"\n");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->s3.tls());
  EXPECT_EQ(tls->s3.TlsCertFile("/v"), "/v/cert.pem");
  EXPECT_EQ(tls->s3.TlsKeyFile("/v"), "/etc/k.pem");
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *tls).ok());
  absl::StatusOr<VolumeConfig> again = LoadVolumeConfig(Vol());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->s3.tls_cert, "cert.pem");
  EXPECT_EQ(again->s3.tls_key, "/etc/k.pem");
  EXPECT_FALSE(again->s3.allow_insecure);

  absl::StatusOr<VolumeConfig> plain = LoadWith("[s3]\nlisten = \"127.0.0.1:9000\"\n");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->s3.tls());
  EXPECT_EQ(plain->s3.TlsCertFile("/v"), "");
}

TEST_F(S3ConfigTest, BadValuesAreRefusedNamingTheKey) {
  for (const char* bad : {"[s3]\nlisten = \"127.0.0.1\"\n", "[s3]\nlisten = \"127.0.0.1:0\"\n",
                          "[s3]\nkeys_file = \"relative\"\n", "[s3]\nregion = \"\"\n",
                          "[s3]\nallow_insecure = \"yes\"\n", "[s3]\ntls_cert = \"/x\"\n"}) {
    absl::StatusOr<VolumeConfig> loaded = LoadWith(bad);
    EXPECT_FALSE(loaded.ok()) << bad;
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("[s3] key")) << bad;
  }
}

}  // namespace
}  // namespace cairn::frontend

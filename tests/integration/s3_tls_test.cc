// The S3 frontend of a real mount over TLS: a certificate made with the
// openssl command, named in [s3] relative to the volume directory, and
// Debian's boto3 verifying it. What the mount refuses to serve with is
// refused at mount.
#include <fstream>
#include <sstream>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/loopback.h"

namespace cairn_it {
namespace {

constexpr char kAccessKey[] = "CAIRNTLSKEY";
constexpr char kSecretKey[] = "cairn-tls-secret-0123456789";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class S3TlsTest : public MountTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MountTest::SetUp());
    if (NativeMode()) GTEST_SKIP() << "the S3 frontend is cairn's";
    if (Run("command -v openssl").exit_code != 0) GTEST_SKIP() << "no openssl command";
    ASSERT_NO_FATAL_FAILURE(Unmount());
    port_ = cairn::FreeLoopbackPort();
    ASSERT_NE(port_, 0);
    endpoint_ = "https://127.0.0.1:" + std::to_string(port_);
    cert_ = volume_dir_ + "/s3-cert.pem";
    key_ = volume_dir_ + "/s3-key.pem";
    std::string keys = volume_dir_ + "/s3-keys";
    CommandResult setup = Run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + Quote(key_) +
        " -out " + Quote(cert_) + " 2>&1 && chmod 600 " + Quote(key_) + " && printf '%s\\n' " +
        Quote(std::string(kAccessKey) + " " + kSecretKey + " 0 0") + " > " + Quote(keys) +
        " && chmod 600 " + Quote(keys) + " && printf '%s\\n' '[s3]' " +
        Quote("listen = \"127.0.0.1:" + std::to_string(port_) + "\"") +
        " 'tls_cert = \"s3-cert.pem\"' 'tls_key = \"s3-key.pem\"' >> " +
        Quote(volume_dir_ + "/cairn.toml"));
    ASSERT_EQ(setup.exit_code, 0) << Brief(setup);
  }

  // Debian's boto3 against the endpoint, trusting `ca_bundle` alone.
  CommandResult Boto3(const std::string& script, const std::string& ca_bundle) {
    std::string prelude =
        "import boto3, botocore, sys\n"
        "from botocore.config import Config\n"
        "s3 = boto3.client('s3', endpoint_url='" + endpoint_ + "', verify='" + ca_bundle +
        "', aws_access_key_id='" + kAccessKey + "', aws_secret_access_key='" + kSecretKey +
        "', region_name='us-east-1', "
        "config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}, "
        "retries={'max_attempts': 1}))\n";
    std::string file = work_dir_ + "/script.py";
    std::ofstream(file) << prelude << script;
    return Run("env -u AWS_CA_BUNDLE /usr/bin/python3 " + Quote(file), 120);
  }

  int port_ = 0;
  std::string endpoint_;
  std::string cert_;
  std::string key_;
};

TEST_F(S3TlsTest, Boto3PutsAndGetsOverHttpsAndTheMountSeesIt) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult put = Boto3(
      "s3.create_bucket(Bucket='secure')\n"
      "s3.put_object(Bucket='secure', Key='dir/note.txt', Body=b'sent over tls\\n')\n"
      "print(s3.get_object(Bucket='secure', Key='dir/note.txt')['Body'].read().decode())\n",
      cert_);
  ASSERT_EQ(put.exit_code, 0) << Brief(put);
  EXPECT_EQ(put.output, "sent over tls\n\n");
  EXPECT_EQ(ReadAll(P("secure/dir/note.txt")), "sent over tls\n");

  // A client that does not trust the certificate gets no answer.
  std::string other = work_dir_ + "/other.pem";
  ASSERT_EQ(Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                "-days 2 -subj /CN=127.0.0.1 -keyout /dev/null -out " + Quote(other) + " 2>&1")
                .exit_code, 0);
  CommandResult untrusted =
      Boto3("s3.get_object(Bucket='secure', Key='dir/note.txt')\n", other);
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_NE(untrusted.output.find("CERTIFICATE_VERIFY_FAILED"), std::string::npos)
      << Brief(untrusted);

  // cairn status names the https:// endpoint (the daemon rewrites its
  // figures every 2 s).
  ASSERT_TRUE(WaitFor([&] {
    CommandResult status = Cairn("status " + Quote(volume_dir_));
    return status.output.find("s3:         serving " + endpoint_ + ":") != std::string::npos &&
           status.output.find(": 0 requests") == std::string::npos;
  }, 10)) << Brief(Cairn("status " + Quote(volume_dir_)));
  CommandResult json = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_NE(json.output.find("\"tls\": true"), std::string::npos) << json.output;
}

TEST_F(S3TlsTest, AKeyReadableByOthersRefusesTheMount) {
  ASSERT_EQ(Run("chmod 644 " + Quote(key_)).exit_code, 0);
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + Quote(mount_dir_), 60);
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_NE(mount.output.find("chmod 600 " + key_), std::string::npos) << Brief(mount);
  EXPECT_FALSE(IsMounted(mount_dir_));
  // Fixed, it mounts.
  ASSERT_EQ(Run("chmod 600 " + Quote(key_)).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

}  // namespace
}  // namespace cairn_it

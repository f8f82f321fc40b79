// `cairn serve s3`: a mounted volume's daemon starts serving S3 when asked;
// an unmounted volume gets a daemon without a mount, which holds the volume
// as a mount does (cairn mount refuses naming it) and stops with cairn
// umount VOLUME_DIR, having stored what it was sent.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

constexpr char kAccessKey[] = "SERVEKEY";
constexpr char kSecretKey[] = "serve-secret-0123456789";

class S3ServeTest : public MountTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MountTest::SetUp());
    if (NativeMode()) GTEST_SKIP() << "cairn serve s3 is cairn's";
    endpoint_ = "http://127.0.0.1:" + std::to_string(port_);
    // No [s3] listen in cairn.toml: the address comes from --listen.
    std::string keys = volume_dir_ + "/s3-keys";
    CommandResult setup = Run("printf '%s\\n' " +
                              Quote(std::string(kAccessKey) + " " + kSecretKey + " 0 0") +
                              " > " + Quote(keys) + " && chmod 600 " + Quote(keys));
    ASSERT_EQ(setup.exit_code, 0) << Brief(setup);
  }

  // Runs `script` with Debian's boto3 and a client `s3` for the endpoint.
  CommandResult Boto3(const std::string& script) {
    std::string file = work_dir_ + "/script.py";
    std::ofstream(file)
        << "import boto3, sys\n"
           "from botocore.config import Config\n"
           "s3 = boto3.client('s3', endpoint_url='" << endpoint_
        << "', aws_access_key_id='" << kAccessKey << "', aws_secret_access_key='" << kSecretKey
        << "', region_name='us-east-1', config=Config(s3={'addressing_style': 'path'}, "
           "retries={'max_attempts': 1}))\n"
        << script;
    return Run("/usr/bin/python3 " + Quote(file), 120);
  }

  std::string Listen() const { return "127.0.0.1:" + std::to_string(port_); }

  int port_ = FreeLoopbackPort();
  std::string endpoint_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(S3ServeTest, UnmountedVolumeIsServedWithoutAMountUntilUmount) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult serve = Cairn("serve s3 " + Quote(volume_dir_) + " --listen " + Listen());
  ASSERT_EQ(serve.exit_code, 0) << Brief(serve);
  EXPECT_NE(serve.output.find("at " + endpoint_), std::string::npos) << serve.output;
  EXPECT_FALSE(IsMounted(mount_dir_));

  CommandResult put = Boto3(
      "s3.create_bucket(Bucket='headless')\n"
      "s3.put_object(Bucket='headless', Key='docs/a.txt', Body=b'served without a mount')\n"
      "print(s3.get_object(Bucket='headless', Key='docs/a.txt')['Body'].read().decode())\n");
  ASSERT_EQ(put.exit_code, 0) << Brief(put);
  EXPECT_NE(put.output.find("served without a mount"), std::string::npos) << put.output;

  // status says who holds the volume and where S3 is served.
  CommandResult json = Cairn("status --json " + Quote(volume_dir_));
  ASSERT_EQ(json.exit_code, 0) << Brief(json);
  EXPECT_EQ(JsonField(json.output, "mounted"), "false") << json.output;
  EXPECT_EQ(JsonField(json.output, "s3_only"), "true") << json.output;
  const std::optional<std::string> pid = JsonField(json.output, "pid");
  ASSERT_TRUE(pid.has_value()) << json.output;
  EXPECT_TRUE(WaitFor([&] {
    return Cairn("status " + Quote(volume_dir_)).output.find("s3:         serving " +
                                                             endpoint_) != std::string::npos;
  }, 10)) << Brief(Cairn("status " + Quote(volume_dir_)));

  // The volume is held: a mount is refused, naming the daemon.
  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + Quote(mount_dir_));
  EXPECT_EQ(mount.exit_code, 1) << Brief(mount);
  EXPECT_NE(mount.output.find("cairn serve s3"), std::string::npos) << mount.output;
  EXPECT_NE(mount.output.find("process " + *pid), std::string::npos) << mount.output;
  EXPECT_NE(mount.output.find("cairn umount " + volume_dir_), std::string::npos)
      << mount.output;
  EXPECT_FALSE(IsMounted(mount_dir_));

  // Asked again, the running daemon answers where it serves; another
  // address is refused.
  CommandResult again = Cairn("serve s3 " + Quote(volume_dir_));
  EXPECT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_NE(again.output.find(endpoint_), std::string::npos) << again.output;
  CommandResult other =
      Cairn("serve s3 " + Quote(volume_dir_) + " --listen 127.0.0.1:" +
            std::to_string(FreeLoopbackPort()));
  EXPECT_EQ(other.exit_code, 1) << Brief(other);
  EXPECT_NE(other.output.find("already serves S3 at " + endpoint_), std::string::npos)
      << other.output;

  // umount of the volume directory stops it after storing what it got.
  CommandResult stop = Cairn("umount " + Quote(volume_dir_));
  ASSERT_EQ(stop.exit_code, 0) << Brief(stop);
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(std::stoi(*pid))));
  CommandResult after = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_EQ(JsonField(after.output, "s3_only"), "false") << after.output;
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadAll(P("headless/docs/a.txt")), "served without a mount");
}

TEST_F(S3ServeTest, SigtermStopsTheDaemonWithEverythingStored) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult serve = Cairn("serve s3 " + Quote(volume_dir_) + " --listen " + Listen());
  ASSERT_EQ(serve.exit_code, 0) << Brief(serve);
  CommandResult put = Boto3(
      "s3.create_bucket(Bucket='stopping')\n"
      "s3.put_object(Bucket='stopping', Key='big', Body=bytes(range(256)) * 40000)\n");
  ASSERT_EQ(put.exit_code, 0) << Brief(put);
  std::optional<std::string> pid =
      JsonField(Cairn("status --json " + Quote(volume_dir_)).output, "pid");
  ASSERT_TRUE(pid.has_value());
  const pid_t daemon = static_cast<pid_t>(std::stoi(*pid));
  ASSERT_EQ(kill(daemon, SIGTERM), 0);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(daemon); }, 60));
  // A clean stop: fsck finds nothing, and the object is whole.
  CommandResult fsck = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(fsck.exit_code, 0) << Brief(fsck);
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  ASSERT_EQ(stat(P("stopping/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 256 * 40000);
}

TEST_F(S3ServeTest, MountedVolumeStartsServingWhenAsked) {
  // Nothing serves S3 yet.
  CommandResult refused = Boto3("s3.list_buckets()\n");
  EXPECT_NE(refused.exit_code, 0);
  // The kernel caches that the name is absent; the S3 PUT must undo that.
  ASSERT_EQ(Run("mkdir " + QP("live") + " && test ! -e " + QP("live/new.txt")).exit_code, 0);

  CommandResult serve = Cairn("serve s3 " + Quote(mount_dir_) + " --listen " + Listen());
  ASSERT_EQ(serve.exit_code, 0) << Brief(serve);
  EXPECT_NE(serve.output.find("mounted at " + mount_dir_), std::string::npos) << serve.output;
  EXPECT_NE(serve.output.find(endpoint_), std::string::npos) << serve.output;

  CommandResult put = Boto3("s3.put_object(Bucket='live', Key='new.txt', Body=b'via S3')\n");
  ASSERT_EQ(put.exit_code, 0) << Brief(put);
  EXPECT_EQ(ReadAll(P("live/new.txt")), "via S3");
  ASSERT_EQ(Run("printf 'via the mount' > " + QP("live/m.txt")).exit_code, 0);
  CommandResult get = Boto3(
      "print(s3.get_object(Bucket='live', Key='m.txt')['Body'].read().decode())\n");
  ASSERT_EQ(get.exit_code, 0) << Brief(get);
  EXPECT_NE(get.output.find("via the mount"), std::string::npos) << get.output;

  // Through the volume directory too; the same address is no change.
  CommandResult again =
      Cairn("serve s3 " + Quote(volume_dir_) + " --listen " + Listen());
  EXPECT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_TRUE(WaitFor([&] {
    return Cairn("status " + Quote(mount_dir_)).output.find("s3:         serving " +
                                                            endpoint_) != std::string::npos;
  }, 10)) << Brief(Cairn("status " + Quote(mount_dir_)));

  // Serving ends with the mount.
  ASSERT_NO_FATAL_FAILURE(Unmount());
  EXPECT_NE(Boto3("s3.list_buckets()\n").exit_code, 0);
}

TEST_F(S3ServeTest, BadRequestsAreRefusedWithWhatToDo) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult no_address = Cairn("serve s3 " + Quote(volume_dir_));
  EXPECT_EQ(no_address.exit_code, 2) << Brief(no_address);
  EXPECT_NE(no_address.output.find("--listen HOST:PORT"), std::string::npos)
      << no_address.output;
  CommandResult beyond = Cairn("serve s3 " + Quote(volume_dir_) + " --listen 192.0.2.1:9000");
  EXPECT_EQ(beyond.exit_code, 2) << Brief(beyond);
  EXPECT_NE(beyond.output.find("allow_insecure"), std::string::npos) << beyond.output;
  CommandResult what = Cairn("serve nfs " + Quote(volume_dir_));
  EXPECT_EQ(what.exit_code, 2) << Brief(what);
  CommandResult not_volume =
      Cairn("serve s3 " + Quote(work_dir_) + " --listen " + Listen());
  EXPECT_EQ(not_volume.exit_code, 1) << Brief(not_volume);
  // Nothing was started by any of them.
  CommandResult status = Cairn("status --json " + Quote(volume_dir_));
  EXPECT_EQ(JsonField(status.output, "s3_only"), "false") << status.output;

  // A taken port refuses to start and leaves the volume free.
  CommandResult taken_serve = Cairn("serve s3 " + Quote(volume_dir_) + " --listen " + Listen());
  ASSERT_EQ(taken_serve.exit_code, 0) << Brief(taken_serve);
  ASSERT_EQ(Cairn("umount " + Quote(volume_dir_)).exit_code, 0);
  CommandResult blocker = Run("python3 -c \"import socket,time; s=socket.socket(); "
                              "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                              "s.bind(('127.0.0.1', " + std::to_string(port_) + ")); "
                              "s.listen(); time.sleep(30)\" >/dev/null 2>&1 & echo $!");
  ASSERT_EQ(blocker.exit_code, 0);
  const pid_t blocker_pid = static_cast<pid_t>(std::stoi(blocker.output));
  ASSERT_TRUE(WaitFor([&] {
    return Run("ss -ltn | grep -q ':" + std::to_string(port_) + " '").exit_code == 0;
  }, 10));
  CommandResult busy = Cairn("serve s3 " + Quote(volume_dir_) + " --listen " + Listen());
  kill(blocker_pid, SIGKILL);
  EXPECT_EQ(busy.exit_code, 1) << Brief(busy);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

}  // namespace
}  // namespace cairn_it

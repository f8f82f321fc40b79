// The channel between the commands and the daemon: only the daemon holding
// the volume's lock is believed, and it answers only for its own volume.
#include "daemon/control_channel.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

constexpr char kVolumeId[] = "0123456789abcdef0123456789abcdef";

class ControlChannelTest : public ::testing::Test {
 protected:
  void Start(const std::string& dir) {
    absl::StatusOr<std::unique_ptr<ControlServer>> server = ControlServer::Start(
        dir, kVolumeId,
        [](const std::string& request, const std::function<void(const std::string&)>& reply,
           const std::function<bool()>&) {
          reply("progress {}");
          reply("done {\"echo\": \"" + request + "\"}");
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  std::vector<std::string> Ask(const ControlTarget& target, absl::Status* status) {
    std::vector<std::string> lines;
    *status = ControlRequest(target, "scrub", [&](const std::string& line) {
      lines.push_back(line);
    });
    return lines;
  }
  TempDir dir_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlChannelTest, TheDaemonHoldingTheLockAnswersForItsVolume) {
  ASSERT_NO_FATAL_FAILURE(Start(dir_.path()));
  absl::Status status;
  std::vector<std::string> lines = Ask({dir_.path(), kVolumeId, getpid()}, &status);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(lines, (std::vector<std::string>{"progress {}", "done {\"echo\": \"scrub\"}"}));
}

TEST_F(ControlChannelTest, AnAnswerFromAnyOtherProcessIsNotTrusted) {
  ASSERT_NO_FATAL_FAILURE(Start(dir_.path()));
  absl::Status status;
  std::vector<std::string> lines = Ask({dir_.path(), kVolumeId, getpid() + 1}, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is not the daemon holding the volume"));
  EXPECT_TRUE(lines.empty()) << "nothing it said reaches the command";
}

TEST_F(ControlChannelTest, ARequestForAnotherVolumeIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start(dir_.path()));
  absl::Status status;
  std::vector<std::string> lines =
      Ask({dir_.path(), "ffffffffffffffffffffffffffffffff", getpid()}, &status);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("error this daemon serves volume " + std::string(kVolumeId)));
}

TEST_F(ControlChannelTest, EachVolumeDirectoryHasItsOwnChannel) {
  // Two copies of one volume (a restore beside its original) share the id.
  const std::string copy = dir_.path() + "/copy";
  ASSERT_EQ(mkdir(copy.c_str(), 0700), 0);
  ASSERT_NO_FATAL_FAILURE(Start(dir_.path()));
  absl::Status status;
  Ask({copy, kVolumeId, getpid()}, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable)
      << "no daemon serves the copy, so nothing answers for it: " << status;
}

TEST_F(ControlChannelTest, ALongVolumePathStillHasAChannel) {
  std::string deep = dir_.path();
  while (deep.size() < 150) {
    deep += "/a-rather-long-directory-name";
    ASSERT_EQ(mkdir(deep.c_str(), 0700), 0);
  }
  ASSERT_NO_FATAL_FAILURE(Start(deep));
  absl::Status status;
  Ask({deep, kVolumeId, getpid()}, &status);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(ControlChannelTest, ADaemonThatCannotListenSaysWhy) {
  absl::StatusOr<std::unique_ptr<ControlServer>> server = ControlServer::Start(
      dir_.path() + "/missing", kVolumeId,
      [](const std::string&, const std::function<void(const std::string&)>&,
         const std::function<bool()>&) {});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("/missing"));
}

}  // namespace
}  // namespace cairn

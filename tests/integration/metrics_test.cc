// Prometheus metrics of a real mount: a volume with [metrics] listen on a
// free 127.0.0.1 port, file I/O through the mount, then a scrape of
// http://127.0.0.1:PORT/metrics over a plain socket.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/loopback.h"

namespace cairn_it {
namespace {

// The whole answer to GET `path` from 127.0.0.1:port; "" if nobody listens.
std::string HttpGet(int port, const std::string& path) {
  return cairn::LoopbackExchange(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      .value_or("");
}

// The value of the sample line starting with `series` (name and labels
// exactly as written), or -1 if there is none.
double Sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

class MetricsTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    port_ = cairn::FreeLoopbackPort();
    ASSERT_GT(port_, 0);
    ASSERT_NO_FATAL_FAILURE(Unmount());
    ConfigureMetrics("127.0.0.1:" + std::to_string(port_));
    ASSERT_NO_FATAL_FAILURE(Mount());
  }
  void ConfigureMetrics(const std::string& listen) {
    std::string config = volume_dir_ + "/cairn.toml";
    CommandResult edit = Run("printf '%s\\n' '[metrics]' " + Quote("listen = \"" + listen + "\"") +
                             " >> " + Quote(config));
    ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
  }
  // The metrics once the server answers (it starts just after the mount).
  std::string Scrape() {
    std::string answer;
    WaitFor([&] { return !(answer = HttpGet(port_, "/metrics")).empty(); }, 10);
    return answer;
  }

  int port_ = 0;
};

TEST_F(MetricsTest, ScrapeCountsFileIoThroughTheMount) {
  constexpr int kBytes = 3000000;
  CommandResult io = Run("set -e; head -c " + std::to_string(kBytes) + " /dev/urandom > " +
                         QP("f") + "; sync " + QP("f") + "; echo 3 > /proc/sys/vm/drop_caches; cat " +
                         QP("f") + " > /dev/null; ls " + QP("missing") + " 2>/dev/null || true");
  ASSERT_EQ(io.exit_code, 0) << Brief(io);
  std::string answer = Scrape();
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer.substr(0, 300);
  EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_GT(Sample(answer, "cairn_fuse_requests_total{op=\"write\"}"), 0) << answer;
  EXPECT_GT(Sample(answer, "cairn_fuse_requests_total{op=\"create\"}"), 0);
  EXPECT_GT(Sample(answer, "cairn_fuse_requests_total{op=\"read\"}"), 0);
  EXPECT_GE(Sample(answer, "cairn_written_bytes_total"), kBytes);
  EXPECT_GE(Sample(answer, "cairn_read_bytes_total"), kBytes);
  // fsync (sync FILE) waits for the journal, so it is timed too; +Inf is the count.
  EXPECT_EQ(Sample(answer, "cairn_fuse_request_duration_seconds_bucket{op=\"write\",le=\"+Inf\"}"),
            Sample(answer, "cairn_fuse_request_duration_seconds_count{op=\"write\"}"));
  EXPECT_GT(Sample(answer, "cairn_fuse_request_duration_seconds_count{op=\"fsync\"}"), 0);
  EXPECT_NE(answer.find("# TYPE cairn_fuse_request_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_GE(Sample(answer, "cairn_cache_read_misses_total"), 0);
  EXPECT_GE(Sample(answer, "cairn_cache_dirty_bytes"), 0);
  EXPECT_NE(answer.find("# TYPE cairn_storage_degraded_reads_total counter\n"), std::string::npos);
  EXPECT_GE(Sample(answer, "cairn_storage_repair_queue_blobs"), 0);
  EXPECT_EQ(HttpGet(port_, "/").rfind("HTTP/1.1 404 ", 0), 0u);
}

// The kernel asks for security.capability before a write unless the
// filesystem takes FUSE_HANDLE_KILLPRIV_V2 (fs/fuse_wire.h): then once per
// file, not once per write(2).
TEST_F(MetricsTest, WritesDoNotEachAskForSecurityCapability) {
  CommandResult io = Run("set -e; dd if=/dev/zero of=" + QP("f") +
                         " bs=4k count=2000 status=none; dd if=/dev/zero of=" + QP("f") +
                         " bs=4k count=2000 conv=notrunc status=none");
  ASSERT_EQ(io.exit_code, 0) << Brief(io);
  std::string answer = Scrape();
  double getxattr = Sample(answer, "cairn_fuse_requests_total{op=\"getxattr\"}");
  EXPECT_LT(getxattr, 20) << "4000 write(2) calls";
}

// The sum of every sample of the family `name` (all its label sets).
double SumOf(const std::string& text, const std::string& name) {
  double sum = 0;
  for (size_t at = text.find("\n" + name + "{"); at != std::string::npos;
       at = text.find("\n" + name + "{", at + 1)) {
    size_t space = text.find(' ', at + 1);
    if (space == std::string::npos) break;
    sum += std::strtod(text.c_str() + space + 1, nullptr);
  }
  return sum;
}

// What each metadata operation costs, in FUSE requests the kernel sends and
// namespace commits: one commit each (a rename or unlink used to cost two
// and three: the kernel's write-back of ctime, then the release of the
// unlinked inode, were commits of their own), and no more than the
// requests the kernel needs (with default_permissions and the writeback
// cache: a getattr of the changed directory, the ctime write-back, the
// forget of an unlinked inode).
TEST_F(MetricsTest, MetadataOperationsCostOneCommitEach) {
  constexpr int kFiles = 200;
  ASSERT_EQ(mkdir(P("m").c_str(), 0755), 0);
  auto name = [&](const char* prefix, int i) { return P("m/" + std::string(prefix) + std::to_string(i)); };
  struct Cost {
    double requests, commits;
  };
  auto measure = [&](const std::function<bool(int)>& op) -> Cost {
    std::string before = Scrape();
    for (int i = 0; i < kFiles; ++i) {
      if (!op(i)) {
        ADD_FAILURE() << "operation " << i << ": " << strerror(errno);
        break;
      }
    }
    std::string after = Scrape();
    return Cost{(SumOf(after, "cairn_fuse_requests_total") -
                 SumOf(before, "cairn_fuse_requests_total")) / kFiles,
                (Sample(after, "cairn_namespace_commits_total") -
                 Sample(before, "cairn_namespace_commits_total")) / kFiles};
  };
  Cost create = measure([&](int i) {
    int fd = open(name("f", i).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    return fd >= 0 && close(fd) == 0;
  });
  Cost rename_cost = measure([&](int i) {
    return rename(name("f", i).c_str(), name("g", i).c_str()) == 0;
  });
  Cost chmod_cost = measure([&](int i) { return chmod(name("g", i).c_str(), 0600) == 0; });
  Cost unlink_cost = measure([&](int i) { return unlink(name("g", i).c_str()) == 0; });
  Cost mkdir_cost = measure([&](int i) { return mkdir(name("d", i).c_str(), 0755) == 0; });
  Cost rmdir_cost = measure([&](int i) { return rmdir(name("d", i).c_str()) == 0; });
  // A few commits of background work may fall inside a phase.
  const double kCommitSlack = 1.05;
  EXPECT_LE(create.commits, kCommitSlack);
  EXPECT_LE(rename_cost.commits, kCommitSlack);
  EXPECT_LE(chmod_cost.commits, kCommitSlack);
  EXPECT_LE(unlink_cost.commits, kCommitSlack);
  EXPECT_LE(mkdir_cost.commits, kCommitSlack);
  EXPECT_LE(rmdir_cost.commits, kCommitSlack);
  EXPECT_LE(create.requests, 5.1);       // lookup, getattr(dir), create, flush, release
  EXPECT_LE(rename_cost.requests, 4.1);  // lookup, getattr(dir), rename, setattr
  EXPECT_LE(chmod_cost.requests, 1.1);   // setattr
  EXPECT_LE(unlink_cost.requests, 4.1);  // getattr(dir), unlink, setattr, forget
  EXPECT_LE(mkdir_cost.requests, 3.1);   // lookup, getattr(dir), mkdir
  EXPECT_LE(rmdir_cost.requests, 3.1);   // getattr(dir), rmdir, forget
}

TEST_F(MetricsTest, PortInUseStillMountsWithoutMetrics) {
  ASSERT_NO_FATAL_FAILURE(Unmount());
  // Something else holds the port now.
  int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(holder, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  // In the foreground, so the daemon's log (stderr) can be read.
  std::string log = work_dir_ + "/daemon.log";
  CommandResult started = Run("setsid " + Quote(CairnBinary()) + " mount -f " +
                              Quote(volume_dir_) + " " + QP("") + " > " + Quote(log) +
                              " 2>&1 &");
  ASSERT_EQ(started.exit_code, 0) << Brief(started);
  ASSERT_TRUE(WaitFor([&] { return IsCairnMount(mount_dir_); }, 30))
      << Run("cat " + Quote(log)).output;
  RecordConnection();
  CommandResult io = Run("echo hello > " + QP("f") + " && cat " + QP("f"));
  EXPECT_EQ(io.exit_code, 0) << Brief(io);
  EXPECT_EQ(io.output, "hello\n");
  std::string address = "127.0.0.1:" + std::to_string(port_);
  std::string logged;
  EXPECT_TRUE(WaitFor(
      [&] {
        logged = Run("cat " + Quote(log)).output;
        return logged.find("metrics are not served") != std::string::npos;
      },
      10))
      << logged;
  EXPECT_NE(logged.find("cannot listen on " + address + ": Address already in use"),
            std::string::npos)
      << logged;
  ASSERT_NO_FATAL_FAILURE(Unmount());
  close(holder);
}

}  // namespace
}  // namespace cairn_it

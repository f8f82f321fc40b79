// Crash harness: a seeded write workload (rewrites, in-place overwrites,
// appends, truncates, fsync + rename replacements, unlinks, large files) runs
// in a child process against the mount while the daemon is killed with
// SIGKILL at a random moment. After mounting again:
// - every operation that had returned before the kill is there, exactly
//   (close(2) hands the kernel's cached pages to the daemon, which journals
//   them before it answers, so a daemon crash loses nothing that returned;
//   fsync is not needed for that, only against power loss);
// - the one operation in flight left its files as before or after it, or
//   for data writes with each byte either old, new or zero: never bytes that
//   were not written to that place;
// - `cairn fsck` finds the namespace and blobs consistent.
// CAIRN_CRASH_SEED and CAIRN_CRASH_ITERATIONS reproduce or extend a run.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

using Tree = std::map<std::string, std::string>;  // name -> content

enum class OpKind { kRewrite, kOverwrite, kAppend, kTruncate, kReplace, kFsync, kUnlink };

struct Op {
  OpKind kind;
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t content_seed = 0;
};

const char* const kNames[] = {"a", "b", "c", "d", "e", "f"};
constexpr char kTempName[] = "tmp";

std::string Content(uint32_t seed, uint64_t size) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (uint64_t i = 0; i < size; i += 4) {
    uint32_t word = rng() | 0x01010101;  // no zero bytes: zeros mean "hole"
    memcpy(out.data() + i, &word, std::min<uint64_t>(4, size - i));
  }
  return out;
}

// The next operation; depends only on `rng` and `tree`, so the checker can
// replay the child's choices.
Op NextOp(std::mt19937& rng, const Tree& tree) {
  Op op;
  op.name = kNames[rng() % std::size(kNames)];
  op.content_seed = rng();
  auto existing = tree.find(op.name);
  uint64_t size = existing == tree.end() ? 0 : existing->second.size();
  int roll = rng() % 100;
  if (existing == tree.end() || roll < 20) {
    op.kind = OpKind::kRewrite;
    // Mostly small files, sometimes several blobs' worth.
    op.size = rng() % 10 == 0 ? (rng() % (9 << 20)) : rng() % (300 << 10);
  } else if (roll < 40) {
    op.kind = OpKind::kOverwrite;
    op.offset = rng() % (size + 1);
    op.size = rng() % (200 << 10) + 1;
  } else if (roll < 55) {
    op.kind = OpKind::kAppend;
    op.size = rng() % (100 << 10) + 1;
  } else if (roll < 65) {
    op.kind = OpKind::kTruncate;
    op.size = rng() % (size + size / 4 + 2);
  } else if (roll < 80) {
    op.kind = OpKind::kReplace;
    op.size = rng() % (500 << 10);
  } else if (roll < 92) {
    op.kind = OpKind::kFsync;
  } else {
    op.kind = OpKind::kUnlink;
  }
  return op;
}

void Apply(const Op& op, Tree& tree) {
  std::string& file = tree[op.name];
  switch (op.kind) {
    case OpKind::kRewrite:
      file = Content(op.content_seed, op.size);
      break;
    case OpKind::kReplace:
      file = Content(op.content_seed, op.size);
      tree.erase(kTempName);
      break;
    case OpKind::kOverwrite: {
      std::string data = Content(op.content_seed, op.size);
      if (file.size() < op.offset + op.size) file.resize(op.offset + op.size, '\0');
      file.replace(op.offset, op.size, data);
      break;
    }
    case OpKind::kAppend:
      file += Content(op.content_seed, op.size);
      break;
    case OpKind::kTruncate:
      file.resize(op.size, '\0');
      break;
    case OpKind::kFsync:
      break;
    case OpKind::kUnlink:
      tree.erase(op.name);
      break;
  }
}

bool WriteAll(int fd, const std::string& data, off_t offset) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = pwrite(fd, data.data() + done, data.size() - done, offset + done);
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

// Performs `op` in `dir`; false on any failure (the daemon is gone).
bool Execute(const Op& op, const std::string& dir, const Tree& before) {
  std::string path = dir + "/" + op.name;
  switch (op.kind) {
    case OpKind::kRewrite: {
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return false;
      bool ok = WriteAll(fd, Content(op.content_seed, op.size), 0);
      return close(fd) == 0 && ok;
    }
    case OpKind::kOverwrite: {
      int fd = open(path.c_str(), O_WRONLY);
      if (fd < 0) return false;
      bool ok = WriteAll(fd, Content(op.content_seed, op.size), op.offset);
      return close(fd) == 0 && ok;
    }
    case OpKind::kAppend: {
      int fd = open(path.c_str(), O_WRONLY | O_APPEND);
      if (fd < 0) return false;
      bool ok = WriteAll(fd, Content(op.content_seed, op.size), before.at(op.name).size());
      return close(fd) == 0 && ok;
    }
    case OpKind::kTruncate:
      return truncate(path.c_str(), op.size) == 0;
    case OpKind::kReplace: {
      std::string temp = dir + "/" + kTempName;
      int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return false;
      bool ok = WriteAll(fd, Content(op.content_seed, op.size), 0) && fsync(fd) == 0;
      if (close(fd) != 0 || !ok) return false;
      return rename(temp.c_str(), path.c_str()) == 0;
    }
    case OpKind::kFsync: {
      int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) return false;
      bool ok = fsync(fd) == 0;
      return close(fd) == 0 && ok;
    }
    case OpKind::kUnlink:
      return unlink(path.c_str()) == 0;
  }
  return false;
}

// The child: runs operations until one fails, logging "B n" before and
// "E n" after each to `log_path` (on the host filesystem).
[[noreturn]] void RunWorkload(uint32_t seed, Tree tree, const std::string& dir,
                              const std::string& log_path) {
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (log < 0) _exit(3);
  std::mt19937 rng(seed);
  for (uint64_t n = 0;; ++n) {
    Op op = NextOp(rng, tree);
    std::string begin = "B " + std::to_string(n) + "\n";
    if (write(log, begin.data(), begin.size()) < 0) _exit(3);
    if (!Execute(op, dir, tree)) _exit(0);
    Apply(op, tree);
    std::string end = "E " + std::to_string(n) + "\n";
    if (write(log, end.data(), end.size()) < 0) _exit(3);
  }
}

// A byte of `actual` at `i` is plausible if the old or the new file had it
// there, or it is zero (not yet written).
std::string ExplainImplausible(const std::optional<std::string>& actual,
                               const std::optional<std::string>& before,
                               const std::optional<std::string>& after, bool atomic) {
  if (actual == before || actual == after) return "";
  if (atomic) return "an atomic operation left a state between before and after";
  if (!actual) return "the file vanished";
  const std::string empty;
  const std::string& b = before ? *before : empty;
  const std::string& a = after ? *after : empty;
  if (actual->size() > std::max(a.size(), b.size())) {
    return "size " + std::to_string(actual->size()) + " is larger than before (" +
           std::to_string(b.size()) + ") and after (" + std::to_string(a.size()) + ")";
  }
  for (size_t i = 0; i < actual->size(); ++i) {
    char c = (*actual)[i];
    if (c == 0 || (i < b.size() && b[i] == c) || (i < a.size() && a[i] == c)) continue;
    return "byte " + std::to_string(i) + " was never written there";
  }
  return "";
}

class CrashTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }

  std::string WorkDir() { return P("w"); }

  Tree ReadTree() {
    Tree tree;
    DIR* dir = opendir(WorkDir().c_str());
    EXPECT_NE(dir, nullptr) << strerror(errno);
    if (dir == nullptr) return tree;
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::ifstream in(WorkDir() + "/" + name, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      tree[name] = content.str();
    }
    closedir(dir);
    return tree;
  }

  // Kills the daemon at random moments of a random workload `iterations`
  // times and checks what survived each time.
  void KillAndCheck(int iterations);

  // Ops that completed and the one in flight (-1 if none), from the log.
  std::pair<int64_t, int64_t> ReadLog(const std::string& path) {
    std::ifstream in(path);
    std::string kind;
    int64_t n, completed = 0, in_flight = -1;
    while (in >> kind >> n) {
      if (kind == "B") in_flight = n;
      if (kind == "E") {
        completed = n + 1;
        in_flight = -1;
      }
    }
    return {completed, in_flight};
  }
};

void CrashTest::KillAndCheck(int iterations) {
  uint32_t seed = 20261126;
  if (const char* s = getenv("CAIRN_CRASH_SEED")) seed = std::strtoul(s, nullptr, 10);
  if (const char* s = getenv("CAIRN_CRASH_ITERATIONS")) iterations = std::atoi(s);
  std::mt19937 timing(seed);
  ASSERT_EQ(mkdir(WorkDir().c_str(), 0755), 0);
  uint64_t total_ops = 0;
  for (int iteration = 0; iteration < iterations; ++iteration) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " iteration " + std::to_string(iteration) +
                 " (rerun with CAIRN_CRASH_SEED=" + std::to_string(seed) + ")");
    Tree start = ReadTree();
    uint32_t workload_seed = seed * 1000 + iteration;
    std::string log_path = work_dir_ + "/ops.log";
    pid_t daemon = DaemonPid();
    ASSERT_GT(daemon, 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) RunWorkload(workload_seed, start, WorkDir(), log_path);
    // Kill at a random moment: early (mid first writes) up to well into
    // the run, past the background flush interval.
    usleep((50 + timing() % 2500) * 1000);
    ASSERT_EQ(kill(daemon, SIGKILL), 0);
    ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(daemon); }, 20));
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "workload child ended with status " << status;

    ASSERT_NO_FATAL_FAILURE(Mount());
    auto [completed, in_flight] = ReadLog(log_path);
    total_ops += completed;
    // Replay the child's choices to know the expected trees.
    Tree expected = start;
    std::mt19937 rng(workload_seed);
    for (int64_t n = 0; n < completed; ++n) Apply(NextOp(rng, expected), expected);
    Tree actual = ReadTree();
    std::set<std::string> flux;  // names the op in flight may have changed
    Tree after = expected;
    bool atomic = false;
    std::optional<std::string> temp_written;  // a replacement's temp file, complete
    if (in_flight >= 0) {
      Op op = NextOp(rng, expected);
      Apply(op, after);
      flux = {op.name};
      if (op.kind == OpKind::kReplace) {
        flux.insert(kTempName);
        temp_written = Content(op.content_seed, op.size);
      }
      atomic = op.kind == OpKind::kUnlink;
    }
    std::set<std::string> names;
    for (const auto& [name, content] : expected) names.insert(name);
    for (const auto& [name, content] : actual) names.insert(name);
    for (const auto& [name, content] : after) names.insert(name);
    for (const std::string& name : names) {
      auto find = [&](const Tree& tree) -> std::optional<std::string> {
        auto it = tree.find(name);
        return it == tree.end() ? std::nullopt : std::optional<std::string>(it->second);
      };
      std::optional<std::string> got = find(actual), want = find(expected);
      if (!flux.count(name)) {
        EXPECT_TRUE(got == want)
            << "file '" << name << "' after " << completed << " completed operations: "
            << (got ? std::to_string(got->size()) + " bytes" : "absent") << ", expected "
            << (want ? std::to_string(want->size()) + " bytes" : "absent");
        continue;
      }
      if (name == kTempName && temp_written) {
        // Being written, written, or already renamed away.
        if (!got) continue;
        EXPECT_EQ(ExplainImplausible(got, want, temp_written, false), "")
            << "the temp file of the replacement in flight";
        continue;
      }
      // The rename of a replacement is atomic.
      bool name_is_atomic = atomic || temp_written.has_value();
      std::string why = ExplainImplausible(got, want, find(after), name_is_atomic);
      EXPECT_EQ(why, "") << "file '" << name << "' touched by the operation in flight";
    }
    ASSERT_FALSE(HasFailure());

    ASSERT_NO_FATAL_FAILURE(Unmount());
    CommandResult fsck = Cairn("fsck " + Quote(volume_dir_));
    EXPECT_EQ(fsck.exit_code, 0) << Brief(fsck);
    ASSERT_NO_FATAL_FAILURE(Mount());
  }
  RecordProperty("operations", std::to_string(total_ops));
  EXPECT_GT(total_ops, static_cast<uint64_t>(iterations)) << "the workload barely ran";
}

TEST_F(CrashTest, KilledDaemonLosesNoCompletedWriteAndFsckIsClean) { KillAndCheck(12); }

// The same on a volume striped over three disks (ec:2+1): shards written in
// parallel, committed only once durable, swept when a crash orphans them.
class StripedCrashTest : public CrashTest {
 protected:
  int DiskCount() override { return 3; }
};

TEST_F(StripedCrashTest, KilledDaemonLosesNoCompletedWriteAndFsckIsClean) { KillAndCheck(8); }

}  // namespace
}  // namespace cairn_it

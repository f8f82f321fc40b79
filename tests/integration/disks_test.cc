// A volume striped over real, separate filesystems: six small ext4 images on
// loop devices, each mounted on its own directory, formatted as ec:4+2.
// What users rely on:
// - a disk whose contents are deleted and a disk returning rotten bytes do
//   not change a single byte read, and `cairn scrub` rewrites every shard
//   that was lost or corrupt (a second scrub finds nothing left to do);
// - a disk that vanishes while mounted is marked failed, reads go on, and
//   `cairn disk replace` onto a new drive restores full redundancy: two
//   other disks can then be lost without losing a byte;
// - a full volume refuses writes with ENOSPC (not EIO, not a hang), keeps
//   what it had, and takes writes again once deleted data is collected.
//
// Needs root, losetup and mkfs.ext4 (skips otherwise). Everything lives in a
// private /tmp/cairn-disks-XXXXXX; TearDown (and the destructor, and exit or
// SIGTERM/SIGINT/SIGHUP/SIGPIPE while a test runs) unmounts the cairn mount, then
// the ext4 mounts, detaches the loop devices, and removes the directory only
// once nothing is mounted under it.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

constexpr int kDisks = 6;

// What TearDown takes down, in this order.
struct Rig {
  std::string work_dir;
  std::string volume_dir;
  std::string mount_dir;
  std::vector<std::string> ext_mounts;  // ext4 mountpoints we mounted
  std::vector<std::pair<std::string, std::string>> loops;  // device, image
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The pid holding the volume's lock (from `cairn status`, else the lock
// file), 0 if none.
pid_t VolumeHolder(const std::string& volume_dir) {
  CommandResult status =
      RunCommand(Quote(CairnBinary()) + " status --json " + Quote(volume_dir), 30);
  if (status.exit_code == 0) {
    if (JsonField(status.output, "mounted") != "true") return 0;
    std::optional<std::string> pid = JsonField(status.output, "pid");
    return pid ? static_cast<pid_t>(atoi(pid->c_str())) : -1;
  }
  std::istringstream lock(ReadFile(volume_dir + "/lock"));
  pid_t pid = 0;
  if (lock >> pid && pid > 0 && ProcessAlive(pid)) return pid;
  return 0;
}

// Takes everything down; returns what could not be done ("" on success).
std::string TakeDown(const Rig& rig) {
  std::string problems;
  if (rig.work_dir.empty()) return problems;
  // 1. The cairn mount, and its daemon (which holds files on the disks).
  if (IsMounted(rig.mount_dir)) {
    if (IsCairnMount(rig.mount_dir)) {
      RunCommand(Quote(CairnBinary()) + " umount " + Quote(rig.mount_dir), 90);
    }
    if (IsMounted(rig.mount_dir)) RunCommand("fusermount3 -u -z -- " + Quote(rig.mount_dir), 30);
    if (IsMounted(rig.mount_dir)) RunCommand("umount -l -- " + Quote(rig.mount_dir), 30);
    if (IsMounted(rig.mount_dir)) problems += "could not unmount " + rig.mount_dir + "; ";
  }
  if (access((rig.volume_dir + "/cairn.toml").c_str(), F_OK) == 0) {
    pid_t holder = 0;
    if (!WaitFor([&] { return (holder = VolumeHolder(rig.volume_dir)) == 0; }, 30) &&
        holder > 0) {
      std::string cmdline = ReadFile("/proc/" + std::to_string(holder) + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      problems += "daemon " + std::to_string(holder) + " still running 30 s after unmount; ";
      if (cmdline.find(rig.volume_dir) != std::string::npos && kill(holder, SIGKILL) == 0) {
        problems += "killed it; ";
        WaitFor([&] { return !ProcessAlive(holder); }, 10);
      }
    }
  }
  // 2. The ext4 mounts (a lazily unmounted one is already gone).
  for (const std::string& ext : rig.ext_mounts) {
    if (!IsMounted(ext)) continue;
    WaitFor([&] { return RunCommand("umount -- " + Quote(ext), 30).exit_code == 0; }, 5);
    if (IsMounted(ext)) RunCommand("umount -l -- " + Quote(ext), 30);
    if (IsMounted(ext)) problems += "could not unmount " + ext + "; ";
  }
  // 3. The loop devices, only while they still are ours (a busy one is
  // detached by the kernel once its filesystem lets go).
  for (const auto& [device, image] : rig.loops) {
    CommandResult backing = RunCommand("losetup -n -O BACK-FILE " + Quote(device), 30);
    if (backing.exit_code != 0 || backing.output.rfind(image, 0) != 0) continue;
    CommandResult detach = RunCommand("losetup -d " + Quote(device), 30);
    if (detach.exit_code != 0) problems += "losetup -d " + device + ": " + detach.output + "; ";
  }
  // 4. The directory, only with nothing mounted in it.
  if (!MountsUnder(rig.work_dir).empty()) {
    return problems + "something is still mounted under " + rig.work_dir + "; left it in place";
  }
  CommandResult rm = RunCommand("rm -rf --one-file-system -- " + Quote(rig.work_dir), 120);
  if (rm.exit_code != 0) problems += "rm -rf " + rig.work_dir + ": " + rm.output;
  return problems;
}

// Rigs of running tests, for the exit and signal paths.
std::mutex g_rigs_mutex;
std::vector<const Rig*>* g_rigs = new std::vector<const Rig*>;
pid_t g_owner = 0;
struct sigaction g_previous[NSIG];

void TakeDownAll() {
  if (getpid() != g_owner) return;
  std::unique_lock<std::mutex> lock(g_rigs_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;
  for (const Rig* rig : *g_rigs) {
    std::string problems = TakeDown(*rig);
    if (!problems.empty()) fprintf(stderr, "disks test cleanup: %s\n", problems.c_str());
  }
  g_rigs->clear();
}

void OnSignal(int sig) {
  TakeDownAll();
  // Then whatever was there before (the mount fixture's cleanup, or death).
  sigaction(sig, &g_previous[sig], nullptr);
  raise(sig);
}

void InstallOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_owner = getpid();
    atexit(TakeDownAll);
    // SIGPIPE too: a run piped into `head` dies of it in mid-test.
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) {
      struct sigaction action = {};
      action.sa_handler = OnSignal;
      sigemptyset(&action.sa_mask);
      sigaction(sig, &action, &g_previous[sig]);
    }
  });
}

struct DiskStatus {
  std::string path;
  std::string state;
  uint64_t shards = 0;
};

// The "disks" array of `cairn status --json` (under "cache" → "storage"
// while mounted, "storage" otherwise).
std::vector<DiskStatus> ParseDisks(const std::string& json) {
  std::vector<DiskStatus> disks;
  size_t from = json.find("\"cache\": {");
  if (from == std::string::npos) from = 0;
  size_t at = json.find("\"disks\": [", from);
  if (at == std::string::npos) return disks;
  at += 10;
  // Objects up to the closing bracket; strings may hold anything.
  int depth = 0;
  bool in_string = false;
  size_t start = 0;
  for (; at < json.size(); ++at) {
    char c = json[at];
    if (in_string) {
      if (c == '\\') ++at;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      if (depth++ == 0) start = at;
    } else if (c == '}') {
      if (--depth == 0) {
        std::string object = json.substr(start, at - start + 1);
        DiskStatus disk;
        disk.path = JsonField(object, "path").value_or("");
        disk.state = JsonField(object, "state").value_or("");
        disk.shards = strtoull(JsonField(object, "shards").value_or("0").c_str(), nullptr, 10);
        disks.push_back(disk);
      }
    } else if (c == ']' && depth == 0) {
      break;
    }
  }
  return disks;
}

uint64_t Number(const std::string& json, const std::string& key) {
  std::optional<std::string> value = JsonField(json, key);
  return value ? strtoull(value->c_str(), nullptr, 10) : UINT64_MAX;
}

class DisksTest : public ::testing::Test {
 protected:
  explicit DisksTest(int image_mib = 96) : image_mib_(image_mib) {}

  ~DisksTest() override {
    if (!cleaned_up_) {
      std::string problems = TakeDown(rig_);
      if (!problems.empty()) fprintf(stderr, "disks test cleanup: %s\n", problems.c_str());
      Unregister();
    }
  }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartRig("/tmp/cairn-disks-XXXXXX"));
    if (IsSkipped()) return;
    rig_.volume_dir = rig_.work_dir + "/volume";
    for (int i = 0; i < kDisks; ++i) {
      ASSERT_NO_FATAL_FAILURE(AddImage(i));
      if (IsSkipped()) return;
    }
    std::string args = "format " + Quote(rig_.volume_dir);
    for (const std::string& disk : disks_) args += " --disk " + Quote(disk);
    CommandResult format = Cairn(args, 60);
    ASSERT_EQ(format.exit_code, 0) << Brief(format);
    EXPECT_NE(format.output.find("6 disks"), std::string::npos) << Brief(format);
    ASSERT_NE(format.output.find("ec:4+2"), std::string::npos)
        << "six disks must default to ec:4+2: " << Brief(format);
    for (const std::string& disk : disks_) {
      EXPECT_EQ(access((disk + "/cairn-disk").c_str(), F_OK), 0) << "no marker in " << disk;
    }
    // No background scrub: the scrubs in these tests must find what was
    // broken themselves.
    ASSERT_NO_FATAL_FAILURE(SetConfig("scrub_interval_seconds", "0"));
  }

  // Skips without root, losetup or mkfs.ext4; else makes the private work
  // directory (from mkdtemp `pattern`) and its mount directory, and lets
  // the exit and signal handlers take the rig down.
  void StartRig(const char* pattern) {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    if (geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount)";
    if (RunCommand("command -v losetup && command -v mkfs.ext4", 30).exit_code != 0) {
      GTEST_SKIP() << "needs losetup and mkfs.ext4 (util-linux, e2fsprogs)";
    }
    InstallOnce();
    std::string templ = pattern;
    ASSERT_NE(mkdtemp(templ.data()), nullptr) << strerror(errno);
    rig_.work_dir = templ;
    rig_.mount_dir = rig_.work_dir + "/mnt";
    {
      std::lock_guard<std::mutex> lock(g_rigs_mutex);
      g_rigs->push_back(&rig_);
    }
    ASSERT_EQ(mkdir(rig_.mount_dir.c_str(), 0755), 0) << strerror(errno);
  }

  void TearDown() override {
    std::string problems = TakeDown(rig_);
    cleaned_up_ = true;
    Unregister();
    EXPECT_EQ(problems, "") << "cleanup of " << rig_.work_dir;
  }

  void Unregister() {
    std::lock_guard<std::mutex> lock(g_rigs_mutex);
    g_rigs->erase(std::remove(g_rigs->begin(), g_rigs->end(), &rig_), g_rigs->end());
  }

  CommandResult Run(const std::string& command, int timeout_seconds = 120) {
    return RunCommand(command, timeout_seconds);
  }
  CommandResult Cairn(const std::string& args, int timeout_seconds = 120) {
    return RunCommand(Quote(CairnBinary()) + " " + args, timeout_seconds);
  }

  // Image `index`: a fresh ext4 filesystem on a loop device, mounted at
  // work/extN, with the disk directory work/extN/disk appended to disks_.
  // Skips the test if no loop device can be set up.
  void AddImage(int index) {
    std::string image = rig_.work_dir + "/img" + std::to_string(index);
    std::string ext = rig_.work_dir + "/ext" + std::to_string(index);
    CommandResult make = Run("truncate -s " + std::to_string(image_mib_) + "M " + Quote(image) +
                                 " && mkfs.ext4 -q -F " + mkfs_options_ + Quote(image),
                             60);
    ASSERT_EQ(make.exit_code, 0) << Brief(make);
    CommandResult loop = Run("losetup --find --show " + Quote(image), 30);
    if (loop.exit_code != 0 || Trim(loop.output).rfind("/dev/", 0) != 0) {
      GTEST_SKIP() << "cannot set up a loop device (losetup --find --show): " << Brief(loop);
    }
    std::string device = Trim(loop.output);
    rig_.loops.emplace_back(device, image);
    ASSERT_EQ(mkdir(ext.c_str(), 0755), 0) << strerror(errno);
    rig_.ext_mounts.push_back(ext);
    CommandResult mount = Run("mount -t ext4 " + Quote(device) + " " + Quote(ext), 30);
    ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
    std::string disk = ext + "/disk";
    ASSERT_EQ(mkdir(disk.c_str(), 0755), 0) << strerror(errno);
    disks_.push_back(disk);
  }

  // Sets `key = value` in cairn.toml (the line must be there once).
  void SetConfig(const std::string& key, const std::string& value) {
    std::string toml = Quote(rig_.volume_dir + "/cairn.toml");
    CommandResult edit = Run("sed -i 's/^" + key + " = .*/" + key + " = " + value + "/' " + toml +
                                 " && grep -c '^" + key + " = " + value + "$' " + toml,
                             30);
    ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
    ASSERT_EQ(Trim(edit.output), "1") << key << " not set in cairn.toml";
  }

  void Mount() {
    CommandResult mount = Cairn("mount " + Quote(rig_.volume_dir) + " " + Quote(rig_.mount_dir), 60);
    ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
    ASSERT_TRUE(IsCairnMount(rig_.mount_dir)) << "no fuse.cairn mount at " << rig_.mount_dir;
  }

  // cairn umount: returns once everything written is stored and the daemon
  // has exited.
  void Unmount() {
    CommandResult umount = Cairn("umount " + Quote(rig_.mount_dir), 120);
    ASSERT_EQ(umount.exit_code, 0) << Brief(umount);
    ASSERT_FALSE(IsMounted(rig_.mount_dir)) << "still mounted after cairn umount";
    CommandResult status = Cairn("status --json " + Quote(rig_.volume_dir), 30);
    ASSERT_EQ(JsonField(status.output, "mounted"), "false") << Brief(status);
  }

  void Remount() {
    ASSERT_NO_FATAL_FAILURE(Unmount());
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  std::string M(const std::string& relative = "") const {
    return relative.empty() ? rig_.mount_dir : rig_.mount_dir + "/" + relative;
  }

  // A real tree: a copy of /usr/include/linux when there is one, plus
  // files of every size class (inline, one partial blob, several blobs;
  // random and compressible), about 45 MiB.
  void WriteTree() {
    std::string script =
        "set -e; cd " + Quote(M()) +
        "; if [ -d /usr/include/linux ]; then cp -a /usr/include/linux linux; fi"
        "; mkdir -p big small/a/b mid"
        "; for s in 1 2 3 4 5 6 7 8; do head -c ${s}M /dev/urandom > big/rand$s; done"
        "; head -c 1234567 /dev/urandom > big/odd"
        "; seq 1 600000 > big/compressible"
        "; for i in $(seq 1 12); do head -c $((i * 70001)) /dev/urandom > mid/m$i; done"
        "; for i in $(seq 1 150); do head -c $((i * 431)) /dev/urandom > small/a/b/s$i; done"
        "; : > small/empty";
    CommandResult result = Run(script, 180);
    ASSERT_EQ(result.exit_code, 0) << Brief(result);
  }

  // sha256 of every file, in work/`name`; returns how many files.
  int RecordSums(const std::string& name) {
    std::string sums = Quote(rig_.work_dir + "/" + name);
    CommandResult result =
        Run("cd " + Quote(M()) + " && find . -type f -print0 | LC_ALL=C sort -z | "
            "xargs -0 -r sha256sum > " + sums + " && wc -l < " + sums, 180);
    EXPECT_EQ(result.exit_code, 0) << Brief(result);
    return atoi(result.output.c_str());
  }

  void DropCaches() {
    CommandResult drop = Run("sync && echo 3 > /proc/sys/vm/drop_caches", 120);
    ASSERT_EQ(drop.exit_code, 0) << Brief(drop);
  }

  // Every file in work/`name` reads back identical, from cold caches; with
  // `same_set`, no file came or went either.
  void ExpectSums(const std::string& name, const std::string& when, bool same_set = true) {
    ASSERT_NO_FATAL_FAILURE(DropCaches());
    std::string sums = Quote(rig_.work_dir + "/" + name);
    CommandResult check =
        Run("cd " + Quote(M()) + " && sha256sum -c --quiet " + sums + " 2>&1 | head -40", 180);
    EXPECT_EQ(check.exit_code, 0) << "files differ " << when << ":\n" << Brief(check);
    if (!same_set) return;
    CommandResult count =
        Run("cd " + Quote(M()) + " && echo $(find . -type f | wc -l) $(wc -l < " + sums + ")", 60);
    std::istringstream numbers(count.output);
    int now = -1, before = -2;
    numbers >> now >> before;
    EXPECT_EQ(now, before) << "number of files changed " << when << ": " << count.output;
  }

  // Shard files on disk `dir` (counted on the ext4 filesystem itself).
  static uint64_t ShardFiles(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code error;
    uint64_t count = 0;
    for (fs::recursive_directory_iterator it(dir + "/shards", error), end; !error && it != end;
         it.increment(error)) {
      if (it->is_regular_file(error) && it->path().extension() == ".shard") count++;
    }
    return count;
  }

  static std::vector<std::string> ShardPaths(const std::string& dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> paths;
    std::error_code error;
    for (fs::recursive_directory_iterator it(dir + "/shards", error), end; !error && it != end;
         it.increment(error)) {
      if (it->is_regular_file(error) && it->path().extension() == ".shard") {
        paths.push_back(it->path().string());
      }
    }
    std::sort(paths.begin(), paths.end());
    return paths;
  }

  std::string Status() { return Cairn("status --json " + Quote(rig_.volume_dir), 30).output; }

  // Polls `cairn status --json` until `done` holds for its disks, with
  // stats written after `since` (the daemon rewrites them every 2 s).
  bool WaitForDisks(const std::function<bool(const std::vector<DiskStatus>&)>& done,
                    double seconds, time_t since, std::string* last) {
    return WaitFor([&] {
      *last = Status();
      uint64_t updated = Number(*last, "updated");
      if (updated == UINT64_MAX || updated <= static_cast<uint64_t>(since)) return false;
      std::vector<DiskStatus> disks = ParseDisks(*last);
      return disks.size() == static_cast<size_t>(kDisks) && done(disks);
    }, seconds);
  }

  static bool AllOk(const std::vector<DiskStatus>& disks) {
    return std::all_of(disks.begin(), disks.end(),
                       [](const DiskStatus& d) { return d.state == "ok"; });
  }

  // Every disk holds one shard of every blob (ec:4+2 over six disks).
  void ExpectFullShardSets(const std::string& when) {
    uint64_t reference = ShardFiles(disks_[1]);
    for (int i = 0; i < kDisks; ++i) {
      EXPECT_EQ(ShardFiles(disks_[i]), reference) << "disk " << i << " " << when;
    }
  }

  const int image_mib_;
  std::string mkfs_options_;  // ends in a space when set
  Rig rig_;
  std::vector<std::string> disks_;  // disk directories, in volume order
  bool cleaned_up_ = false;
};

// A volume small enough to fill quickly.
class DisksFullTest : public DisksTest {
 protected:
  DisksFullTest() : DisksTest(32) {}
};

struct Flip {
  std::string path;
  uint64_t offset;
  unsigned char original;
};

// XORs `count` bytes beyond offset 4096 (shard data, not the header) of
// `path` with a non-zero mask; returns what was there.
std::vector<Flip> FlipBytes(const std::string& path, int count, std::mt19937& rng) {
  std::vector<Flip> flips;
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!file) return flips;
  file.seekg(0, std::ios::end);
  uint64_t size = static_cast<uint64_t>(file.tellg());
  if (size <= 8192) return flips;
  std::uniform_int_distribution<uint64_t> where(4097, size - 1);
  std::uniform_int_distribution<int> mask(1, 255);
  for (int i = 0; i < count; ++i) {
    uint64_t offset = where(rng);
    if (std::any_of(flips.begin(), flips.end(), [&](const Flip& f) { return f.offset == offset; })) {
      continue;
    }
    char byte = 0;
    file.seekg(static_cast<std::streamoff>(offset));
    file.read(&byte, 1);
    char flipped = static_cast<char>(byte ^ mask(rng));
    file.seekp(static_cast<std::streamoff>(offset));
    file.write(&flipped, 1);
    flips.push_back({path, offset, static_cast<unsigned char>(byte)});
  }
  file.flush();
  return file ? flips : std::vector<Flip>{};
}

int ByteAt(const std::string& path, uint64_t offset) {
  std::ifstream file(path, std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  if (!file.read(&byte, 1)) return -1;
  return static_cast<unsigned char>(byte);
}

// Byte 14 of a shard file: its index in the blob (< K: a data shard).
int ShardIndex(const std::string& path) { return ByteAt(path, 14); }

TEST_F(DisksTest, SurvivesALostDiskAndBitrotAndScrubRepairsBoth) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  int files = RecordSums("sums");
  ASSERT_GT(files, 150);
  // A clean unmount stores everything as shards.
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectFullShardSets("after the data was stored");
  uint64_t shards_per_disk = ShardFiles(disks_[0]);
  ASSERT_GE(shards_per_disk, 20u) << "the data was not stored as shards";

  // Disk 0 loses everything (its directory stays); disk 3 rots: bytes of
  // data and parity shards flipped.
  CommandResult wipe = Run("rm -rf -- " + Quote(disks_[0]) + "/*", 60);
  ASSERT_EQ(wipe.exit_code, 0) << Brief(wipe);
  ASSERT_EQ(ShardFiles(disks_[0]), 0u);
  std::random_device seed_source;
  unsigned seed = seed_source();
  SCOPED_TRACE("bit rot seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::vector<std::string> candidates = ShardPaths(disks_[3]);
  std::shuffle(candidates.begin(), candidates.end(), rng);
  std::vector<Flip> flips;
  int data_shards = 0, parity_shards = 0;
  for (const std::string& path : candidates) {
    bool data = ShardIndex(path) < 4;
    if ((data ? data_shards : parity_shards) >= 3) continue;
    std::vector<Flip> done = FlipBytes(path, 4, rng);
    if (done.empty()) continue;
    (data ? data_shards : parity_shards)++;
    flips.insert(flips.end(), done.begin(), done.end());
  }
  ASSERT_GE(data_shards, 2) << "too few data shards big enough to corrupt on disk 3";
  ASSERT_GE(parity_shards, 1) << "too few parity shards big enough to corrupt on disk 3";

  // Not a byte differs.
  ASSERT_NO_FATAL_FAILURE(ExpectSums("sums", "with disk 0 wiped and disk 3 rotten"));
  std::string status;
  EXPECT_TRUE(WaitFor([&] {
    status = Status();
    uint64_t rebuilt = Number(status, "reconstructions");
    uint64_t rotten = Number(status, "checksum_failures");
    return rebuilt > 0 && rebuilt != UINT64_MAX && rotten > 0 && rotten != UINT64_MAX;
  }, 10)) << "the daemon did not notice the damage it read through: " << Brief({0, status});

  // The scrub rewrites every lost and every rotten shard.
  CommandResult scrub = Cairn("scrub " + Quote(M()) + " --json", 120);
  EXPECT_EQ(scrub.exit_code, 0) << Brief(scrub);
  EXPECT_EQ(JsonField(scrub.output, "healthy"), "true") << Brief(scrub);
  EXPECT_GT(Number(scrub.output, "shards_repaired"), 0u) << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "shards_bad"), Number(scrub.output, "shards_repaired"))
      << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "shards_unavailable"), 0u) << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "blobs_lost"), 0u) << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "blobs_checked"), shards_per_disk) << Brief(scrub);
  EXPECT_EQ(ShardFiles(disks_[0]), shards_per_disk) << "disk 0 not refilled";
  EXPECT_EQ(access((disks_[0] + "/cairn-disk").c_str(), F_OK), 0) << "disk 0 has no marker";
  for (const Flip& flip : flips) {
    EXPECT_EQ(ByteAt(flip.path, flip.offset), flip.original)
        << flip.path << " byte " << flip.offset << " still rotten after the scrub";
  }

  CommandResult again = Cairn("scrub " + Quote(M()) + " --json", 120);
  EXPECT_EQ(again.exit_code, 0) << Brief(again);
  EXPECT_EQ(Number(again.output, "shards_bad"), 0u) << "the first scrub left damage: "
                                                    << Brief(again);
  EXPECT_EQ(Number(again.output, "shards_repaired"), 0u) << Brief(again);
  EXPECT_EQ(Number(again.output, "blobs_checked"), shards_per_disk) << Brief(again);

  // Disk 0 is this volume's disk again at the next mount: its marker was
  // rewritten.
  ASSERT_NO_FATAL_FAILURE(Unmount());
  std::string unmounted = Status();
  std::vector<DiskStatus> disks = ParseDisks(unmounted);
  ASSERT_EQ(disks.size(), static_cast<size_t>(kDisks)) << Brief({0, unmounted});
  EXPECT_TRUE(AllOk(disks)) << Brief({0, unmounted});
  time_t before_mount = time(nullptr);
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(WaitForDisks(AllOk, 15, before_mount, &status))
      << "disks not all ok after the remount: " << Brief({0, status});
  ExpectSums("sums", "after scrub and remount");
  ExpectFullShardSets("after scrub and remount");
}

TEST_F(DisksTest, DiskReplaceRestoresFullRedundancy) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  ASSERT_GT(RecordSums("sums"), 150);
  ASSERT_NO_FATAL_FAILURE(Remount());
  uint64_t shards_per_disk = ShardFiles(disks_[2]);
  ASSERT_GE(shards_per_disk, 20u) << "the data was not stored as shards";

  // Disk 2's drive goes away underneath the mount: its path is now an
  // empty directory of the root filesystem.
  const std::string old_disk = disks_[2];
  CommandResult vanish = Run("umount -l " + Quote(rig_.ext_mounts[2]), 30);
  ASSERT_EQ(vanish.exit_code, 0) << Brief(vanish);
  ASSERT_NE(access(old_disk.c_str(), F_OK), 0);
  std::string status;
  time_t vanished = time(nullptr);
  ASSERT_TRUE(WaitForDisks([](const std::vector<DiskStatus>& d) { return d[2].state == "failed"; },
                           15, vanished - 1, &status))
      << "disk 2 not marked failed: " << Brief({0, status});
  {
    std::vector<DiskStatus> disks = ParseDisks(status);
    for (int i : {0, 1, 3, 4, 5}) EXPECT_EQ(disks[i].state, "ok") << "disk " << i;
  }
  ExpectSums("sums", "with disk 2 gone");
  // Nothing was written into the empty mount point meanwhile.
  EXPECT_EQ(Run("ls -A " + Quote(rig_.ext_mounts[2])).output, "");

  // A new drive; the rebuild runs while mounted.
  ASSERT_NO_FATAL_FAILURE(AddImage(6));
  ASSERT_FALSE(IsSkipped());
  const std::string new_disk = disks_.back();
  time_t before_replace = time(nullptr);
  CommandResult replace = Cairn("disk replace " + Quote(rig_.volume_dir) + " " +
                                    Quote(old_disk) + " " + Quote(new_disk) + " --json",
                                180);
  ASSERT_EQ(replace.exit_code, 0) << Brief(replace);
  EXPECT_EQ(Number(replace.output, "blobs_lost"), 0u) << Brief(replace);
  EXPECT_EQ(Number(replace.output, "shards_repaired"), shards_per_disk) << Brief(replace);
  EXPECT_EQ(ShardFiles(new_disk), shards_per_disk) << "new disk not filled";
  EXPECT_EQ(access((new_disk + "/cairn-disk").c_str(), F_OK), 0) << "new disk has no marker";
  EXPECT_TRUE(WaitForDisks(
      [&](const std::vector<DiskStatus>& d) { return AllOk(d) && d[2].path == new_disk; }, 15,
      before_replace, &status))
      << "disks not all ok (with the new one as disk 2) after the replace: "
      << Brief({0, status});
  CommandResult toml = Run("grep -c " + Quote("'" + new_disk + "'") + " " +
                           Quote(rig_.volume_dir + "/cairn.toml"));
  EXPECT_EQ(Trim(toml.output), "1") << "cairn.toml does not name the new disk";

  // Full redundancy again: two other disks may go. (A fresh mount first,
  // so no read is served from the daemon's memory.)
  disks_[2] = new_disk;
  ASSERT_NO_FATAL_FAILURE(Remount());
  CommandResult wipe =
      Run("rm -rf -- " + Quote(disks_[0]) + "/* " + Quote(disks_[5]) + "/*", 60);
  ASSERT_EQ(wipe.exit_code, 0) << Brief(wipe);
  ASSERT_EQ(ShardFiles(disks_[0]) + ShardFiles(disks_[5]), 0u);
  ExpectSums("sums", "after the replace with disks 0 and 5 wiped");

  CommandResult scrub = Cairn("scrub " + Quote(M()) + " --json", 120);
  EXPECT_EQ(scrub.exit_code, 0) << Brief(scrub);
  EXPECT_GT(Number(scrub.output, "shards_repaired"), 0u) << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "shards_bad"), Number(scrub.output, "shards_repaired"))
      << Brief(scrub);
  EXPECT_EQ(Number(scrub.output, "blobs_lost"), 0u) << Brief(scrub);
  ExpectFullShardSets("after the final scrub");
}

TEST_F(DisksFullTest, FullDiskGivesENOSPCAndFreedSpaceIsReused) {
  // Deleted data is freed at once (the next collection, every few seconds).
  ASSERT_NO_FATAL_FAILURE(SetConfig("gc_grace_seconds", "0"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult keep = Run("set -e; cd " + Quote(M()) +
                               "; for i in 1 2 3 4 5; do head -c 2M /dev/urandom > keep$i; done",
                           60);
  ASSERT_EQ(keep.exit_code, 0) << Brief(keep);
  ASSERT_EQ(RecordSums("keep"), 5);
  ASSERT_NO_FATAL_FAILURE(Remount());  // stored on the disks
  ASSERT_GT(ShardFiles(disks_[0]), 0u);

  // Fill the volume: 8 MiB at a time, each fsynced, until a write fails.
  // About 4 x 23 MiB fit; 40 files would be 320 MiB.
  CommandResult failed;
  int written = 0;
  for (int i = 0; i < 40; ++i) {
    CommandResult dd = Run("dd if=/dev/urandom of=" + Quote(M("fill" + std::to_string(i))) +
                               " bs=1M count=8 conv=fsync status=none",
                           60);
    if (dd.exit_code != 0) {
      failed = dd;
      break;
    }
    written++;
  }
  ASSERT_NE(failed.exit_code, -1) << "40 x 8 MiB written to a volume of 6 x 32 MiB";
  EXPECT_NE(failed.exit_code, 124) << "a write to the full volume hung: " << Brief(failed);
  EXPECT_NE(failed.output.find("No space left on device"), std::string::npos)
      << "a full volume must fail writes with ENOSPC (after " << written
      << " files): " << Brief(failed);
  EXPECT_EQ(failed.output.find("Input/output error"), std::string::npos) << Brief(failed);
  EXPECT_GE(written, 5) << "the volume was full far too early";

  // What was stored before is intact.
  ASSERT_NO_FATAL_FAILURE(ExpectSums("keep", "after the volume filled up", false));

  // Free the space again.
  auto free_bytes = [&] {
    uint64_t least = UINT64_MAX;
    for (int i = 0; i < kDisks; ++i) {
      struct statvfs vfs;
      if (statvfs(rig_.ext_mounts[i].c_str(), &vfs) != 0) return uint64_t{0};
      least = std::min<uint64_t>(least, uint64_t{vfs.f_bavail} * vfs.f_frsize);
    }
    return least;
  };
  uint64_t full = free_bytes();
  CommandResult rm = Run("rm -f -- " + Quote(M()) + "/fill*", 60);
  ASSERT_EQ(rm.exit_code, 0) << Brief(rm);
  EXPECT_TRUE(WaitFor([&] { return free_bytes() >= full + (8u << 20); }, 30))
      << "deleted data not collected within 30 s: " << free_bytes() << " bytes free on the "
      << "fullest disk, " << full << " when full";

  // And used again.
  std::string source = rig_.work_dir + "/new.src";
  ASSERT_EQ(Run("head -c 8M /dev/urandom > " + Quote(source)).exit_code, 0);
  CommandResult dd = Run("dd if=" + Quote(source) + " of=" + Quote(M("new")) +
                             " bs=1M conv=fsync status=none",
                         60);
  ASSERT_EQ(dd.exit_code, 0) << "write after freeing space: " << Brief(dd);
  ASSERT_NO_FATAL_FAILURE(DropCaches());
  CommandResult cmp = Run("cmp " + Quote(source) + " " + Quote(M("new")), 60);
  EXPECT_EQ(cmp.exit_code, 0) << Brief(cmp);
  ASSERT_NO_FATAL_FAILURE(Remount());
  ASSERT_NO_FATAL_FAILURE(DropCaches());
  cmp = Run("cmp " + Quote(source) + " " + Quote(M("new")), 60);
  EXPECT_EQ(cmp.exit_code, 0) << "after remount: " << Brief(cmp);
  ExpectSums("keep", "after remount", false);
}

// The default layout (namespace, journal and data on one filesystem) on a
// small ext4 without root's reserved blocks, so that "full" is full.
class OneFilesystemFullTest : public DisksTest {
 protected:
  OneFilesystemFullTest() : DisksTest(128) { mkfs_options_ = "-m 0 "; }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartRig("/tmp/cairn-full-XXXXXX"));
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(AddImage(0));
    if (IsSkipped()) return;
    rig_.volume_dir = rig_.ext_mounts[0] + "/vol";
    CommandResult format = Cairn("format " + Quote(rig_.volume_dir), 60);
    ASSERT_EQ(format.exit_code, 0) << Brief(format);
    ASSERT_NO_FATAL_FAILURE(SetConfig("scrub_interval_seconds", "0"));
    ASSERT_NO_FATAL_FAILURE(SetConfig("gc_grace_seconds", "0"));
  }

  uint64_t FreeBytes() {
    struct statvfs vfs;
    if (statvfs(rig_.ext_mounts[0].c_str(), &vfs) != 0) return 0;
    return uint64_t{vfs.f_bavail} * vfs.f_frsize;
  }
};

// Filled through the volume, then a power cut, then the last byte taken by
// another program: status, fsck, a read-only and a read-write mount all
// work, files can be deleted, and the space is used again.
TEST_F(OneFilesystemFullTest, AFullDiskAfterAPowerCutStillMountsAndDeletes) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult keep = Run("set -e; cd " + Quote(M()) +
                               "; for i in 1 2 3; do head -c 1M /dev/urandom > keep$i; done; sync",
                           60);
  ASSERT_EQ(keep.exit_code, 0) << Brief(keep);
  ASSERT_EQ(RecordSums("keep"), 3);
  // Small files live in the namespace: a crash leaves tens of MiB in its
  // log, which a plain open writes into tables before anything else.
  CommandResult small = Run("set -e; cd " + Quote(M()) + "; mkdir small; for i in $(seq 900); "
                            "do head -c 40000 /dev/urandom > small/s$i; done; sync",
                            300);
  ASSERT_EQ(small.exit_code, 0) << Brief(small);
  CommandResult failed;
  for (int i = 0; i < 40; ++i) {
    CommandResult dd = Run("dd if=/dev/urandom of=" + Quote(M("fill" + std::to_string(i))) +
                               " bs=1M count=8 conv=fsync status=none",
                           120);
    if (dd.exit_code != 0) {
      failed = dd;
      break;
    }
  }
  ASSERT_NE(failed.exit_code, -1) << "320 MiB written to a 128 MiB filesystem";
  EXPECT_NE(failed.output.find("No space left on device"), std::string::npos) << Brief(failed);
  // The power goes; then another program takes every byte left.
  pid_t pid = 0;
  {
    CommandResult status = Cairn("status --json " + Quote(rig_.volume_dir), 30);
    std::optional<std::string> field = JsonField(status.output, "pid");
    ASSERT_TRUE(field.has_value()) << Brief(status);
    pid = static_cast<pid_t>(atoi(field->c_str()));
  }
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, 10));
  Run("fusermount3 -u -z " + Quote(M()));
  Run("dd if=/dev/zero of=" + Quote(rig_.ext_mounts[0] + "/filler") + " bs=64k status=none");
  ASSERT_LT(FreeBytes(), 64u << 10) << "the filesystem is not full";

  CommandResult status = Cairn("status " + Quote(rig_.volume_dir), 60);
  EXPECT_EQ(status.exit_code, 0) << "status on a full disk: " << Brief(status);
  CommandResult fsck = Cairn("fsck " + Quote(rig_.volume_dir), 120);
  EXPECT_TRUE(fsck.exit_code == 0 || fsck.exit_code == 1) << "fsck on a full disk: "
                                                          << Brief(fsck);
  CommandResult ro = Cairn("mount -o ro " + Quote(rig_.volume_dir) + " " + Quote(M()), 60);
  ASSERT_EQ(ro.exit_code, 0) << "mount -o ro on a full disk: " << Brief(ro);
  ExpectSums("keep", "mounted read-only on a full disk", false);
  ASSERT_NO_FATAL_FAILURE(Unmount());

  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSums("keep", "mounted read-write on a full disk", false);
  CommandResult rm = Run("rm -rf -- " + Quote(M()) + "/fill* " + Quote(M("small")), 120);
  EXPECT_EQ(rm.exit_code, 0) << "deleting on a full disk: " << Brief(rm);
  EXPECT_TRUE(WaitFor([&] { return FreeBytes() >= (24u << 20); }, 60))
      << "deleted data not freed: " << FreeBytes() << " bytes free";
  // Written data is stored again.
  std::string source = rig_.work_dir + "/new.src";
  ASSERT_EQ(Run("head -c 4M /dev/urandom > " + Quote(source)).exit_code, 0);
  CommandResult dd = Run("dd if=" + Quote(source) + " of=" + Quote(M("new")) +
                             " bs=1M conv=fsync status=none",
                         60);
  EXPECT_EQ(dd.exit_code, 0) << "write after freeing space: " << Brief(dd);
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(Run("cmp " + Quote(source) + " " + Quote(M("new"))).exit_code, 0);
  ExpectSums("keep", "after the remount", false);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult clean = Cairn("fsck " + Quote(rig_.volume_dir), 120);
  EXPECT_TRUE(clean.exit_code == 0 || clean.exit_code == 1) << Brief(clean);
}

}  // namespace
}  // namespace cairn_it

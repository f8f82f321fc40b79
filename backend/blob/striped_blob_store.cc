// StripedBlobStore: see striped_blob_store.h for the layout and promises.
#include "backend/blob/striped_blob_store.h"

#include <lz4.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/large_buffer.h"
#include "backend/base/log.h"
#include "backend/blob/shard_format.h"

namespace cairn {

const char* DiskStateName(DiskState state) {
  switch (state) {
    case DiskState::kOk:
      return "ok";
    case DiskState::kMissing:
      return "missing";
    case DiskState::kFailed:
      return "failed";
  }
  return "?";
}

namespace {

constexpr char kMarkerName[] = "cairn-disk";
// Locked by the store that has the disk open: format and disk replace
// never erase a disk in use.
constexpr char kDiskLockName[] = "cairn-disk.lock";
constexpr char kShardDir[] = "shards";
// Blobs smaller than this are stored as they are: the few bytes compression
// could save are not worth a decompression on every read.
constexpr size_t kMinCompressInput = 4096;
// Compression is kept only when it saves at least this share (an eighth):
// below that the decompression on every read costs more than the space is
// worth.
constexpr size_t kMinSavingDivisor = 8;

// True when `compressed_size` saves at least 1/kMinSavingDivisor of `size`.
bool SavesEnough(size_t compressed_size, size_t size) {
  return compressed_size <= size - size / kMinSavingDivisor;
}
constexpr size_t kDecodedCacheEntries = 4;
constexpr size_t kMaxGeometryEntries = 1 << 16;

// Compressing a whole 4 MiB blob of media or random data costs ~20% of a
// striped write's CPU (perf) for nothing; a 64 KiB sample from the middle
// tells the two apart for a sixty-fourth of that.
bool LooksCompressible(std::string_view data) {
  constexpr size_t kSample = 64 << 10;
  if (data.size() <= 2 * kSample) return true;
  std::string_view sample = data.substr(data.size() / 2 - kSample / 2, kSample);
  std::string out(LZ4_compressBound(kSample), '\0');
  int size = LZ4_compress_default(sample.data(), out.data(), kSample,
                                  static_cast<int>(out.size()));
  return size > 0 && SavesEnough(static_cast<size_t>(size), kSample);
}

std::string ShardRelPath(BlobId id) {
  return absl::StrFormat("%s/%02x/%016x.shard", kShardDir, id & 0xff, id);
}

// --- Disk marker ------------------------------------------------------------

struct Marker {
  std::string volume_id;
  int index = -1;
  int count = 0;
};

std::string MarkerText(const Marker& m) {
  std::string body = absl::StrFormat(
      "cairn disk marker 1\nvolume_id=%s\ndisk_index=%d\ndisk_count=%d\n",
      m.volume_id, m.index, m.count);
  return absl::StrFormat("%scrc32c=%08x\n", body, Crc32c(body));
}

// Parses a marker; an empty optional when it is not one.
std::optional<Marker> ParseMarker(std::string_view text) {
  size_t crc_at = text.rfind("crc32c=");
  if (crc_at == std::string_view::npos) return std::nullopt;
  uint64_t crc = 0;
  std::string_view crc_text = text.substr(crc_at + 7, 8);
  if (!ParseHex(crc_text, &crc) || Crc32c(text.substr(0, crc_at)) != crc) {
    return std::nullopt;
  }
  Marker m;
  for (const std::string& line :
       std::vector<std::string>(absl::StrSplit(std::string(text.substr(0, crc_at)), '\n'))) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "volume_id") m.volume_id = value;
    if (key == "disk_index" && !absl::SimpleAtoi(value, &m.index)) return std::nullopt;
    if (key == "disk_count" && !absl::SimpleAtoi(value, &m.count)) return std::nullopt;
  }
  if (m.volume_id.size() != 32 || m.index < 0 || m.count <= m.index) return std::nullopt;
  return m;
}

// Writes the marker into disk directory `root` (`dir_name` for messages):
// temp file, fsync, rename, then the shard directory, then a fsync of the
// directory that makes both durable.
absl::Status WriteMarker(Env* env, const std::string& root, const std::string& dir_name,
                         const Marker& m) {
  const std::string marker = root + "/" + kMarkerName;
  if (absl::Status s = WriteFileSynced(env, marker + ".tmp", MarkerText(m)); !s.ok()) {
    return FsError(GetFsErrorKind(s).value_or(FsErrorKind::kIo),
                   absl::StrCat("write marker in ", dir_name, ": ", s.message()));
  }
  if (absl::Status s = env->Rename(marker + ".tmp", marker); !s.ok()) return s;
  if (absl::Status s = env->CreateDir(root + "/" + kShardDir); !s.ok()) return s;
  return env->SyncDir(root);
}

// --- Threads ----------------------------------------------------------------

// A fixed set of threads for the per-disk parts of one request, so shard
// writes (and their fsyncs) on different disks overlap.
class TaskPool {
 public:
  explicit TaskPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~TaskPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Runs every task and returns when all have finished; the first runs on
  // the calling thread.
  void RunAll(std::vector<std::function<void()>>& tasks) {
    if (tasks.empty()) return;
    if (tasks.size() == 1) {
      // A random read's one shard: waking every pool thread to find an
      // empty queue cost more than the read (about 5 futex calls each).
      tasks[0]();
      return;
    }
    std::mutex done_mu;
    std::condition_variable done_cv;
    size_t pending = tasks.size() - 1;
    {
      std::lock_guard lock(mu_);
      for (size_t i = 1; i < tasks.size(); ++i) {
        queue_.push_back([&, i] {
          tasks[i]();
          std::lock_guard done_lock(done_mu);
          if (--pending == 0) done_cv.notify_one();
        });
      }
    }
    cv_.notify_all();
    tasks[0]();
    std::unique_lock done_lock(done_mu);
    done_cv.wait(done_lock, [&] { return pending == 0; });
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// --- Disks ------------------------------------------------------------------

struct Disk {
  int index = 0;
  std::string path;   // as configured: for messages and status
  // The directory that carried our marker at mount, held open: a disk
  // unmounted or swapped under its path is noticed, never written into.
  std::unique_ptr<Directory> dir;
  std::string root;   // dir->path(): paths through the held directory
  std::unique_ptr<FileLock> lock;  // held while the store has the disk open
  Env* env = nullptr;
  std::atomic<DiskState> state{DiskState::kOk};
  std::atomic<uint64_t> used_bytes{0};
  std::atomic<uint64_t> shard_count{0};
  std::array<std::atomic<bool>, 256> fanout_ready{};
  absl::Mutex mu;
  std::string problem ABSL_GUARDED_BY(mu);

  bool usable() const { return state.load() == DiskState::kOk; }
  std::string Problem() {
    absl::MutexLock lock(&mu);
    return problem;
  }
  // Rewrites an error about "/proc/self/fd/N/..." to name the disk's path.
  absl::Status Named(const absl::Status& status) const {
    if (status.ok() || root.empty()) return status;
    std::string message = absl::StrReplaceAll(status.message(), {{root, path}});
    return FsError(GetFsErrorKind(status).value_or(FsErrorKind::kIo), message);
  }
};

enum class ShardFailure { kNone, kMissing, kCorrupt, kIo, kUnavailable };

struct ShardRead {
  ShardFailure failure = ShardFailure::kNone;
  absl::Status status;
  ShardHeader header;
  std::string data;
};

struct Geometry {
  bool compressed = false;
  uint64_t blob_length = 0;
  uint64_t payload_length = 0;
  uint64_t shard_length = 0;
  uint32_t blob_crc32c = 0;
};

class StripedStoreImpl final : public StripedBlobStore {
 public:
  explicit StripedStoreImpl(StripedStoreOptions options)
      : options_(std::move(options)),
        codec_(options_.redundancy),
        pool_(std::max<int>(2, static_cast<int>(options_.disks.size()))) {}

  absl::Status Init();

  const Redundancy& redundancy() const override { return options_.redundancy; }

  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override;
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override;
  absl::Status Delete(BlobId id) override;
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override;
  absl::StatusOr<StoreUsage> Usage() override;

  std::vector<DiskInfo> Disks() override;
  StripedStoreCounters Counters() override;
  BlobCheck CheckBlob(BlobId id, bool repair, std::optional<uint32_t> expected) override;
  absl::StatusOr<std::vector<BlobId>> ListDiskIds(int index) override;
  double DegradedShare() override;
  bool CanRepair(BlobId id) override {
    DiskList disks = Snapshot();
    for (int i = 0; i < options_.redundancy.total_shards(); ++i) {
      if (!disks[Place(id, i)]->usable()) return false;
    }
    return true;
  }
  absl::Status ReplaceDisk(int index, const std::string& dir) override;
  void CheckDisks() override;

 private:
  using DiskList = std::vector<std::shared_ptr<Disk>>;

  DiskList Snapshot() {
    absl::MutexLock lock(&disks_mu_);
    return disks_;
  }
  size_t Place(BlobId id, int shard) const {
    return (id + static_cast<uint64_t>(shard)) % options_.disks.size();
  }
  std::mutex& BlobLock(BlobId id) { return blob_locks_[id % blob_locks_.size()]; }

  Env* DiskEnv(int index) const {
    if (index < static_cast<int>(options_.disk_envs.size()) &&
        options_.disk_envs[index] != nullptr) {
      return options_.disk_envs[index];
    }
    return options_.env;
  }
  absl::StatusOr<std::shared_ptr<Disk>> OpenDisk(int index, const std::string& path,
                                                 Marker* marker);
  std::optional<Marker> IdentityFromShards(Disk& disk);
  void ScanDisk(Disk& disk);
  void MarkFailed(Disk& disk, const absl::Status& why);

  absl::Status WriteShardFile(Disk& disk, BlobId id, std::string_view header,
                              std::string_view data, bool replace);
  // Reads shard `index` of `id`: the whole shard, or (whole == false) the
  // shard data [lo, hi); a header-only probe with lo == hi == 0.
  ShardRead ReadShard(Disk& disk, BlobId id, int index, bool whole, uint64_t lo,
                      uint64_t hi);
  absl::Status CheckHeader(const ShardHeader& h, BlobId id, int index,
                           const std::string& what) const;
  void NoteFailure(Disk& disk, BlobId id, int index, const ShardRead& read);

  std::optional<Geometry> CachedGeometry(BlobId id);
  void RememberGeometry(BlobId id, const Geometry& g);
  absl::StatusOr<std::string> ReadPayload(BlobId id, const DiskList& disks, Geometry* g);
  absl::StatusOr<std::string> Decode(const Geometry& g, std::string payload);
  std::shared_ptr<const std::string> CachedDecoded(BlobId id);
  void RememberDecoded(BlobId id, std::shared_ptr<const std::string> data);

  StripedStoreOptions options_;
  ShardCodec codec_;
  TaskPool pool_;
  absl::Mutex disks_mu_;
  DiskList disks_ ABSL_GUARDED_BY(disks_mu_);
  std::array<std::mutex, 64> blob_locks_;

  absl::Mutex cache_mu_;
  absl::flat_hash_map<BlobId, Geometry> geometry_ ABSL_GUARDED_BY(cache_mu_);
  std::deque<std::pair<BlobId, std::shared_ptr<const std::string>>> decoded_
      ABSL_GUARDED_BY(cache_mu_);

  struct AtomicCounters {
    std::atomic<uint64_t> shards_written{0}, bytes_written{0}, degraded_writes{0},
        reconstructions{0}, checksum_failures{0}, missing_shards{0}, io_errors{0},
        shards_repaired{0}, compressed_blobs{0};
  } counters_;
};

absl::StatusOr<std::shared_ptr<Disk>> StripedStoreImpl::OpenDisk(int index,
                                                                 const std::string& path,
                                                                 Marker* marker) {
  auto disk = std::make_shared<Disk>();
  disk->index = index;
  disk->path = path;
  disk->env = DiskEnv(index);
  absl::StatusOr<std::unique_ptr<Directory>> dir = disk->env->OpenDirectory(path);
  if (!dir.ok()) {
    return FsError(FsErrorKind::kIo, absl::StrCat("cannot open it: ", dir.status().message(),
                                                  " (is the disk mounted?)"));
  }
  disk->dir = std::move(*dir);
  disk->root = disk->dir->path();
  absl::StatusOr<std::string> text =
      ReadFileToString(disk->env, disk->root + "/" + kMarkerName);
  if (!text.ok()) {
    return FsError(FsErrorKind::kIo,
                   IsNotFoundError(text.status())
                       ? "no cairn disk marker: an empty directory or not this "
                         "volume's disk (is the disk mounted?)"
                       : std::string(text.status().message()));
  }
  std::optional<Marker> parsed = ParseMarker(*text);
  if (!parsed) {
    // A damaged marker alone must not take out a disk full of good shards.
    parsed = IdentityFromShards(*disk);
    if (!parsed) {
      return FsError(FsErrorKind::kIo, "its cairn disk marker is damaged, and it holds no "
                                       "shards of this volume that show which disk it is");
    }
    absl::Status rewritten =
        options_.read_only ? FsError(FsErrorKind::kReadOnly, "mounted read-only")
                           : WriteMarker(disk->env, disk->root, disk->path, *parsed);
    LogWarning("the cairn disk marker of %s was damaged; its shards show it is disk %d of "
               "this volume%s",
               path, parsed->index,
               rewritten.ok() ? absl::StrCat("; wrote the marker again")
                              : absl::StrCat(" (writing the marker again failed: ",
                                             rewritten.message(), ")"));
  }
  if (parsed->volume_id != options_.volume_id) {
    return FsError(FsErrorKind::kIo, absl::StrCat("it belongs to another cairn volume (",
                                                  parsed->volume_id, ")"));
  }
  if (parsed->count != static_cast<int>(options_.disks.size())) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("its marker says the volume has ", parsed->count,
                                " disks, the config ", options_.disks.size()));
  }
  absl::StatusOr<std::unique_ptr<FileLock>> lock =
      disk->env->LockFile(disk->root + "/" + kDiskLockName);
  if (!lock.ok()) {
    return FsError(FsErrorKind::kIo,
                   GetFsErrorKind(lock.status()) == FsErrorKind::kBusy
                       ? "another process has this disk open (a second daemon?)"
                       : std::string(lock.status().message()));
  }
  disk->lock = std::move(*lock);
  *marker = *parsed;
  return disk;
}

// Each shard header names its volume and its place in its blob, and shard
// i of blob b lives on disk (b + i) mod n: a few shards of this volume that
// agree on one index prove which disk this is. A shard of another volume,
// or shards that disagree, prove nothing.
std::optional<Marker> StripedStoreImpl::IdentityFromShards(Disk& disk) {
  constexpr int kEnough = 8;
  const int n = static_cast<int>(options_.disks.size());
  std::optional<int> index;
  int agreeing = 0;
  for (int fanout = 0; fanout < 256 && agreeing < kEnough; ++fanout) {
    const std::string fanout_dir = absl::StrFormat("%s/%s/%02x", disk.root, kShardDir, fanout);
    absl::StatusOr<std::vector<std::string>> names = disk.env->ListDir(fanout_dir);
    if (!names.ok()) continue;
    for (const std::string& name : *names) {
      if (agreeing >= kEnough) break;
      if (name.size() != 22 || name.substr(16) != ".shard") continue;
      const std::string path = fanout_dir + "/" + name;
      absl::StatusOr<std::unique_ptr<File>> file = disk.env->Open(path, OpenMode::kRead);
      if (!file.ok()) continue;
      absl::StatusOr<std::string> prefix = (*file)->PRead(0, kShardPrefixReadBytes);
      if (!prefix.ok()) continue;
      absl::StatusOr<ShardHeader> header = DecodeShardHeader(*prefix, path);
      if (!header.ok()) continue;
      if (header->volume_id != options_.volume_id) return std::nullopt;
      const int at = static_cast<int>((header->blob_id + header->index) % n);
      if (index && *index != at) return std::nullopt;
      index = at;
      agreeing++;
    }
  }
  if (!index) return std::nullopt;
  return Marker{options_.volume_id, *index, n};
}

void StripedStoreImpl::ScanDisk(Disk& disk) {
  uint64_t bytes = 0, count = 0;
  for (int fanout = 0; fanout < 256; ++fanout) {
    const std::string fanout_dir = absl::StrFormat("%s/%s/%02x", disk.root, kShardDir, fanout);
    absl::StatusOr<std::vector<std::string>> names = disk.env->ListDir(fanout_dir);
    if (!names.ok()) continue;
    disk.fanout_ready[fanout] = true;
    for (const std::string& name : *names) {
      if (name.size() != 22 || name.substr(16) != ".shard") continue;
      absl::StatusOr<FileInfo> info = disk.env->Stat(fanout_dir + "/" + name);
      if (info.ok()) {
        bytes += info->size;
        count++;
      }
    }
  }
  disk.used_bytes = bytes;
  disk.shard_count = count;
}

absl::Status StripedStoreImpl::Init() {
  const size_t n = options_.disks.size();
  const Redundancy& r = options_.redundancy;
  if (n == 0) return FsError(FsErrorKind::kInvalid, "a striped store needs at least one disk");
  if (static_cast<size_t>(r.total_shards()) > n) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("redundancy ", r.ToString(), " needs ", r.total_shards(),
                                " disks; the volume has ", n));
  }
  DiskList slots(n);
  std::vector<std::string> problems(n);
  for (size_t pos = 0; pos < n; ++pos) {
    Marker marker;
    absl::StatusOr<std::shared_ptr<Disk>> disk =
        OpenDisk(static_cast<int>(pos), options_.disks[pos], &marker);
    if (!disk.ok()) {
      problems[pos] = std::string(disk.status().message());
      continue;
    }
    size_t index = marker.index;
    if (slots[index] != nullptr) {
      problems[pos] = absl::StrCat("it is a second copy of disk ", index, " (",
                                   slots[index]->path, ")");
      continue;
    }
    if (index != pos) {
      LogWarning("disk %s holds disk %d of this volume, configured as disk %d: the disks "
                 "were swapped; using it as disk %d",
                 options_.disks[pos], index, pos, index);
    }
    (*disk)->index = static_cast<int>(index);
    slots[index] = *disk;
  }
  std::vector<std::string> missing;
  for (size_t index = 0; index < n; ++index) {
    if (slots[index] != nullptr) continue;
    auto disk = std::make_shared<Disk>();
    disk->index = static_cast<int>(index);
    disk->path = options_.disks[index];
    disk->state = DiskState::kMissing;
    std::string why = problems[index].empty() ? "its disk was not found at any configured path"
                                              : problems[index];
    {
      absl::MutexLock lock(&disk->mu);
      disk->problem = why;
    }
    missing.push_back(absl::StrCat(disk->path, " (", why, ")"));
    slots[index] = disk;
  }
  if (static_cast<int>(missing.size()) > r.parity_shards) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat(missing.size(), " of ", n, " disks are missing or unusable and ",
                                r.ToString(), " tolerates ", r.parity_shards, ": ",
                                absl::StrJoin(missing, "; "),
                                ". Reconnect them (or replace a lost one with cairn disk "
                                "replace)"));
  }
  if (!missing.empty()) {
    LogWarning("running degraded: %d of %d disks missing: %s. Every read rebuilds their "
               "shards from the others; replace a lost disk with cairn disk replace",
               missing.size(), n, absl::StrJoin(missing, "; "));
  }
  std::vector<std::function<void()>> scans;
  for (const std::shared_ptr<Disk>& disk : slots) {
    if (disk->usable()) scans.push_back([this, disk] { ScanDisk(*disk); });
  }
  pool_.RunAll(scans);
  absl::MutexLock lock(&disks_mu_);
  disks_ = std::move(slots);
  return absl::OkStatus();
}

void StripedStoreImpl::MarkFailed(Disk& disk, const absl::Status& why) {
  counters_.io_errors++;
  DiskState expected = DiskState::kOk;
  if (!disk.state.compare_exchange_strong(expected, DiskState::kFailed)) return;
  std::string message(disk.Named(why).message());
  {
    absl::MutexLock lock(&disk.mu);
    disk.problem = message;
  }
  LogError("disk %d (%s) failed and is no longer used: %s. Reads rebuild its shards from "
           "the other disks; replace it with: cairn disk replace VOLUME_DIR %s NEW_DIR",
           disk.index, disk.path, message, disk.path);
}

absl::Status StripedStoreImpl::WriteShardFile(Disk& disk, BlobId id, std::string_view header,
                                              std::string_view data, bool replace) {
  const int fanout = static_cast<int>(id & 0xff);
  const std::string fanout_dir = absl::StrFormat("%s/%s/%02x", disk.root, kShardDir, fanout);
  const std::string final_path = disk.root + "/" + ShardRelPath(id);
  const std::string path = replace ? final_path + ".tmp" : final_path;
  for (int attempt = 0;; ++attempt) {
    if (!disk.fanout_ready[fanout]) {
      // A disk emptied underneath us (rm -rf) loses these; they come back.
      // Each new directory entry is made durable in its parent, so a crash
      // cannot lose the path to a shard already reported stored.
      if (absl::Status s = disk.env->CreateDir(disk.root + "/" + kShardDir); !s.ok()) return s;
      if (absl::Status s = disk.env->SyncDir(disk.root); !s.ok()) return s;
      if (absl::Status s = disk.env->CreateDir(fanout_dir); !s.ok()) return s;
      if (absl::Status s = disk.env->SyncDir(disk.root + "/" + kShardDir); !s.ok()) return s;
      disk.fanout_ready[fanout] = true;
    }
    // A file already there is a leftover of a crash before its commit (or
    // of an earlier repair): nothing references it.
    if (absl::Status s = disk.env->Remove(path); !s.ok()) return s;
    // One direct write from an aligned buffer, cut to size afterwards (see
    // DURABILITY review 3 for why direct I/O).
    constexpr size_t kAlign = 4096;
    const size_t length = header.size() + data.size();
    const size_t padded = (length + kAlign - 1) / kAlign * kAlign;
    LargeBuffer buffer = AcquireLargeBuffer(std::max(padded, kAlign));
    if (!buffer) return FsError(FsErrorKind::kIo, "out of memory for a shard write");
    memcpy(buffer.data(), header.data(), header.size());
    if (!data.empty()) memcpy(buffer.data() + header.size(), data.data(), data.size());
    memset(buffer.data() + length, 0, padded - length);
    absl::StatusOr<std::unique_ptr<File>> file =
        disk.env->Open(path, OpenMode::kCreateExclusiveDirect);
    if (!file.ok()) {
      if (attempt == 0 && GetFsErrorKind(file.status()) == FsErrorKind::kNotFound) {
        disk.fanout_ready[fanout] = false;
        continue;
      }
      return file.status();
    }
    absl::Status status = (*file)->PWrite(0, std::string_view(buffer.data(), padded));
    if (status.ok()) status = (*file)->Truncate(length);
    if (status.ok()) status = (*file)->Sync();
    absl::Status closed = (*file)->Close();
    if (status.ok()) status = closed;
    if (status.ok() && replace) status = disk.env->Rename(path, final_path);
    if (status.ok()) status = disk.env->SyncDir(fanout_dir);
    if (!status.ok()) {
      disk.env->Remove(path).IgnoreError();  // best effort; the error is status
      return status;
    }
    disk.used_bytes += length;
    if (!replace) disk.shard_count++;
    counters_.shards_written++;
    counters_.bytes_written += length;
    return absl::OkStatus();
  }
}

absl::Status StripedStoreImpl::CheckHeader(const ShardHeader& h, BlobId id, int index,
                                           const std::string& what) const {
  const Redundancy& r = options_.redundancy;
  std::string why;
  if (h.volume_id != options_.volume_id) {
    why = absl::StrCat("it belongs to volume ", h.volume_id);
  } else if (h.blob_id != id) {
    why = absl::StrCat("its header names blob ", h.blob_id);
  } else if (h.index != index) {
    why = absl::StrCat("its header says shard ", h.index, ", expected ", index);
  } else if (h.data_shards != r.data_shards || h.parity_shards != r.parity_shards ||
             h.copies != r.copies) {
    why = "its header names another redundancy scheme";
  } else {
    return absl::OkStatus();
  }
  return FsError(FsErrorKind::kIo, absl::StrCat("shard ", what, " is corrupt: ", why));
}

ShardRead StripedStoreImpl::ReadShard(Disk& disk, BlobId id, int index, bool whole,
                                      uint64_t lo, uint64_t hi) {
  ShardRead out;
  const std::string what = disk.path + "/" + ShardRelPath(id);
  auto fail = [&](ShardFailure kind, absl::Status status) {
    out.failure = kind;
    out.status = disk.Named(status);
    return std::move(out);
  };
  absl::StatusOr<std::unique_ptr<File>> file =
      disk.env->Open(disk.root + "/" + ShardRelPath(id), OpenMode::kRead);
  if (!file.ok()) {
    bool absent = GetFsErrorKind(file.status()) == FsErrorKind::kNotFound;
    return fail(absent ? ShardFailure::kMissing : ShardFailure::kIo, file.status());
  }
  absl::StatusOr<std::string> prefix = (*file)->PRead(0, kShardPrefixReadBytes);
  if (!prefix.ok()) return fail(ShardFailure::kIo, prefix.status());
  std::string bytes = std::move(*prefix);
  absl::StatusOr<ShardHeader> header = DecodeShardHeader(bytes, what);
  if (!header.ok()) return fail(ShardFailure::kCorrupt, header.status());
  if (absl::Status s = CheckHeader(*header, id, index, what); !s.ok()) {
    return fail(ShardFailure::kCorrupt, s);
  }
  const ShardHeader& h = *header;
  if (whole) {
    // The data is read straight into the result after the header: reading
    // the file whole and copying the data out cost a second blob-sized
    // buffer per shard.
    absl::StatusOr<uint64_t> size = (*file)->Size();
    if (!size.ok()) return fail(ShardFailure::kIo, size.status());
    if (*size != h.data_offset + h.shard_length) {
      return fail(ShardFailure::kCorrupt,
                  FsError(FsErrorKind::kIo,
                          absl::StrCat("shard ", what, " is corrupt: ", *size,
                                       " bytes long, its header says ",
                                       h.data_offset + h.shard_length)));
    }
    absl::StatusOr<std::string> data = (*file)->PRead(h.data_offset, h.shard_length);
    if (!data.ok()) return fail(ShardFailure::kIo, data.status());
    if (data->size() != h.shard_length) {
      return fail(ShardFailure::kCorrupt,
                  FsError(FsErrorKind::kIo,
                          absl::StrCat("shard ", what, " is corrupt: data cut short")));
    }
    if (absl::Status s = VerifyShardChunks(h, 0, *data, what); !s.ok()) {
      return fail(ShardFailure::kCorrupt, s);
    }
    out.data = std::move(*data);
    out.header = std::move(*header);
    return out;
  }
  if (hi > h.shard_length || lo > hi) {
    return fail(ShardFailure::kCorrupt,
                FsError(FsErrorKind::kIo, absl::StrCat("shard ", what,
                                                       " is shorter than the blob needs")));
  }
  if (lo < hi) {
    const uint64_t chunk = h.chunk_bytes;
    const uint64_t first = lo / chunk;
    const uint64_t start = first * chunk;
    const uint64_t stop = std::min(((hi - 1) / chunk + 1) * chunk, h.shard_length);
    std::string range;
    if (h.data_offset + stop <= bytes.size()) {
      range = bytes.substr(h.data_offset + start, stop - start);
    } else {
      absl::StatusOr<std::string> read = (*file)->PRead(h.data_offset + start, stop - start);
      if (!read.ok()) return fail(ShardFailure::kIo, read.status());
      range = std::move(*read);
    }
    if (range.size() != stop - start) {
      return fail(ShardFailure::kCorrupt,
                  FsError(FsErrorKind::kIo, absl::StrCat("shard ", what,
                                                         " is corrupt: data cut short")));
    }
    if (absl::Status s = VerifyShardChunks(h, first, range, what); !s.ok()) {
      return fail(ShardFailure::kCorrupt, s);
    }
    // A whole blob for the read cache is a range the chunks cover exactly:
    // moved, not copied, or every load held the blob twice.
    if (lo == start && hi == stop) {
      out.data = std::move(range);
    } else {
      out.data = range.substr(lo - start, hi - lo);
    }
  }
  out.header = std::move(*header);
  return out;
}

void StripedStoreImpl::NoteFailure(Disk& disk, BlobId id, int index, const ShardRead& read) {
  switch (read.failure) {
    case ShardFailure::kNone:
    case ShardFailure::kUnavailable:
      return;
    case ShardFailure::kMissing:
      counters_.missing_shards++;
      break;
    case ShardFailure::kCorrupt:
      counters_.checksum_failures++;
      break;
    case ShardFailure::kIo:
      MarkFailed(disk, read.status);
      break;
  }
  LogWarning("blob %d: shard %d on disk %d is bad (%s); rebuilding it from the others",
             id, index, disk.index, read.status.message());
}

std::optional<Geometry> StripedStoreImpl::CachedGeometry(BlobId id) {
  absl::MutexLock lock(&cache_mu_);
  auto it = geometry_.find(id);
  if (it == geometry_.end()) return std::nullopt;
  return it->second;
}

void StripedStoreImpl::RememberGeometry(BlobId id, const Geometry& g) {
  absl::MutexLock lock(&cache_mu_);
  if (geometry_.size() >= kMaxGeometryEntries) geometry_.clear();
  geometry_[id] = g;
}

std::shared_ptr<const std::string> StripedStoreImpl::CachedDecoded(BlobId id) {
  absl::MutexLock lock(&cache_mu_);
  for (const auto& [cached_id, data] : decoded_) {
    if (cached_id == id) return data;
  }
  return nullptr;
}

void StripedStoreImpl::RememberDecoded(BlobId id, std::shared_ptr<const std::string> data) {
  absl::MutexLock lock(&cache_mu_);
  decoded_.emplace_front(id, std::move(data));
  if (decoded_.size() > kDecodedCacheEntries) decoded_.pop_back();
}

absl::StatusOr<BlobInfo> StripedStoreImpl::Put(BlobId id, std::string_view data) {
  if (options_.read_only) {
    return FsError(FsErrorKind::kReadOnly, "the volume is mounted read-only");
  }
  if (data.size() > kMaxBlobBytes) {
    return FsError(FsErrorKind::kInvalid, "blob larger than 4 MiB");
  }
  const Redundancy& r = options_.redundancy;
  const int n = r.total_shards();
  const uint32_t crc = Crc32c(data);
  std::string compressed;
  std::string_view payload = data;
  if (options_.compress && data.size() >= kMinCompressInput && LooksCompressible(data)) {
    compressed.resize(LZ4_compressBound(static_cast<int>(data.size())));
    int size = LZ4_compress_default(data.data(), compressed.data(),
                                    static_cast<int>(data.size()),
                                    static_cast<int>(compressed.size()));
    if (size > 0 && SavesEnough(static_cast<size_t>(size), data.size())) {
      compressed.resize(size);
      payload = compressed;
    }
  }
  const bool is_compressed = payload.data() != data.data();
  // Whole copies (one disk, copies:N) store the payload itself in every
  // shard: a copy of it per shard would only cost memory, 4 MiB a blob per
  // concurrent writer. Erasure coding needs its padded shards and parity.
  std::vector<std::string> encoded;
  std::vector<std::string_view> shards;
  if (r.copies || n == 1) {
    shards.assign(n, payload);
  } else {
    encoded = codec_.Encode(payload);
    shards.assign(encoded.begin(), encoded.end());
  }
  DiskList disks = Snapshot();
  std::vector<std::shared_ptr<Disk>> targets(n);
  std::vector<absl::Status> results(n, absl::OkStatus());
  // Decided once: a disk failing meanwhile must not change which shards
  // count as written or get cleaned up.
  std::vector<bool> attempted(n, false);
  std::vector<std::function<void()>> writes;
  int usable = 0;
  for (int i = 0; i < n; ++i) {
    targets[i] = disks[Place(id, i)];
    if (!targets[i]->usable()) continue;
    attempted[i] = true;
    usable++;
    writes.push_back([&, i] {
      ShardHeader h;
      h.compressed = is_compressed;
      h.data_shards = r.data_shards;
      h.parity_shards = r.parity_shards;
      h.copies = r.copies;
      h.index = i;
      h.volume_id = options_.volume_id;
      h.blob_id = id;
      h.blob_length = data.size();
      h.payload_length = payload.size();
      h.shard_length = shards[i].size();
      h.blob_crc32c = crc;
      std::string header = EncodeShardHeader(&h, shards[i]);
      results[i] = WriteShardFile(*targets[i], id, header, shards[i], /*replace=*/false);
    });
  }
  auto down_disks = [&] {
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
      if (!targets[i]->usable()) {
        names.push_back(absl::StrCat(targets[i]->path, " (", DiskStateName(targets[i]->state),
                                     ": ", targets[i]->Problem(), ")"));
      }
    }
    return absl::StrJoin(names, "; ");
  };
  if (usable < r.min_shards_for_write()) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("cannot store data: only ", usable, " of ", n,
                                " disks work and ", r.ToString(), " needs ",
                                r.min_shards_for_write(), " for a write; down: ", down_disks()));
  }
  pool_.RunAll(writes);
  int stored = 0;
  absl::Status no_space, failure;
  for (int i = 0; i < n; ++i) {
    if (!attempted[i]) continue;
    if (results[i].ok()) {
      stored++;
      continue;
    }
    absl::Status named = targets[i]->Named(results[i]);
    if (GetFsErrorKind(results[i]) == FsErrorKind::kNoSpace) {
      no_space = named;
    } else {
      failure = named;
      MarkFailed(*targets[i], results[i]);
    }
  }
  if (!no_space.ok() || stored < r.min_shards_for_write()) {
    // Nothing half-stored stays behind: the blob is not committed anyway.
    for (int i = 0; i < n; ++i) {
      if (attempted[i] && results[i].ok()) {
        targets[i]->env->Remove(targets[i]->root + "/" + ShardRelPath(id)).IgnoreError();
      }
    }
    if (!no_space.ok()) return no_space;
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("cannot store data: only ", stored, " of ", n,
                                " shards could be written (", failure.message(), ")"));
  }
  if (stored < n) {
    counters_.degraded_writes++;
    if (options_.queue_repair) options_.queue_repair(id);
  }
  if (is_compressed) counters_.compressed_blobs++;
  RememberGeometry(id, Geometry{is_compressed, data.size(), payload.size(), shards[0].size(), crc});
  return BlobInfo{data.size(), crc};
}

absl::StatusOr<std::string> StripedStoreImpl::ReadPayload(BlobId id, const DiskList& disks,
                                                          Geometry* g) {
  const Redundancy& r = options_.redundancy;
  const int n = r.total_shards(), k = r.data_shards;
  std::vector<ShardRead> reads(n);
  std::vector<bool> have(n, false), tried(n, false);
  auto read_set = [&](int from, int to) {
    std::vector<std::function<void()>> tasks;
    for (int i = from; i < to; ++i) {
      tried[i] = true;
      Disk& disk = *disks[Place(id, i)];
      if (!disk.usable()) {
        reads[i].failure = ShardFailure::kUnavailable;
        reads[i].status = FsError(FsErrorKind::kIo, absl::StrCat("disk ", disk.path, " is ",
                                                                 DiskStateName(disk.state)));
        continue;
      }
      tasks.push_back([&, i] { reads[i] = ReadShard(*disks[Place(id, i)], id, i, true, 0, 0); });
    }
    pool_.RunAll(tasks);
  };
  const int first_batch = r.copies ? 1 : k;
  read_set(0, first_batch);
  const ShardHeader* reference = nullptr;
  auto count_good = [&] {
    int good = 0;
    for (int i = 0; i < n; ++i) {
      if (!tried[i] || reads[i].failure != ShardFailure::kNone) continue;
      if (reference == nullptr) reference = &reads[i].header;
      if (!reads[i].header.SameBlobAs(*reference)) {
        reads[i].failure = ShardFailure::kCorrupt;
        reads[i].status = FsError(FsErrorKind::kIo,
                                  absl::StrCat("shard ", i, " of blob ", id,
                                               " does not agree with the others"));
        continue;
      }
      good++;
    }
    return good;
  };
  int good = count_good();
  if (good < k) {
    read_set(first_batch, n);
    reference = nullptr;
    good = count_good();
  }
  bool rebuilt = false;
  std::vector<std::string> problems;
  std::vector<std::string> shards(n);
  for (int i = 0; i < n; ++i) {
    if (!tried[i]) continue;
    if (reads[i].failure == ShardFailure::kNone) {
      have[i] = true;
      shards[i] = std::move(reads[i].data);
      continue;
    }
    problems.push_back(std::string(reads[i].status.message()));
    if (reads[i].failure != ShardFailure::kUnavailable) {
      NoteFailure(*disks[Place(id, i)], id, i, reads[i]);
      rebuilt = true;
    }
  }
  if (good < k) {
    if (good == 0 && problems.empty()) problems.push_back("no shard found");
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("blob ", id, " cannot be read: only ", good, " of ", n,
                                " shards are good and ", k, " are needed: ",
                                absl::StrJoin(problems, "; ")));
  }
  *g = Geometry{reference->compressed, reference->blob_length, reference->payload_length,
                reference->shard_length, reference->blob_crc32c};
  bool data_complete = true;
  for (int i = 0; i < k; ++i) data_complete = data_complete && have[i];
  if (!data_complete) {
    if (absl::Status s = codec_.Reconstruct(shards, have); !s.ok()) return s;
  }
  if (rebuilt) {
    counters_.reconstructions++;
    if (options_.queue_repair) options_.queue_repair(id);
  }
  return ShardCodec::Join(std::move(shards), k, g->payload_length);
}

absl::StatusOr<std::string> StripedStoreImpl::Decode(const Geometry& g, std::string payload) {
  std::string data;
  if (g.compressed) {
    data.resize(g.blob_length);
    int n = LZ4_decompress_safe(payload.data(), data.data(), static_cast<int>(payload.size()),
                                static_cast<int>(data.size()));
    if (n < 0 || static_cast<uint64_t>(n) != g.blob_length) {
      return FsError(FsErrorKind::kIo, "blob data does not decompress");
    }
  } else {
    data = std::move(payload);
  }
  if (data.size() != g.blob_length || Crc32c(data) != g.blob_crc32c) {
    return FsError(FsErrorKind::kIo, "blob data does not match its checksum");
  }
  return data;
}

absl::StatusOr<std::string> StripedStoreImpl::Read(BlobId id, uint64_t offset,
                                                   uint64_t length) {
  const Redundancy& r = options_.redundancy;
  const int n = r.total_shards();
  DiskList disks = Snapshot();
  std::optional<Geometry> geometry = CachedGeometry(id);
  if (!geometry) {
    // Any shard's header tells the geometry; data shards first.
    for (int i = 0; i < n && !geometry; ++i) {
      Disk& disk = *disks[Place(id, i)];
      if (!disk.usable()) continue;
      ShardRead probe = ReadShard(disk, id, i, false, 0, 0);
      if (probe.failure == ShardFailure::kNone) {
        const ShardHeader& h = probe.header;
        RememberGeometry(id, Geometry{h.compressed, h.blob_length, h.payload_length,
                                      h.shard_length, h.blob_crc32c});
        geometry = CachedGeometry(id);
      }
    }
  }
  auto slice = [&](const Geometry& g, std::string_view data) -> absl::StatusOr<std::string> {
    if (offset > g.blob_length || length > g.blob_length - offset) {
      return FsError(FsErrorKind::kInvalid, absl::StrCat("read past the end of blob ", id));
    }
    return std::string(data.substr(offset, length));
  };
  if (geometry && (offset > geometry->blob_length || length > geometry->blob_length - offset)) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("read past the end of blob ", id));
  }
  if (geometry && length == 0) return std::string();
  if (geometry && geometry->compressed) {
    if (std::shared_ptr<const std::string> decoded = CachedDecoded(id)) {
      return slice(*geometry, *decoded);
    }
  }
  if (geometry && !geometry->compressed) {
    // The direct path: only the data shards under the range, only the
    // chunks under it, each verified.
    const uint64_t s = geometry->shard_length;
    std::string out;
    bool ok = true;
    if (r.copies) {
      Disk& disk = *disks[Place(id, 0)];
      ok = disk.usable();
      if (ok) {
        ShardRead read = ReadShard(disk, id, 0, false, offset, offset + length);
        ok = read.failure == ShardFailure::kNone;
        out = std::move(read.data);
      }
    } else {
      // Several data shards (a sequential read): read them in parallel, as
      // they sit on different disks.
      const uint64_t first = offset / s, last = (offset + length - 1) / s;
      std::vector<ShardRead> parts(last - first + 1);
      std::vector<std::function<void()>> tasks;
      for (uint64_t j = first; j <= last; ++j) {
        Disk& disk = *disks[Place(id, static_cast<int>(j))];
        if (!disk.usable()) {
          ok = false;
          break;
        }
        uint64_t lo = std::max(offset, j * s) - j * s;
        uint64_t hi = std::min(offset + length, (j + 1) * s) - j * s;
        tasks.push_back([&, j, lo, hi, d = &disk] {
          parts[j - first] = ReadShard(*d, id, static_cast<int>(j), false, lo, hi);
        });
      }
      if (ok) pool_.RunAll(tasks);
      for (ShardRead& part : parts) {
        if (!ok || part.failure != ShardFailure::kNone) {
          ok = false;
          break;
        }
        if (out.empty()) {
          out = std::move(part.data);
        } else {
          out += part.data;
        }
      }
    }
    if (ok) return out;
  }
  // The whole blob, rebuilt from whichever K shards are good.
  Geometry g;
  absl::StatusOr<std::string> payload = ReadPayload(id, disks, &g);
  if (!payload.ok()) return payload.status();
  absl::StatusOr<std::string> data = Decode(g, std::move(*payload));
  if (!data.ok()) {
    return FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, ": ", data.status().message()));
  }
  RememberGeometry(id, g);
  if (g.compressed) {
    auto shared = std::make_shared<const std::string>(std::move(*data));
    RememberDecoded(id, shared);
    return slice(g, *shared);
  }
  if (offset == 0 && length == data->size()) return std::move(*data);
  return slice(g, *data);
}

absl::Status StripedStoreImpl::Delete(BlobId id) {
  std::lock_guard lock(BlobLock(id));
  {
    absl::MutexLock cache_lock(&cache_mu_);
    geometry_.erase(id);
    for (auto it = decoded_.begin(); it != decoded_.end(); ++it) {
      if (it->first == id) {
        decoded_.erase(it);
        break;
      }
    }
  }
  absl::Status first_error;
  for (const std::shared_ptr<Disk>& disk : Snapshot()) {
    if (disk->state == DiskState::kMissing) continue;
    std::string rel = ShardRelPath(id);
    absl::StatusOr<FileInfo> info = disk->env->Stat(disk->root + "/" + rel);
    if (!info.ok()) continue;  // not on this disk
    absl::Status s = disk->env->Remove(disk->root + "/" + rel);
    if (!s.ok()) {
      // A failed disk keeps the shard; fsck --repair removes such leftovers.
      if (disk->usable() && first_error.ok()) first_error = disk->Named(s);
      continue;
    }
    disk->used_bytes -= std::min<uint64_t>(disk->used_bytes, info->size);
    if (disk->shard_count > 0) disk->shard_count--;
  }
  return first_error;
}

absl::StatusOr<std::vector<BlobId>> StripedStoreImpl::ListDiskIds(int index) {
  DiskList disks = Snapshot();
  if (index < 0 || index >= static_cast<int>(disks.size())) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("no disk ", index));
  }
  Disk& disk = *disks[index];
  if (!disk.usable()) return std::vector<BlobId>();
  std::vector<BlobId> ids;
  for (int fanout = 0; fanout < 256; ++fanout) {
    absl::StatusOr<std::vector<std::string>> names =
        disk.env->ListDir(absl::StrFormat("%s/%s/%02x", disk.root, kShardDir, fanout));
    if (!names.ok()) continue;  // no such fan-out directory
    for (const std::string& name : *names) {
      BlobId id = 0;
      if (name.size() == 22 && name.substr(16) == ".shard" &&
          ParseHex(std::string_view(name).substr(0, 16), &id) &&
          static_cast<int>(id & 0xff) == fanout) {
        ids.push_back(id);
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::vector<BlobId>> StripedStoreImpl::ListIds(BlobId from) {
  std::vector<BlobId> all;
  for (int i = 0; i < static_cast<int>(options_.disks.size()); ++i) {
    absl::StatusOr<std::vector<BlobId>> ids = ListDiskIds(i);
    if (!ids.ok()) return ids.status();
    for (BlobId id : *ids) {
      if (id >= from) all.push_back(id);
    }
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

std::vector<DiskInfo> StripedStoreImpl::Disks() {
  std::vector<DiskInfo> out;
  for (const std::shared_ptr<Disk>& disk : Snapshot()) {
    DiskInfo info;
    info.index = disk->index;
    info.path = disk->path;
    info.state = disk->state;
    info.problem = disk->Problem();
    info.used_bytes = disk->used_bytes;
    info.shard_count = disk->shard_count;
    if (disk->state != DiskState::kMissing) {
      if (absl::StatusOr<SpaceInfo> space = disk->env->StatFs(disk->root); space.ok()) {
        info.capacity_bytes = space->capacity_bytes;
        info.free_bytes = space->available_bytes;
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<StoreUsage> StripedStoreImpl::Usage() {
  // What the user can still store: every blob puts 1/K of its size (a whole
  // copy with copies) on total_shards() disks, so the fullest usable disk
  // decides.
  const Redundancy& r = options_.redundancy;
  StoreUsage usage;
  uint64_t min_free = UINT64_MAX, min_capacity = UINT64_MAX, shards = 0;
  int usable = 0;
  for (const DiskInfo& disk : Disks()) {
    usage.used_bytes += disk.used_bytes;
    if (disk.state != DiskState::kOk) continue;
    shards += disk.shard_count;
    usable++;
    min_free = std::min(min_free, disk.free_bytes);
    min_capacity = std::min(min_capacity, disk.capacity_bytes);
  }
  if (usable == 0) return usage;
  const uint64_t n = options_.disks.size();
  const uint64_t per_disk_share = r.copies ? 1 : r.data_shards;
  usage.free_bytes = min_free / r.total_shards() * n * per_disk_share;
  usage.capacity_bytes = min_capacity / r.total_shards() * n * per_disk_share;
  // Every disk holds total/n of the blobs' shards; a down disk's count is
  // unknown, so the working ones speak for it.
  usage.blob_count = shards * n / (static_cast<uint64_t>(usable) * r.total_shards());
  return usage;
}

double StripedStoreImpl::DegradedShare() {
  DiskList disks = Snapshot();
  const size_t n = disks.size();
  // Blob b uses disks b, b+1, ..., b+total-1 (mod n): count the windows
  // touching a disk that is down.
  size_t degraded = 0;
  for (size_t start = 0; start < n; ++start) {
    for (int i = 0; i < options_.redundancy.total_shards(); ++i) {
      if (!disks[(start + i) % n]->usable()) {
        degraded++;
        break;
      }
    }
  }
  return static_cast<double>(degraded) / n;
}

StripedStoreCounters StripedStoreImpl::Counters() {
  StripedStoreCounters c;
  c.shards_written = counters_.shards_written;
  c.bytes_written = counters_.bytes_written;
  c.degraded_writes = counters_.degraded_writes;
  c.reconstructions = counters_.reconstructions;
  c.checksum_failures = counters_.checksum_failures;
  c.missing_shards = counters_.missing_shards;
  c.io_errors = counters_.io_errors;
  c.shards_repaired = counters_.shards_repaired;
  c.compressed_blobs = counters_.compressed_blobs;
  return c;
}

BlobCheck StripedStoreImpl::CheckBlob(BlobId id, bool repair,
                                      std::optional<uint32_t> expected) {
  const Redundancy& r = options_.redundancy;
  const int n = r.total_shards(), k = r.data_shards;
  BlobCheck check;
  check.shards_total = n;
  DiskList disks = Snapshot();
  std::vector<ShardRead> reads(n);
  std::vector<std::function<void()>> tasks;
  for (int i = 0; i < n; ++i) {
    Disk& disk = *disks[Place(id, i)];
    if (!disk.usable()) {
      reads[i].failure = ShardFailure::kUnavailable;
      continue;
    }
    tasks.push_back([&, i] { reads[i] = ReadShard(*disks[Place(id, i)], id, i, true, 0, 0); });
  }
  pool_.RunAll(tasks);
  int missing = 0;
  const ShardHeader* reference = nullptr;
  std::vector<bool> have(n, false);
  std::vector<std::string> shards(n);
  for (int i = 0; i < n; ++i) {
    ShardRead& read = reads[i];
    if (read.failure == ShardFailure::kNone) {
      if (reference == nullptr) reference = &read.header;
      if (read.header.SameBlobAs(*reference)) {
        have[i] = true;
        check.bytes_read += read.header.data_offset + read.data.size();
        shards[i] = std::move(read.data);
        continue;
      }
      read.failure = ShardFailure::kCorrupt;
      read.status = FsError(FsErrorKind::kIo, absl::StrCat("shard ", i, " of blob ", id,
                                                           " does not agree with the others"));
    }
    if (read.failure == ShardFailure::kUnavailable) {
      check.shards_unavailable++;
      continue;
    }
    if (read.failure == ShardFailure::kMissing) missing++;
    check.shards_bad++;
    check.problems.push_back(std::string(read.status.message()));
    NoteFailure(*disks[Place(id, i)], id, i, read);
  }
  int good = n - check.shards_bad - check.shards_unavailable;
  if (good == 0 && missing == check.shards_bad) {
    check.absent = true;
    check.lost = true;
    check.problems = {absl::StrCat("blob ", id, " has no shard on any usable disk")};
    return check;
  }
  if (good < k) {
    check.lost = true;
    check.problems.push_back(absl::StrCat("blob ", id, " is lost: only ", good, " of ", n,
                                          " shards are good and ", k, " are needed"));
    return check;
  }
  // Decode, check end to end, and derive every shard anew from the data:
  // a shard that verifies but disagrees with the rest is bad too.
  std::vector<std::string> rebuilt = shards;
  if (absl::Status s = codec_.Reconstruct(rebuilt, have); !s.ok()) {
    check.lost = true;
    check.problems.push_back(std::string(s.message()));
    return check;
  }
  Geometry g{reference->compressed, reference->blob_length, reference->payload_length,
             reference->shard_length, reference->blob_crc32c};
  std::string payload = ShardCodec::Join(std::move(rebuilt), k, g.payload_length);
  absl::StatusOr<std::string> data = Decode(g, payload);
  if (!data.ok() || (expected && *expected != g.blob_crc32c)) {
    check.lost = true;
    check.problems.push_back(absl::StrCat(
        "blob ", id, " decodes to data that does not match ",
        data.ok() ? "the checksum the namespace recorded" : "its checksum"));
    return check;
  }
  std::vector<std::string> encoded = codec_.Encode(payload);
  std::vector<int> to_write;
  for (int i = 0; i < n; ++i) {
    if (reads[i].failure == ShardFailure::kUnavailable) continue;
    if (have[i] && shards[i] != encoded[i]) {
      check.shards_bad++;
      check.problems.push_back(absl::StrCat("shard ", i, " of blob ", id, " on ",
                                            disks[Place(id, i)]->path,
                                            " verifies but does not match the others"));
      to_write.push_back(i);
    } else if (!have[i]) {
      to_write.push_back(i);
    }
  }
  if (!repair || to_write.empty()) return check;
  std::lock_guard lock(BlobLock(id));
  // Deleted since we read it (garbage collection)? Then nothing to repair.
  bool still_there = false;
  for (int i = 0; i < n && !still_there; ++i) {
    Disk& disk = *disks[Place(id, i)];
    still_there = have[i] && disk.env->Exists(disk.root + "/" + ShardRelPath(id));
  }
  if (!still_there) return check;
  for (int i : to_write) {
    Disk& disk = *disks[Place(id, i)];
    ShardHeader h = *reference;
    h.index = i;
    std::string header = EncodeShardHeader(&h, encoded[i]);
    absl::Status s = WriteShardFile(disk, id, header, encoded[i], /*replace=*/true);
    if (!s.ok()) {
      check.problems.push_back(absl::StrCat("could not rewrite shard ", i, " of blob ", id,
                                            ": ", disk.Named(s).message()));
      if (GetFsErrorKind(s) != FsErrorKind::kNoSpace) MarkFailed(disk, s);
      continue;
    }
    if (!have[i] && reads[i].failure == ShardFailure::kMissing) disk.shard_count++;
    check.shards_repaired++;
    counters_.shards_repaired++;
  }
  if (check.shards_repaired > 0) {
    LogInfo("blob %d: rewrote %d bad shard(s)", id, check.shards_repaired);
  }
  return check;
}

absl::Status StripedStoreImpl::ReplaceDisk(int index, const std::string& dir) {
  if (index < 0 || index >= static_cast<int>(options_.disks.size())) {
    return FsError(FsErrorKind::kInvalid, absl::StrCat("no disk ", index));
  }
  Marker marker;
  absl::StatusOr<std::shared_ptr<Disk>> disk = OpenDisk(index, dir, &marker);
  if (!disk.ok()) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("new disk ", dir, ": ", disk.status().message()));
  }
  if (marker.index != index) {
    return FsError(FsErrorKind::kInvalid,
                   absl::StrCat("new disk ", dir, " is prepared as disk ", marker.index,
                                ", not ", index));
  }
  ScanDisk(**disk);
  absl::MutexLock lock(&disks_mu_);
  disks_[index] = std::move(*disk);
  options_.disks[index] = dir;
  LogInfo("disk %d is now %s", index, dir);
  return absl::OkStatus();
}

void StripedStoreImpl::CheckDisks() {
  for (const std::shared_ptr<Disk>& disk : Snapshot()) {
    if (!disk->usable()) continue;
    absl::StatusOr<FileInfo> now = disk->env->Stat(disk->path);
    if (!now.ok() || now->device != disk->dir->info().device ||
        now->inode != disk->dir->info().inode) {
      MarkFailed(*disk, FsError(FsErrorKind::kIo,
                                absl::StrCat(disk->path,
                                             " no longer leads to the disk opened at mount "
                                             "(unmounted, removed or replaced underneath)")));
      continue;
    }
    if (!disk->env->Exists(disk->root + "/" + kMarkerName)) {
      Marker marker{options_.volume_id, disk->index, static_cast<int>(options_.disks.size())};
      absl::Status s = WriteMarker(disk->env, disk->root, disk->path, marker);
      if (s.ok()) {
        for (auto& ready : disk->fanout_ready) ready = false;
        LogWarning("the marker of disk %d (%s) was deleted; wrote it again", disk->index,
                   disk->path);
      }
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<StripedBlobStore>> StripedBlobStore::Open(
    StripedStoreOptions options) {
  auto store = std::make_unique<StripedStoreImpl>(std::move(options));
  if (absl::Status s = store->Init(); !s.ok()) return s;
  return std::unique_ptr<StripedBlobStore>(std::move(store));
}

absl::StatusOr<StripedBlobStore::DiskIdentity> StripedBlobStore::ReadDiskIdentity(
    Env* env, const std::string& dir) {
  absl::StatusOr<std::string> text = ReadFileToString(env, dir + "/" + kMarkerName);
  if (!text.ok()) return text.status();
  std::optional<Marker> marker = ParseMarker(*text);
  if (!marker) {
    return FsError(FsErrorKind::kIo, absl::StrCat("the cairn disk marker in ", dir, " is damaged"));
  }
  return DiskIdentity{marker->volume_id, marker->index, marker->count};
}

absl::StatusOr<bool> StripedBlobStore::DiskInUse(Env* env, const std::string& dir) {
  return env->IsLocked(dir + "/" + kDiskLockName);
}

absl::Status StripedBlobStore::PrepareDisk(Env* env, const std::string& dir,
                                           const std::string& volume_id, int index, int count) {
  if (absl::Status s = env->CreateDir(dir); !s.ok()) return s;
  if (absl::Status s = WriteMarker(env, dir, dir, Marker{volume_id, index, count}); !s.ok()) {
    return s;
  }
  // All fan-out directories now: created lazily they cost a mkdir and two
  // fsyncs for each of the first 256 blobs on every disk.
  const std::string shards = dir + "/" + kShardDir;
  for (int fanout = 0; fanout < 256; ++fanout) {
    if (absl::Status s = env->CreateDir(absl::StrFormat("%s/%02x", shards, fanout)); !s.ok()) {
      return s;
    }
  }
  return env->SyncDir(shards);
}

}  // namespace cairn

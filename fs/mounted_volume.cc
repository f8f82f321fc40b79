#include "fs/mounted_volume.h"

#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/base/files.h"
#include "backend/base/log.h"
#include "backend/services/blob_gc.h"

namespace cairn {
namespace {

constexpr char kJournalEpochKey[] = "journal_epoch";

// Each mount numbers its journal records from a new epoch, recorded in the
// namespace before any record is written, so sequence numbers only grow over
// the volume's life even if the cache directory is lost or replaced; a
// file's journal mark is then never ahead of a new record.
// A read-only mount only replays: it appends nothing, so it needs no epoch.
absl::StatusOr<std::unique_ptr<WritebackJournal>> OpenJournal(Volume& volume, bool read_only) {
  NamespaceStore& ns = volume.ns();
  const VolumeConfig& config = volume.config();
  JournalOptions options;
  options.dir = config.cache_dir + "/journal";
  options.volume_id = config.volume_id;
  options.read_only = read_only;
  if (read_only) return WritebackJournal::Open(volume.io().env, options, 0);
  // Atomic: hosts mounting a shared volume at once get different epochs.
  absl::StatusOr<uint64_t> epoch = ns.BumpVolumeMeta(kJournalEpochKey);
  if (!epoch.ok()) return epoch.status();
  if (absl::Status s = ns.Sync(); !s.ok()) return s;
  if (absl::Status s = CreateDirs(volume.io().env, config.cache_dir); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot use cache_dir ", config.cache_dir, ": ", s.message(),
        "; check the path in cairn.toml"));
  }
  return WritebackJournal::Open(volume.io().env, options, *epoch << 40);
}

// Uploads in flight per shared mount: enough to hide an S3 PUT's latency
// behind a writer's next writes (measured in docs/BENCHMARKS.md).
constexpr int kSharedStoreThreads = 4;
// Blob loads in flight ahead of a reader on a shared mount (each a GET).
constexpr int kSharedReadaheadThreads = 4;

}  // namespace

absl::StatusOr<std::unique_ptr<MountedVolume>> MountedVolume::Open(Volume& volume,
                                                                   Options options) {
  const VolumeConfig& config = volume.config();
  const bool read_only = volume.read_only();
  std::unique_ptr<MountedVolume> mounted(new MountedVolume(volume));
  absl::StatusOr<std::unique_ptr<WritebackJournal>> journal = OpenJournal(volume, read_only);
  if (!journal.ok()) return journal.status();
  mounted->journal_ = std::move(*journal);
  FileDataCacheOptions cache_options;
  const MemoryPlan memory = PlanMemory(config);
  if (memory.overdrawn) {
    LogWarning("max_dirty_bytes and read_cache_bytes in %s leave less than a quarter of "
               "memory_bytes (%d MiB) for the daemon's working memory; its memory may grow "
               "past memory_bytes: raise memory_bytes or lower them",
               config.config_path, config.memory_bytes >> 20);
  }
  cache_options.max_dirty_bytes = memory.dirty_bytes;
  cache_options.read_cache_bytes = memory.read_cache_bytes;
  cache_options.dirty_flush_seconds = config.dirty_flush_seconds;
  cache_options.max_journal_bytes = config.max_journal_bytes;
  cache_options.journal = mounted->journal_.get();
  cache_options.background_threads = options.background_flush && !read_only;
  cache_options.read_only = read_only;
  // A shared mount has no kernel writeback cache: each write of a writer
  // waits for the last, so stores (uploads) must overlap the writes.
  if (config.shared()) {
    cache_options.store_threads = kSharedStoreThreads;
    cache_options.readahead_threads = kSharedReadaheadThreads;
  }
  if (SpaceReserve* reserve = volume.space_reserve()) {
    cache_options.room_for_data = [reserve](uint64_t journal_bytes, uint64_t stored_bytes) {
      return reserve->CheckRoomForData(journal_bytes, stored_bytes);
    };
  }
  cache_options.clock = volume.io().clock;
  mounted->cache_ = std::make_unique<FileDataCache>(volume.ns(), volume.blobs(), cache_options);
  absl::StatusOr<WritebackJournal::ReplayStats> replayed = mounted->cache_->ReplayJournal();
  if (!replayed.ok()) {
    return absl::DataLossError(absl::StrCat("could not replay the writeback journal in ",
                                            config.cache_dir,
                                            "/journal: ", replayed.status().message()));
  }
  mounted->replayed_ = *replayed;
  // With the replay committed, any blob file without a record is a leftover
  // of a crash between storing and committing it. Not on a shared volume:
  // there another host may be storing a blob it has not committed yet, and
  // the sweep would delete it (the leader's sweep of the bucket, by the
  // objects' age, takes such leftovers: backend/services/shared_blob_sweep.h).
  const bool sweep = !read_only && !config.shared();
  if (absl::StatusOr<uint64_t> swept = !sweep ? absl::StatusOr<uint64_t>(0)
                                              : SweepOrphanBlobs(volume.ns(), volume.blobs());
      !swept.ok()) {
    LogWarning("could not sweep uncommitted blob files: %s", swept.status().ToString());
  }
  if (replayed->applied > 0 || replayed->damaged_segments > 0) {
    LogInfo("replayed the writeback journal: %d of %d records were not yet "
            "stored and are now; %d segments, %d with damaged or torn bytes",
            replayed->applied, replayed->records, replayed->segments,
            replayed->damaged_segments);
  }
  FileSystem::Options fs_options;
  fs_options.read_only = read_only;
  fs_options.clock = volume.io().clock;
  fs_options.shared = volume.config().shared();
  fs_options.file_locks = options.file_locks;
  if (read_only) {
    for (InodeId ino : replayed->damaged_files) {
      fs_options.also_damaged.emplace_back(
          ino, "a write made before a crash was lost: its record in the writeback journal was "
               "damaged");
    }
  }
  mounted->fs_ = std::make_unique<FileSystem>(volume.ns(), volume.blobs(), *mounted->cache_,
                                              fs_options);
  return mounted;
}

std::string MountedVolume::ReplayWarning() const {
  std::string warning;
  const std::string journal = volume_.config().cache_dir + "/journal";
  if (replayed_.damaged_bytes > 0) {
    absl::StrAppend(&warning, "the writeback journal in ", journal, " was damaged: ",
                    replayed_.damaged_bytes, " bytes holding ", replayed_.lost_records,
                    " writes made before the last crash could not be read and were skipped ",
                    "(the log names where). Every intact write after them was replayed. ");
  }
  if (!replayed_.damaged_files.empty()) {
    absl::StrAppend(&warning, "These files lost a write and their reads fail with EIO until "
                    "each is truncated to 0 bytes or deleted (find the mount's path with find "
                    "MOUNTPOINT -inum N): inode ",
                    absl::StrJoin(replayed_.damaged_files, ", inode "), ". ");
  }
  if (replayed_.unstored_bytes > 0 && volume_.read_only()) {
    absl::StrAppend(&warning, replayed_.unstored_bytes, " bytes of writes in the writeback "
                    "journal are not stored yet; this read-only mount reads them from memory, "
                    "and the next read-write mount stores them. ");
  } else if (replayed_.unstored_bytes > 0) {
    absl::StrAppend(&warning, replayed_.unstored_bytes, " bytes of writes replayed from the "
                    "writeback journal could not be stored yet (", replayed_.store_error,
                    "): they stay in the journal and are read from memory; fsync of their files "
                    "fails until the disks take them (free space, or bring the disks back). ");
  }
  if (replayed_.torn_bytes > 0) {
    absl::StrAppend(&warning, "The journal ended in ", replayed_.torn_bytes,
                    " bytes that are no intact record, as a crash leaves writes it cut short "
                    "(never fsynced); they were treated as never written.");
  }
  return std::string(absl::StripTrailingAsciiWhitespace(warning));
}

MountedVolume::~MountedVolume() {
  fs_.reset();
  cache_.reset();  // stops the flusher; flushes nothing
  journal_.reset();
}

absl::Status MountedVolume::Close() {
  // Read-only: nothing was written, and the journal keeps what it held.
  if (volume_.read_only()) return absl::OkStatus();
  absl::Status flushed = cache_->FlushAll();
  if (flushed.ok() && journal_->Roll().ok()) {
    // Everything is stored: a second pass deletes the segment just sealed.
    flushed = cache_->FlushAll();
  }
  // Files closed just now: their holds go before the session does, so no
  // other host waits for the session's expiry to free what they unlinked.
  if (absl::Status s = fs_->DropClosedHolds(); !s.ok()) {
    LogWarning("could not remove this host's holds on closed files (they go when its session "
               "ends): %s", s.ToString());
  }
  absl::Status synced = volume_.ns().Sync();
  if (!flushed.ok()) {
    // The data is still in the writeback journal: made durable there, it
    // is stored by the next mount, once the problem is fixed.
    absl::Status journal_synced = journal_->Sync();
    if (!journal_synced.ok()) {
      return absl::DataLossError(absl::StrCat(
          "could not store all written data (", flushed.message(),
          ") nor make the writeback journal durable (", journal_synced.message(),
          "); data written since the last fsync may be lost if the machine "
          "stops before the journal reaches the disk"));
    }
    return absl::DataLossError(absl::StrCat(
        "could not store all written data as blobs before exiting (", flushed.message(),
        "); it is kept in the writeback journal in ", volume_.config().cache_dir,
        "/journal and stored at the next mount: fix the problem (free space, a failing "
        "disk) and mount again"));
  }
  return synced;
}

}  // namespace cairn

// A volume ready to serve, and stopped without losing a byte: what a mount
// runs between opening the volume and its first request, and after its
// last. Opening numbers the writeback journal from a new epoch, replays
// what the namespace had not committed, sweeps blob files a crash left
// without a record, and builds the write cache and the filesystem over the
// volume. Close stores everything written. The FUSE session, the signals
// and the background services are the daemon's (daemon/serve.cc); tests
// drive a MountedVolume directly, crash it (destroy it without Close) and
// open it again.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "backend/volume/volume.h"
#include "cache/file_data_cache.h"
#include "cache/writeback_journal.h"
#include "fs/file_system.h"

namespace cairn {

class MountedVolume {
 public:
  // Read-only when the volume was opened read-only (mount -o ro).
  struct Options {
    // The write cache's flusher thread; tests flush when they choose.
    bool background_flush = true;
    // A shared volume's locks (FileSystem::Options::file_locks); must
    // outlive the result. Null: the kernel keeps locks local.
    FileLocks* file_locks = nullptr;
  };
  // `volume` must outlive the result.
  static absl::StatusOr<std::unique_ptr<MountedVolume>> Open(Volume& volume, Options options);
  // Does not flush: a MountedVolume destroyed without Close is a daemon
  // that died, and the journal holds what it had not stored.
  ~MountedVolume();

  FileSystem& fs() { return *fs_; }
  FileDataCache& cache() { return *cache_; }
  const WritebackJournal::ReplayStats& replayed() const { return replayed_; }
  // What the user must hear of the replay (damage it skipped, a torn end);
  // empty when there was none.
  std::string ReplayWarning() const;

  // Stores every written byte as blobs and syncs the namespace. On failure
  // the data stays in the writeback journal, made durable, for the next
  // mount, and the error says so.
  absl::Status Close();

 private:
  explicit MountedVolume(Volume& volume) : volume_(volume) {}
  Volume& volume_;
  std::unique_ptr<WritebackJournal> journal_;
  std::unique_ptr<FileDataCache> cache_;
  std::unique_ptr<FileSystem> fs_;
  WritebackJournal::ReplayStats replayed_;
};

}  // namespace cairn

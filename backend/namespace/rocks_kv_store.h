// The KvStore of a single-host volume: an embedded RocksDB database reached
// through cairn's Env (rocksdb_env.h), one column family per key space
// (named as KvSpaceName says, as every volume since the first has them).
//
// How it keeps the KvStore promises:
// - Run takes one writer at a time (a mutex), so a body is never re-run:
//   nothing can change what it read before it commits. Its writes go into
//   one WriteBatch appended to the log at commit; its reads of a space it
//   wrote look through an index of that batch (WriteBatchWithIndex), built
//   only when such a read comes.
// - Reader() reads the database directly and never waits for the writer.
// - Commits are in the log, not synced: they survive a daemon crash (the
//   OS has them); Sync() makes them survive a machine crash.
// - Counters and sequences live in memory and are written, as absolute
//   fixed64 values under their names in the meta space, in the commit that
//   changes them (counters) or before any number is handed out (sequences).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

struct RocksKvOptions {
  Env* env = Env::Default();
  Clock* clock = Clock::Default();
  // Create the database (and its column families) if missing.
  bool create_if_missing = false;
  // Memory for the block cache; the write buffers are charged to it and
  // flushed once they hold write_buffer_bytes.
  uint64_t cache_bytes = 64ull << 20;
  uint64_t write_buffer_bytes = 32ull << 20;
  // Open without changing anything; every write fails.
  bool read_only = false;
  // See NamespaceOptions::salvaged_log: skip damaged stretches of the log,
  // one line each here, and write what was kept into tables.
  std::vector<std::string>* salvaged_log = nullptr;
  // See NamespaceOptions::make_room: called when a write of the log found
  // the disk full; true when it freed space (the write is tried again).
  std::function<bool()> make_room;
};

absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksKvStore(const std::string& db_dir,
                                                         const RocksKvOptions& options);

}  // namespace cairn

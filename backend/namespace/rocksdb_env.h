// RocksDB on cairn's seams: a rocksdb::Env whose files are cairn::Env files
// and whose time is a cairn::Clock, so that what a test does to the disk (a
// power cut, a full disk, a failed fsync) or to time reaches the namespace
// database as it reaches every other file of cairn.
//
// Promises:
// - Every file and directory RocksDB creates, reads, renames, links, locks,
//   removes or syncs goes through `env`; a directory's fsync is
//   Env::SyncDir, which is what makes the names of new logs, tables and
//   manifests durable.
// - A failed write or sync reaches RocksDB as an error (ENOSPC as
//   IOStatus::NoSpace, a missing path as PathNotFound, the rest as
//   IOError, each with cairn's message); RocksDB then refuses that file for
//   good (WritableFileWriter remembers the error), so a later sync cannot
//   report success for data the failed one may have lost.
// - RocksDB's info log goes to cairn's log at debug level; no LOG file is
//   written.
// - RocksDB's clock (timestamps, durations, its sleeps) is `clock`.
//
// Not covered, because RocksDB 7.8 does not ask its Env for them: the
// thread pools (Env::Default()'s), the timer of periodic tasks such as
// stats dumps (SystemClock::Default()), the entropy of new ids
// (/proc/sys/kernel/random/uuid). RocksDB also waits on condition variables
// until absolute deadlines it computes from `clock` but the kernel measures
// in real time: with a fake clock behind real time its error-recovery
// retries (after ENOSPC) spin instead of waiting 5 s; ahead of it, they wait
// until the database closes.
//
// What RocksDB asks of `env`'s files beyond env.h: PRead from several
// threads at once, and Sync while another thread appends (RocksDB syncs its
// log while writers go on appending to it).
#pragma once

#include <memory>

#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "rocksdb/env.h"

namespace cairn {

// `env` and `clock` must outlive the result, and the result every database
// opened with it.
std::unique_ptr<rocksdb::Env> NewRocksDbEnv(Env* env, Clock* clock);

}  // namespace cairn

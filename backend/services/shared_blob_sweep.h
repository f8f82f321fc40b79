// The sweep of a shared volume's bucket (docs/MULTIHOST.md): deletes the
// objects no blob record claims that a host's crash between a blob's PUT
// and its commit left behind. The mount-time sweep of one host
// (SweepOrphanBlobs) cannot run here: another host's blob between its PUT
// and its commit looks just like a leftover.
//
// Promises (review 30 in docs/DURABILITY.md):
// - Only the leader sweeps (NamespaceStore::IsLeader, asked before each
//   page and each delete); others do nothing.
// - An object is deleted only if it is older than min_age_seconds by the
//   bucket server's own clock (its LastModified against the Date of the
//   listing that named it: no host's clock is involved), its blob id was
//   handed out by the volume's sequence, and, looked up right before its
//   delete (after the listing), no blob record claims it. An object whose
//   age the server does not tell is never deleted.
// - The listing is walked one page at a time: memory does not grow with
//   the bucket.
// Not promised: that a leftover goes at once (it waits for the floor and
// the next sweep), nor that a sweep the remote cut short resumes where it
// stopped (the next one starts over).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/base/clock.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class SharedBlobSweeper {
 public:
  struct Options {
    bool background = true;  // false: only SweepNow
    // A leader sweeps when it becomes leader and then this often: leftovers
    // come only from crashes, and a sweep lists the whole bucket and looks
    // up every object older than the floor in the namespace.
    int64_t interval_seconds = 6 * 3600;
    // After a failed sweep (the bucket or the database not answering).
    int64_t retry_seconds = 600;
    // Objects younger than this are never deleted. It must exceed the
    // longest time from a blob's PUT to the commit of its record on any
    // host: a flush (or a journal replay, which stores through the same
    // path with fresh blob ids) PUTs at most the write cache's dirty bytes
    // before it commits, each PUT given up after the client's retries
    // (60 s): 128 MiB (the default) at 1 MiB/s is about 2 minutes, 1 GiB
    // 17 minutes. A host paused past its session expiry (30 s by default)
    // can commit nothing afterwards (fencing), so a pause does not stretch
    // the window. An hour leaves a wide margin; a leftover costs only its
    // space until the next sweep.
    int64_t min_age_seconds = 3600;
    int page_keys = 1000;  // objects per listing request (S3's maximum)
    // Times the interval only; ages are the server's.
    Clock* clock = Clock::Default();
  };
  SharedBlobSweeper(NamespaceStore& ns, RemoteBlobStore& remote, Options options);
  ~SharedBlobSweeper();  // stops the thread, ending a sweep under way

  struct Report {
    uint64_t listed = 0;       // blob objects the listing named
    uint64_t too_young = 0;    // younger than the floor: not looked up
    uint64_t undated = 0;      // the server told no age: kept
    uint64_t unallocated = 0;  // an id the sequence never gave: kept
    uint64_t claimed = 0;      // a blob record names it
    uint64_t deleted = 0;
    bool complete = false;     // false: leadership lost or stopped midway
  };
  // One sweep of the whole bucket. kFailedPrecondition when this daemon is
  // not the leader; the first error of the bucket or the namespace ends it
  // (what it deleted so far stays deleted).
  absl::StatusOr<Report> SweepNow();

  struct Stats {
    uint64_t sweeps = 0;           // completed
    uint64_t objects_deleted = 0;  // since the start
    int64_t last_sweep_seconds = 0;  // wall time the last one completed; 0: none
    std::string last_error;        // of the last sweep that failed, "" if it did not
  };
  Stats GetStats() const;

 private:
  absl::StatusOr<Report> Sweep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sweep_mu_);
  void Loop();

  NamespaceStore& ns_;
  RemoteBlobStore& remote_;
  const Options options_;
  absl::Mutex sweep_mu_;  // one sweep at a time
  mutable absl::Mutex stats_mu_;
  Stats stats_ ABSL_GUARDED_BY(stats_mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cairn

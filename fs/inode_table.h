// The kernel's references to inodes: lookup counts (dentries and readdirplus
// entries it holds, released by forget) and open handles. An unlinked inode
// (nlink 0) must keep its data until both are gone; this table says when.
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/types.h"

namespace cairn {

class InodeTable {
 public:
  void AddLookup(InodeId ino, uint64_t count = 1) {
    absl::MutexLock lock(&mu_);
    refs_[ino].lookups += count;
  }
  // Returns true when the inode has no references left.
  bool Forget(InodeId ino, uint64_t count) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return true;
    it->second.lookups -= count < it->second.lookups ? count : it->second.lookups;
    return EraseIfUnused(it);
  }
  // `writer`: the handle may write (the kernel may then hold written pages
  // the daemon has not seen yet).
  void AddOpen(InodeId ino, bool writer = false) {
    absl::MutexLock lock(&mu_);
    Refs& refs = refs_[ino];
    refs.opens++;
    refs.writers += writer;
  }
  bool ReleaseOpen(InodeId ino, bool writer = false) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return true;
    if (it->second.opens > 0) it->second.opens--;
    if (writer && it->second.writers > 0) it->second.writers--;
    return EraseIfUnused(it);
  }
  bool HasWriter(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    return it != refs_.end() && it->second.writers > 0;
  }
  bool InUse(InodeId ino) {
    absl::MutexLock lock(&mu_);
    return refs_.contains(ino);
  }

 private:
  struct Refs {
    uint64_t lookups = 0;
    uint64_t opens = 0;
    uint64_t writers = 0;  // of the opens
  };
  using Map = absl::flat_hash_map<InodeId, Refs>;
  bool EraseIfUnused(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (it->second.lookups > 0 || it->second.opens > 0) return false;
    refs_.erase(it);
    return true;
  }

  absl::Mutex mu_;
  Map refs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn

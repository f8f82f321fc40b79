// The kernel's references to inodes: lookup counts (dentries and readdirplus
// entries it holds, released by forget) and open handles. An unlinked inode
// (nlink 0) must keep its data until both are gone; this table says when.
//
// An inode unlinked while no handle is open is freed in the unlink's own
// commit, though the kernel may still hold lookups of it (it forgets them
// a moment later; an O_PATH descriptor or a removed working directory keeps
// them longer). Until then the table keeps its last attributes, so that
// the kernel's getattr and its write-back of ctime are answered, and an
// open that raced with the unlink fails instead of finding nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

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
  // Returns true when the inode has no references left and was not freed
  // already (the caller then releases it if it has no links).
  bool Forget(InodeId ino, uint64_t count) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return true;
    it->second.lookups -= count < it->second.lookups ? count : it->second.lookups;
    bool freed = it->second.freed;
    return EraseIfUnused(it) && !freed;
  }
  // `writer`: the handle may write (the kernel may then hold written pages
  // the daemon has not seen yet). False if the inode was freed meanwhile.
  bool AddOpen(InodeId ino, bool writer = false) {
    absl::MutexLock lock(&mu_);
    Refs& refs = refs_[ino];
    if (refs.freed) return false;
    refs.opens++;
    refs.writers += writer;
    return true;
  }

  // The unlink commit's question (NamespaceStore::ReleaseCheck): may `ino`
  // be freed now? Yes unless a handle is open; a yes marks it freed (opens
  // fail) until Freed or NotFreed says how the commit went.
  bool FreeIfUnopened(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return true;
    if (it->second.opens > 0) return false;
    if (!it->second.freed) freed_count_.fetch_add(1, std::memory_order_relaxed);
    it->second.freed = true;
    return true;
  }
  // The commit freed `ino`; `last` is what the kernel is told about it.
  void Freed(InodeId ino, const InodeAttr& last) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it != refs_.end() && it->second.freed) it->second.last = last;
  }
  void NotFreed(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end() || !it->second.freed) return;
    it->second.freed = false;
    it->second.last.reset();
    freed_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  // The attributes of a freed inode the kernel still holds, changed by
  // `change` (its ctime write-back) if given.
  template <typename ChangeFn>
  std::optional<InodeAttr> FreedAttr(InodeId ino, ChangeFn change) {
    if (freed_count_.load(std::memory_order_relaxed) == 0) return std::nullopt;
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end() || !it->second.last) return std::nullopt;
    change(*it->second.last);
    return it->second.last;
  }
  std::optional<InodeAttr> FreedAttr(InodeId ino) {
    return FreedAttr(ino, [](InodeAttr&) {});
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
  // In use and not freed: an inode freed while the kernel still holds a
  // lookup (FreeIfUnopened) is gone for this host, whatever the namespace
  // still keeps for other hosts.
  bool InUseUnfreed(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = refs_.find(ino);
    return it != refs_.end() && !it->second.freed;
  }

 private:
  struct Refs {
    uint64_t lookups = 0;
    uint64_t opens = 0;
    uint64_t writers = 0;  // of the opens
    bool freed = false;    // the namespace no longer has it
    std::optional<InodeAttr> last;
  };
  using Map = absl::flat_hash_map<InodeId, Refs>;
  bool EraseIfUnused(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (it->second.lookups > 0 || it->second.opens > 0) return false;
    if (it->second.freed) freed_count_.fetch_sub(1, std::memory_order_relaxed);
    refs_.erase(it);
    return true;
  }

  absl::Mutex mu_;
  Map refs_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> freed_count_{0};  // entries with `freed` set
};

}  // namespace cairn

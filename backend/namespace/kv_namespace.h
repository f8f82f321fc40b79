// NamespaceStore over the key-value seam (kv_store.h): all of the
// namespace's logic (records.h encodings, link counts, extents and blob
// references, the work queues) in terms of Get, Scan and transactions, so
// that an engine needs nothing but a KvStore. RocksDB is one
// (rocksdb_namespace.h opens it); issue 18 adds PostgreSQL.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

// Opens the namespace kept in `kv`: checks its counters and root
// directory, and with options.create_if_missing makes the root of a new
// one. Of `options` it uses clock, gc_grace_seconds, create_if_missing and
// queue_replication (the rest are the engine's).
absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenKvNamespace(std::unique_ptr<KvStore> kv,
                                                                const NamespaceOptions& options);

// The namespace changes a transaction's changed keys stand for (records.h
// key formats): inodes, xattrs, extents and cookies change an inode (the
// cookie's directory), dentries an entry; blob, GC, orphan and meta keys
// touch nothing a host caches by inode. Each change listed once.
std::vector<NamespaceChange> NamespaceChangesOf(const std::vector<KvStore::Change>& keys);

}  // namespace cairn

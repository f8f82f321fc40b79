// The namespace kept in an embedded RocksDB database, reached through
// cairn's Env (rocksdb_env.h): one column family per kind of record
// (records.h), every mutation one write batch, reads that never wait for
// a writer. The implementation NamespaceStore::Open opens.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

// Opens (or with options.create_if_missing, creates) the database in
// `db_dir`.
absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenRocksNamespace(
    const std::string& db_dir, const NamespaceOptions& options);

}  // namespace cairn

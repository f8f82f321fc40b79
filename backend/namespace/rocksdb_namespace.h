// The namespace kept in an embedded RocksDB database: the namespace logic
// of kv_namespace.h over the RocksDB engine of rocks_kv_store.h (one column
// family per kind of record, every mutation one write batch, reads that
// never wait for a writer). What NamespaceStore::Open opens.
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

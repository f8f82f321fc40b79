#include "backend/namespace/namespace_store.h"

#include "backend/namespace/rocksdb_namespace.h"

namespace cairn {

absl::StatusOr<std::unique_ptr<NamespaceStore>> NamespaceStore::Open(
    const std::string& db_dir, const NamespaceOptions& options) {
  return OpenRocksNamespace(db_dir, options);
}

}  // namespace cairn

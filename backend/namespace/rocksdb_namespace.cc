// The namespace of a single-host volume: KvNamespace over RocksKvStore.
#include "backend/namespace/rocksdb_namespace.h"

#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/rocks_kv_store.h"

namespace cairn {

absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenRocksNamespace(
    const std::string& db_dir, const NamespaceOptions& options) {
  RocksKvOptions engine;
  engine.env = options.env;
  engine.clock = options.clock;
  engine.create_if_missing = options.create_if_missing;
  engine.cache_bytes = options.cache_bytes;
  engine.write_buffer_bytes = options.write_buffer_bytes;
  engine.read_only = options.read_only;
  engine.salvaged_log = options.salvaged_log;
  engine.make_room = options.make_room;
  absl::StatusOr<std::unique_ptr<KvStore>> kv = OpenRocksKvStore(db_dir, engine);
  if (!kv.ok()) return kv.status();
  return OpenKvNamespace(std::move(*kv), options);
}

}  // namespace cairn

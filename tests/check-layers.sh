#!/usr/bin/env bash
# The build refuses an #include that goes up a layer (or across to a layer
# that is not below): each folder may include only itself and the folders
# listed for it here. docs/ARCHITECTURE.md draws the same picture.
# Usage: check-layers.sh REPO_DIR
set -euo pipefail
repo="$1"

declare -A allowed=(
  [backend/base]=""
  [backend/s3]="backend/base"
  [backend/namespace]="backend/base"
  [backend/blob]="backend/base backend/s3"
  [backend/config]="backend/base backend/blob"
  [backend/services]="backend/base backend/s3 backend/namespace backend/blob backend/config"
  [backend/volume]="backend/base backend/s3 backend/namespace backend/blob backend/config backend/services"
  [cache]="backend/base backend/namespace backend/blob"
  [fs]="backend/base backend/namespace backend/blob backend/config backend/services backend/volume cache"
  [frontend]="backend/base backend/s3 backend/namespace backend/blob backend/config backend/services backend/volume cache fs"
  [daemon]="backend/base backend/s3 backend/namespace backend/blob backend/config backend/services backend/volume cache fs frontend"
)

# The folder (layer) a repository path belongs to, or "" outside them.
layer_of() {
  local path="$1"
  case "$path" in
    backend/*/*) echo "${path%/*}" | cut -d/ -f1-2 ;;
    cache/*|fs/*|frontend/*|daemon/*) echo "${path%%/*}" ;;
    *) echo "" ;;
  esac
}

status=0
cd "$repo"
while IFS= read -r file; do
  from="$(layer_of "$file")"
  [[ -z "$from" ]] && continue
  while IFS= read -r included; do
    to="$(layer_of "$included")"
    [[ -z "$to" || "$to" == "$from" ]] && continue
    if [[ " ${allowed[$from]} " != *" $to "* ]]; then
      echo "$file includes $included: $from may not include from $to (tests/check-layers.sh)" >&2
      status=1
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find backend cache fs frontend daemon -name '*.h' -o -name '*.cc' | sort)
# Inside backend/namespace/, only the RocksDB engine includes RocksDB: the
# namespace logic sits on the key-value seam (kv_store.h), so that another
# engine needs nothing but a KvStore.
while IFS= read -r file; do
  case "${file##*/}" in
    rocks_kv_store.*|rocksdb_env.*) continue ;;
  esac
  if grep -q '^#include "rocksdb/' "$file"; then
    echo "$file includes RocksDB: only the engine (rocks_kv_store.cc, rocksdb_env.cc) may (tests/check-layers.sh)" >&2
    status=1
  fi
done < <(find backend/namespace -name '*.h' -o -name '*.cc' | sort)
exit "$status"

# shellcheck shell=bash
# Sourced by scripts that need a shared volume (docs/MULTIHOST.md) without
# an outside database or bucket: a private PostgreSQL (tests/pg-server.sh)
# and an s3rver, both on 127.0.0.1, both stopped by their PIDs.
#
#   source tests/shared-volume.sh
#   shared_start WORK_DIR        # sets SHARED_URL, SHARED_ENDPOINT,
#                                # exports the bucket's credentials
#   shared_format CAIRN VOLUME_DIR DATABASE   # a fresh database each call
#   shared_attach CAIRN VOLUME_DIR DATABASE
#   shared_psql ARGS...          # psql on the private server
#   shared_stop                  # safe to call twice, and from a trap
#
# s3rver is the npm package tests/run-all.sh installs: CAIRN_S3RVER, else
# BUILD/s3rver/node_modules/.bin/s3rver for BUILD in CAIRN_BUILD_DIR,
# build-dev, build. The bucket is "shared".

shared_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared_work=""
shared_pg=""
shared_s3_pid=""
SHARED_URL=""
SHARED_ENDPOINT=""

shared_find_s3rver() {
  local b
  if [[ -n "${CAIRN_S3RVER:-}" ]]; then echo "$CAIRN_S3RVER"; return; fi
  for b in "${CAIRN_BUILD_DIR:-}" "$shared_repo/build-dev" "$shared_repo/build"; do
    [[ -n "$b" && -x "$b/s3rver/node_modules/.bin/s3rver" ]] &&
      { echo "$b/s3rver/node_modules/.bin/s3rver"; return; }
  done
  return 1
}

shared_start() {
  shared_work="$1"
  mkdir -p "$shared_work/s3"
  local s3rver port
  s3rver="$(shared_find_s3rver)" ||
    { echo "shared-volume.sh: s3rver is not installed (tests/run-all.sh; CAIRN_S3RVER)" >&2; return 1; }
  # In /tmp, not WORK_DIR: as root the server runs as another user, who
  # may not be able to enter WORK_DIR. The watcher stops the server if
  # this shell dies without running its trap.
  shared_pg="$(mktemp -d /tmp/cairn-pg-XXXXXX)"
  SHARED_URL="$(bash "$shared_repo/tests/pg-server.sh" start "$shared_pg" $$ | tail -n 1)" ||
    return 1
  # The URL names the database "cairn"; each volume gets its own.
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # s3rver makes list continuation tokens with DES (OpenSSL 3's legacy provider).
  NODE_OPTIONS=--openssl-legacy-provider "$s3rver" -d "$shared_work/s3" -a 127.0.0.1 \
    -p "$port" --silent --configure-bucket shared </dev/null >/dev/null 2>&1 &
  shared_s3_pid=$!
  local _
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      SHARED_ENDPOINT="http://127.0.0.1:$port"
      export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
      return 0
    fi
    kill -0 "$shared_s3_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "shared-volume.sh: s3rver did not listen on 127.0.0.1:$port" >&2
  return 1
}

# psql ARGS... as the private server's superuser, over its socket.
shared_psql() {
  local port
  port="$(cat "$shared_pg/port")"
  local psql=(/usr/lib/postgresql/15/bin/psql -X -q -h "$shared_pg" -p "$port" -U cairn)
  if (( EUID == 0 )); then
    # As root, pg-server.sh runs the server as postgres (or nobody).
    local u=postgres
    id postgres >/dev/null 2>&1 || u=nobody
    psql=(setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups --reset-env -- "${psql[@]}")
  fi
  "${psql[@]}" "$@"
}

# The database URL for DATABASE on the private server, made afresh.
shared_database() {
  local db="$1"
  shared_psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  shared_psql -d postgres -c "CREATE DATABASE $db" >/dev/null
  echo "${SHARED_URL%/*}/$db"
}

shared_format() {
  local cairn="$1" vol="$2" db="$3" url
  url="$(shared_database "$db")" || return 1
  "$cairn" format --force "$vol" --namespace "$url" --blobs "s3://shared/$db" \
    --endpoint "$SHARED_ENDPOINT" >/dev/null
}

shared_attach() {
  local cairn="$1" vol="$2" db="$3"
  "$cairn" attach "$vol" --namespace "${SHARED_URL%/*}/$db" >/dev/null
}

shared_stop() {
  if [[ -n "$shared_s3_pid" ]]; then
    kill "$shared_s3_pid" 2>/dev/null || true
    wait "$shared_s3_pid" 2>/dev/null || true
    shared_s3_pid=""
  fi
  if [[ -n "$shared_pg" && -d "$shared_pg" ]]; then
    bash "$shared_repo/tests/pg-server.sh" stop "$shared_pg" fast || true
    rm -rf "$shared_pg"
    shared_pg=""
  fi
}

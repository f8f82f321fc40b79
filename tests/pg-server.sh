#!/usr/bin/env bash
# A throw-away PostgreSQL 15 for tests, on 127.0.0.1 only.
#
#   pg-server.sh start DIR [OWNER_PID]  initdb into DIR (empty or missing) as
#       an unprivileged user, start the server on a free port with its unix
#       socket in DIR, create the database "cairn"; prints the connection URL
#       on the last line. Started again on a DIR that holds a stopped server,
#       it restarts that one on the same port (restart tests). With
#       OWNER_PID, a watcher stops the server when that process is gone (a
#       test binary that crashed cannot leave it behind).
#   pg-server.sh stop DIR [fast|immediate]  stops it by the PID in
#       DIR/data/postmaster.pid (immediate: as a crash would) and waits.
#   pg-server.sh run CMD...  starts one in a temp dir, runs CMD with
#       CAIRN_PG_URL set, stops it and removes the dir whatever CMD did.
#
# Exit status 77 (the skip code of ctest and automake) when the server's
# binaries are not installed: packaging/install-deps.sh installs them.
# PG_FSYNC=on keeps fsync on (off by default: a test server's data only has
# to survive its own process restarts, which the OS page cache covers).
set -euo pipefail

bindir="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
db=cairn
user=cairn  # the database superuser initdb makes; trust auth, 127.0.0.1 only

die() { echo "pg-server.sh: $*" >&2; exit 1; }

need_binaries() {
  local b
  for b in initdb pg_ctl postgres; do
    if [ ! -x "$bindir/$b" ]; then
      echo "pg-server.sh: $bindir/$b is missing (apt-get install postgresql-15;" \
           "packaging/install-deps.sh does it)" >&2
      exit 77
    fi
  done
}

# PostgreSQL refuses to run as root: as root, run it as the postgres user
# (the server package makes it) or else nobody; otherwise as ourselves.
server_user() {
  if [ "$(id -u)" -ne 0 ]; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

as_server_user() {
  if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
  setpriv --reuid="$(server_user)" --regid="$(id -g "$(server_user)")" --clear-groups \
    --reset-env -- "$@"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p i
  for i in $(seq 1 100); do
    # Below the kernel's ephemeral range (32768 up): while the server is
    # down for a restart test, clients retrying a connect to a port in
    # that range can be given that very port as their own and connect to
    # themselves, and the restarted server then finds it taken.
    p=$((20000 + RANDOM % 12000))
    if port_free "$p"; then echo "$p"; return; fi
  done
  die "no free port on 127.0.0.1"
}

server_pid() {
  [ -f "$1/data/postmaster.pid" ] && head -n 1 "$1/data/postmaster.pid" || true
}

start() {
  local dir="$1" owner="${2:-}"
  need_binaries
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    chown "$(server_user)" "$dir"
    chmod 0700 "$dir"
    as_server_user "$bindir/initdb" -D "$dir/data" -U "$user" --auth=trust \
      --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; die "initdb into $dir/data failed"; }
    # Only the loopback address and the socket in DIR: nothing else may
    # connect, so trust authentication is safe here.
    cat >"$dir/data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
    pick_port >"$dir/port"
  fi
  local port fsync
  port="$(cat "$dir/port")"
  fsync="${PG_FSYNC:-off}"
  # One line: pg_ctl hands it to /bin/sh, where a newline ends the command.
  local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir'"
  opts+=" -c fsync=$fsync -c full_page_writes=$fsync -c max_connections=100"
  opts+=" -c shared_buffers=16MB -c max_pred_locks_per_transaction=256"
  as_server_user "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" \
    -o "$opts" \
    >/dev/null ||
    { tail -n 20 "$dir/server.log" >&2; die "the server in $dir did not start on port $port"; }
  if ! as_server_user "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$user" -d postgres \
      -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_server_user "$bindir/createdb" -h "$dir" -p "$port" -U "$user" "$db" ||
      die "createdb $db failed"
  fi
  if [ -n "$owner" ]; then
    # Detached from our stdout so that callers reading it see EOF.
    # It watches this server's PID, not the file: a test that restarts the
    # server starts a new watcher, and this one must not stop that server.
    local pid
    pid="$(server_pid "$dir")"
    (
      trap '' HUP
      while kill -0 "$owner" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      if ! kill -0 "$owner" 2>/dev/null; then kill -s QUIT "$pid" 2>/dev/null || true; fi
    ) </dev/null >/dev/null 2>&1 &
  fi
  echo "postgresql://$user@127.0.0.1:$port/$db"
}

stop() {
  local dir="$1" mode="${2:-fast}" pid sig
  pid="$(server_pid "$dir")"
  [ -n "$pid" ] || return 0
  # SIGINT: fast shutdown (abort sessions, checkpoint); SIGQUIT: immediate,
  # no checkpoint, as a crash would (WAL replay at the next start).
  case "$mode" in
    fast) sig=INT ;;
    immediate) sig=QUIT ;;
    *) die "stop mode is fast or immediate, not $mode" ;;
  esac
  kill -s "$sig" "$pid" 2>/dev/null || return 0
  local i
  for i in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -s KILL "$pid" 2>/dev/null || true
  fi
  # An immediate stop leaves the PID file for the next start to check.
  if [ "$mode" = immediate ]; then rm -f "$dir/data/postmaster.pid"; fi
}

run() {
  need_binaries
  run_dir="$(mktemp -d /tmp/cairn-pg-XXXXXX)"
  trap 'stop "$run_dir" immediate; rm -rf "$run_dir"' EXIT
  trap 'exit 130' INT TERM
  CAIRN_PG_URL="$(start "$run_dir" | tail -n 1)"
  export CAIRN_PG_URL
  "$@"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: pg-server.sh start DIR [OWNER_PID]"; start "$2" "${3:-}" ;;
  stop) [ $# -ge 2 ] || die "usage: pg-server.sh stop DIR [fast|immediate]"; stop "$2" "${3:-fast}" ;;
  run) shift; [ $# -ge 1 ] || die "usage: pg-server.sh run CMD..."; run "$@" ;;
  *) die "usage: pg-server.sh start DIR [OWNER_PID] | stop DIR [MODE] | run CMD..." ;;
esac

#!/usr/bin/env bash
# Metadata rates of several cairn builds side by side, on shared volumes
# (docs/MULTIHOST.md) over one private PostgreSQL and s3rver on 127.0.0.1
# (tests/shared-volume.sh, stopped by their PIDs whatever happens), for
# before/after figures of a change to the shared volume's metadata path.
#
#   bash bench/shared-meta-ab.sh before=BUILD_DIR after=BUILD_DIR [embedded=BUILD_DIR]
#
# Each NAME=BUILD_DIR names a build holding daemon/cairn and
# bench/cairn-meta-bench; a NAME starting with "emb" runs that build on an
# embedded (single-host) volume instead, for the ratio to it. Every round
# runs each build once, in the order given, each on a fresh volume (and a
# fresh database): cairn-meta-bench MOUNT/meta N (create, stat, rename and
# unlink of N empty files in one directory), operations per second, and the
# PostgreSQL transactions committed per file. Prints one line per run, then
# a markdown table: medians (min-max) over the rounds, and each build's
# ratio to the first one (of its kind) and to the embedded one, taken
# within each round. With only embedded builds (emb-before=... emb-after=...)
# the ratios are to the first of them.
#
# Environment: BENCH_ROUNDS (3), BENCH_FILES (1000), BENCH_DIR (scratch,
# deleted on exit; default /var/tmp/cairn-metaab), CAIRN_S3RVER, PG_FSYNC
# (on), BENCH_RELAY (unset; 0 or a number of milliseconds: the daemons
# reach PostgreSQL through bench/relay.py, which stands in for a network,
# adding that delay each way). Needs root (mounts) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
if (( EUID != 0 )); then echo "bench/shared-meta-ab.sh: needs root" >&2; exit 2; fi
if (( $# < 1 )); then
  echo "usage: bench/shared-meta-ab.sh NAME=BUILD_DIR... (a NAME starting with emb: an embedded volume)" >&2
  exit 2
fi
rounds="${BENCH_ROUNDS:-3}"
files="${BENCH_FILES:-1000}"
work="${BENCH_DIR:-/var/tmp/cairn-metaab}"
export PG_FSYNC="${PG_FSYNC:-on}"
# shellcheck source=tests/shared-volume.sh
source "$repo/tests/shared-volume.sh"

names=()
for spec in "$@"; do
  name="${spec%%=*}" build="${spec#*=}"
  [[ "$name" != "$spec" && -n "$name" ]] ||
    { echo "bench/shared-meta-ab.sh: '$spec' is not NAME=BUILD_DIR" >&2; exit 2; }
  for bin in "$build/daemon/cairn" "$build/bench/cairn-meta-bench"; do
    [[ -x "$bin" ]] || { echo "bench/shared-meta-ab.sh: $bin is missing; build first" >&2; exit 1; }
  done
  names+=("$name")
done

mnt="$work/mnt"
relay_pid=""
cleanup() {
  set +e
  if grep -q " $mnt " /proc/mounts; then fusermount3 -u -z "$mnt"; fi
  if [[ -n "$relay_pid" ]]; then kill "$relay_pid"; wait "$relay_pid"; fi
  shared_stop
  if ! grep -q " $mnt " /proc/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if grep -q " $mnt " /proc/mounts; then echo "bench/shared-meta-ab.sh: $mnt is mounted" >&2; exit 1; fi
rm -rf "$work"
mkdir -p "$work/bin" "$mnt"
# Copies: a rebuild during the run does not change what is measured.
for spec in "$@"; do
  name="${spec%%=*}" build="${spec#*=}"
  cp "$build/daemon/cairn" "$work/bin/cairn-$name"
  cp "$build/bench/cairn-meta-bench" "$work/bin/meta-$name"
done
shared_start "$work/servers"
if [[ -n "${BENCH_RELAY:-}" ]]; then
  # The daemons' database URL goes through the relay; psql keeps the socket.
  relay_port=$((20000 + RANDOM % 20000))
  pg_port="${SHARED_URL##*:}"
  pg_port="${pg_port%%/*}"
  python3 "$repo/bench/relay.py" "$relay_port" "$pg_port" "$BENCH_RELAY" >"$work/relay.out" &
  relay_pid=$!
  for _ in $(seq 100); do grep -q ready "$work/relay.out" && break; sleep 0.1; done
  grep -q ready "$work/relay.out" || { echo "bench/shared-meta-ab.sh: the relay did not start" >&2; exit 1; }
  SHARED_URL="${SHARED_URL/:$pg_port\//:$relay_port/}"
fi

xacts() {  # committed transactions of database $1 (the statistics lag up to 1 s)
  sleep 1.2
  shared_psql -d "$1" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

raw="$work/raw"
: >"$raw"
run=0
for ((round = 1; round <= rounds; round++)); do
  for name in "${names[@]}"; do
    run=$((run + 1))
    cairn="$work/bin/cairn-$name"
    rm -rf "$work/vol"
    if [[ "$name" == emb* ]]; then
      "$cairn" format "$work/vol" >/dev/null
    else
      shared_format "$cairn" "$work/vol" "db$run" >/dev/null
    fi
    "$cairn" mount "$work/vol" "$mnt"
    x0=0
    [[ "$name" == emb* ]] || x0="$(xacts "db$run")"
    out="$("$work/bin/meta-$name" "$mnt/meta" "$files")"
    per_file=0
    if [[ "$name" != emb* ]]; then
      per_file="$(awk -v a="$x0" -v b="$(xacts "db$run")" -v n="$files" \
        'BEGIN { printf "%.1f", (b - a - 1) / n }')"
    fi
    "$cairn" umount "$mnt"
    echo "round $round $name $out xacts_per_file $per_file" | tee -a "$raw" >&2
  done
done

python3 - "$raw" "${names[@]}" <<'EOF'
import statistics, sys
raw, names = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(raw):
    f = line.split()
    runs[(int(f[1]), f[2])] = {f[i]: float(f[i + 1]) for i in range(3, len(f), 2)}
rounds = sorted({r for r, _ in runs})
first = next((n for n in names if not n.startswith("emb")), names[0])
emb = next((n for n in names if n.startswith("emb")), None)
def span(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"
count = lambda v: f"{v:,.0f}"
ratio = lambda v: f"{v:.2f}x"
# Ratios to the first build, among builds of its kind (shared, or embedded
# when every build runs embedded).
kin = lambda n: n != first and n.startswith("emb") == first.startswith("emb")
heads = [n for n in names] + [f"{n} / {first}" for n in names if kin(n)]
if emb == first:
    emb = None  # only embedded runs: the ratios to the first say it all
if emb:
    heads += [f"{n} / {emb}" for n in names if not n.startswith("emb")]
print("| figure | " + " | ".join(heads) + " |")
print("|---|" + "---:|" * len(heads))
for op in ["create", "stat", "rename", "unlink", "xacts_per_file"]:
    cells = [span([runs[(r, n)][op] for r in rounds], count if op != "xacts_per_file" else lambda v: f"{v:.1f}")
             for n in names]
    if op != "xacts_per_file":
        for n in names:
            if kin(n):
                cells.append(span([runs[(r, n)][op] / runs[(r, first)][op] for r in rounds], ratio))
        if emb:
            for n in names:
                if not n.startswith("emb"):
                    cells.append(span([runs[(r, n)][op] / runs[(r, emb)][op] for r in rounds], ratio))
    else:
        cells += [""] * (len(heads) - len(cells))
    label = "PostgreSQL transactions per file" if op == "xacts_per_file" else f"{op} (ops/s)"
    print(f"| {label} | " + " | ".join(cells) + " |")
EOF

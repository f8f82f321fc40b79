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
# runs each build once, each on a fresh volume (and a fresh database), in
# an order rotated by one from round to round (round 1 in the order given)
# so that no build always runs first or last: cairn-meta-bench MOUNT/meta N (create, stat, rename and
# unlink of N empty files in one directory), operations per second, and the
# PostgreSQL transactions committed per file. Prints one line per run, then
# a markdown table: medians (min-max) over the rounds, and each build's
# ratio to the first one (of its kind) and to the embedded one, taken
# within each round. With only embedded builds (emb-before=... emb-after=...)
# the ratios are to the first of them.
#
# BENCH_KIND=seq measures sequential throughput instead, in MiB/s: a file
# of BENCH_SIZE_MB random bytes written with dd bs=BENCH_BS conv=fsync
# (BENCH_BS 1M; 4k shows what each write(2) costs); read
# back after drop_caches and a remount of the writer; and, on a shared
# volume, read on a second host (a second mount of the volume with its
# own cache directory, `cairn attach`) after drop_caches: every block
# from the bucket. Then BUILD_DIR needs only daemon/cairn.
#
# Environment: BENCH_ROUNDS (3), BENCH_FILES (1000), BENCH_KIND (meta),
# BENCH_SIZE_MB (256), BENCH_BS (1M), BENCH_DIR (scratch,
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
kind="${BENCH_KIND:-meta}"
size_mb="${BENCH_SIZE_MB:-256}"
bs="${BENCH_BS:-1M}"
[[ "$kind" == meta || "$kind" == seq ]] ||
  { echo "bench/shared-meta-ab.sh: BENCH_KIND is meta or seq, not '$kind'" >&2; exit 2; }
work="${BENCH_DIR:-/var/tmp/cairn-metaab}"
export PG_FSYNC="${PG_FSYNC:-on}"
# shellcheck source=tests/shared-volume.sh
source "$repo/tests/shared-volume.sh"

names=()
for spec in "$@"; do
  name="${spec%%=*}" build="${spec#*=}"
  [[ "$name" != "$spec" && -n "$name" ]] ||
    { echo "bench/shared-meta-ab.sh: '$spec' is not NAME=BUILD_DIR" >&2; exit 2; }
  bins=("$build/daemon/cairn")
  [[ "$kind" == seq ]] || bins+=("$build/bench/cairn-meta-bench")
  for bin in "${bins[@]}"; do
    [[ -x "$bin" ]] || { echo "bench/shared-meta-ab.sh: $bin is missing; build first" >&2; exit 1; }
  done
  names+=("$name")
done

mnt="$work/mnt"
mnt_b="$work/mnt-b"
relay_pid=""
cleanup() {
  set +e
  for m in "$mnt" "$mnt_b"; do
    if grep -q " $m " /proc/mounts; then fusermount3 -u -z "$m"; fi
  done
  if [[ -n "$relay_pid" ]]; then kill "$relay_pid"; wait "$relay_pid"; fi
  shared_stop
  if ! grep -q " $mnt " /proc/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if grep -q " $mnt " /proc/mounts; then echo "bench/shared-meta-ab.sh: $mnt is mounted" >&2; exit 1; fi
rm -rf "$work"
mkdir -p "$work/bin" "$mnt" "$mnt_b"
# Copies: a rebuild during the run does not change what is measured.
for spec in "$@"; do
  name="${spec%%=*}" build="${spec#*=}"
  cp "$build/daemon/cairn" "$work/bin/cairn-$name"
  [[ "$kind" == seq ]] || cp "$build/bench/cairn-meta-bench" "$work/bin/meta-$name"
done
[[ "$kind" == meta ]] || head -c $((size_mb << 20)) /dev/urandom >"$work/src"  # cairn compresses zeros
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

now() { date +%s.%N; }
rate() { awk -v a="$1" -v b="$(now)" -v mb="$size_mb" 'BEGIN { printf "%.0f", mb / (b - a) }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# seq_run CAIRN SHARED(0/1) DB: the sequential figures of one build.
seq_run() {
  local cairn="$1" shared="$2" db="$3" start out
  if [[ "$shared" == 1 ]]; then
    rm -rf "$work/vol-b"
    shared_attach "$cairn" "$work/vol-b" "$db" >/dev/null
    "$cairn" mount "$work/vol-b" "$mnt_b"
  fi
  drop_caches
  start=$(now)
  dd if="$work/src" of="$mnt/seq" bs="$bs" conv=fsync status=none
  out="seqwrite $(rate "$start")"
  "$cairn" umount "$mnt"
  drop_caches
  "$cairn" mount "$work/vol" "$mnt"
  start=$(now)
  dd if="$mnt/seq" of=/dev/null bs=1M status=none
  out+=" seqread $(rate "$start")"
  if [[ "$shared" == 1 ]]; then
    drop_caches
    start=$(now)
    dd if="$mnt_b/seq" of=/dev/null bs=1M status=none
    out+=" seqreadB $(rate "$start")"
    cmp -s "$work/src" "$mnt_b/seq" || { echo "bench/shared-meta-ab.sh: host B read other bytes" >&2; exit 1; }
    "$cairn" umount "$mnt_b"
  fi
  echo "$out"
}

xacts() {  # committed transactions of database $1 (the statistics lag up to 1 s)
  sleep 1.2
  shared_psql -d "$1" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

raw="$work/raw"
: >"$raw"
run=0
for ((round = 1; round <= rounds; round++)); do
  order=()
  for ((i = 0; i < ${#names[@]}; i++)); do
    order+=("${names[(i + round - 1) % ${#names[@]}]}")
  done
  for name in "${order[@]}"; do
    run=$((run + 1))
    cairn="$work/bin/cairn-$name"
    rm -rf "$work/vol"
    if [[ "$name" == emb* ]]; then
      "$cairn" format "$work/vol" >/dev/null
    else
      shared_format "$cairn" "$work/vol" "db$run" >/dev/null
    fi
    "$cairn" mount "$work/vol" "$mnt"
    if [[ "$kind" == seq ]]; then
      shared=1
      [[ "$name" != emb* ]] || shared=0
      out="$(seq_run "$cairn" "$shared" "db$run")"
      "$cairn" umount "$mnt"
      echo "round $round $name $out" | tee -a "$raw" >&2
      continue
    fi
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

python3 - "$raw" "$kind" "$bs" "${names[@]}" <<'EOF'
import statistics, sys
raw, kind, bs, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
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
ops = (["create", "stat", "rename", "unlink", "xacts_per_file"] if kind == "meta"
       else ["seqwrite", "seqread", "seqreadB"])
labels = {"xacts_per_file": "PostgreSQL transactions per file",
          "seqwrite": f"write, dd bs={bs} conv=fsync (MiB/s)",
          "seqread": "read on the writer after drop_caches + remount (MiB/s)",
          "seqreadB": "read on host B, from the bucket (MiB/s)"}
has = lambda n, op: all(op in runs[(r, n)] for r in rounds)
# host B's read has no embedded counterpart: its ratio is to the embedded read.
emb_op = lambda op: "seqread" if op == "seqreadB" else op
for op in ops:
    fmt = (lambda v: f"{v:.1f}") if op == "xacts_per_file" else count
    cells = [span([runs[(r, n)][op] for r in rounds], fmt) if has(n, op) else "" for n in names]
    if op != "xacts_per_file":
        for n in names:
            if kin(n):
                cells.append(span([runs[(r, n)][op] / runs[(r, first)][op] for r in rounds], ratio)
                             if has(n, op) and has(first, op) else "")
        if emb:
            for n in names:
                if not n.startswith("emb"):
                    cells.append(span([runs[(r, n)][op] / runs[(r, emb)][emb_op(op)] for r in rounds], ratio)
                                 if has(n, op) and has(emb, emb_op(op)) else "")
    else:
        cells += [""] * (len(heads) - len(cells))
    label = labels.get(op, f"{op} (ops/s)")
    print(f"| {label} | " + " | ".join(cells) + " |")
EOF

#!/usr/bin/env bash
# A shared volume (docs/MULTIHOST.md) against an embedded one (issue 18,
# "Figures"), with its own PostgreSQL and s3rver on 127.0.0.1
# (tests/shared-volume.sh), both stopped by their PIDs whatever happens.
# "Hosts" A and B are two volume directories attached to one shared volume
# and mounted side by side on this machine, each with its own daemon, cache
# and journal. Measured, over BENCH_ROUNDS rounds whose order of systems
# rotates (no system always goes first):
#
#   meta      cairn-meta-bench MOUNT/dir N (create, stat, rename, unlink of
#             N empty files in one directory), operations per second:
#             embedded; shared on host A alone; shared on A and B at once,
#             each in its own directory (each host and their sum)
#   seqwrite  1 GiB of random bytes (dd bs=1M conv=fsync), MiB/s
#   seqread   the same file after drop_caches and a remount of the writer
#             (the daemon's memory cache emptied; a shared volume's host
#             keeps its disk cache of blocks), MiB/s
#   seqreadB  on a shared volume only: the same file read on host B after
#             drop_caches; B never had it, so every block comes from the
#             bucket
#
# then, once, the time for a change on A to be seen on B: B polls stat(2)
# every 2 ms for a name (or a mode) while A creates the file (or chmods
# it) at a random moment; the delay from A's call returning to B's first
# stat that sees it, over BENCH_VIS_SAMPLES samples: p50, p99, max; and
# A and B at once in ONE directory, each creating, renaming and unlinking
# BENCH_FILES names of its own: operations per second on each host and the
# operations that failed, by errno (every transaction in a directory
# writes its inode, so the two hosts' transactions conflict).
#
# Prints a markdown table: for every figure the median (min-max) over the
# rounds, and the ratios taken within each round (shared/embedded;
# two hosts' sum / one host). Raw values go to stderr as they are measured.
#
#   bash bench/multihost.sh                        # 3 rounds, ~25 min
#   BENCH_QUICK=1 BENCH_ROUNDS=1 bash bench/multihost.sh   # smoke test
#
# Environment:
#   BENCH_ROUNDS       rounds (default 3)
#   BENCH_FILES        files per metadata run (default 2000; QUICK 300)
#   BENCH_SIZE_MB      sequential file size (default 1024; QUICK 64)
#   BENCH_VIS_SAMPLES  visibility samples of each kind (default 100; QUICK 20)
#   BENCH_DIR          scratch directory, deleted on exit
#                      (default /var/tmp/cairn-mhbench)
#   CAIRN_BUILD_DIR    build with daemon/cairn and bench/cairn-meta-bench
#                      (default build-dev)
#   CAIRN_S3RVER       s3rver binary (default from tests/run-all.sh's install)
#   PG_FSYNC           the PostgreSQL server's fsync (default on, as a real
#                      deployment; the embedded volume's RocksDB writes its
#                      WAL without a sync per operation, docs/DURABILITY.md)
#
# Needs root (drop_caches, mounts), python3, and about 4 x BENCH_SIZE_MB
# free in BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
if (( EUID != 0 )); then echo "bench/multihost.sh: needs root" >&2; exit 2; fi

rounds="${BENCH_ROUNDS:-3}"
files="${BENCH_FILES:-2000}"
size_mb="${BENCH_SIZE_MB:-1024}"
vis_samples="${BENCH_VIS_SAMPLES:-100}"
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  files="${BENCH_FILES:-300}"
  size_mb="${BENCH_SIZE_MB:-64}"
  vis_samples="${BENCH_VIS_SAMPLES:-20}"
fi
export PG_FSYNC="${PG_FSYNC:-on}"
bench_dir="${BENCH_DIR:-/var/tmp/cairn-mhbench}"
build_dir="${CAIRN_BUILD_DIR:-$repo/build-dev}"
for bin in "$build_dir/daemon/cairn" "$build_dir/bench/cairn-meta-bench"; do
  [[ -x "$bin" ]] || { echo "bench/multihost.sh: $bin is missing; build first" >&2; exit 1; }
done
# shellcheck source=tests/shared-volume.sh
source "$repo/tests/shared-volume.sh"

cairn="$bench_dir/bin/cairn"
meta_bench="$bench_dir/bin/cairn-meta-bench"
emb="$bench_dir/emb"
mnt_a="$bench_dir/a"
mnt_b="$bench_dir/b"

mounted_here() { awk -v d="$bench_dir" 'index($2, d "/") == 1 { print $2 }' /proc/mounts; }
cleanup() {
  set +e
  local m
  for m in $(mounted_here); do
    "$cairn" umount "$m" >/dev/null 2>&1 || fusermount3 -u -z "$m" >/dev/null 2>&1
  done
  shared_stop
  if [[ -z "$(mounted_here)" ]]; then rm -rf "$bench_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for m in $(mounted_here); do "$build_dir/daemon/cairn" umount "$m" >/dev/null 2>&1 || true; done
[[ -z "$(mounted_here)" ]] || { echo "bench/multihost.sh: $bench_dir is mounted" >&2; exit 1; }
rm -rf "$bench_dir"
mkdir -p "$bench_dir"/{bin,emb,a,b}
# Copies: a rebuild during the run does not change what is measured.
cp "$build_dir/daemon/cairn" "$cairn"
cp "$build_dir/bench/cairn-meta-bench" "$meta_bench"
head -c $((size_mb << 20)) /dev/urandom >"$bench_dir/src"  # cairn compresses zeros

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
rate() { awk -v a="$1" -v b="$(now)" -v mb="$size_mb" 'BEGIN { printf "%.0f", mb / (b - a) }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

shared_start "$bench_dir/servers"
log "PostgreSQL $SHARED_URL (fsync=$PG_FSYNC), s3rver $SHARED_ENDPOINT"

raw="$bench_dir/raw"
: >"$raw"
record() {  # record SYSTEM KEY VALUE
  [[ -n "$3" ]] || { echo "bench/multihost.sh: no value for $2 on $1" >&2; exit 1; }
  echo "$round $1 $2 $3" >>"$raw"
  printf 'round %d %-8s %-14s %s\n' "$round" "$1" "$2" "$3" >&2
}
record_meta() {  # record_meta SYSTEM SUFFIX "create X stat Y rename Z unlink W"
  local -a f
  read -ra f <<<"$3"
  local i
  for ((i = 0; i < ${#f[@]}; i += 2)); do record "$1" "${f[i]}$2" "${f[i + 1]}"; done
}

# seq SYSTEM MOUNT VOLUME [MOUNT_B]: write, remount, read; then on B.
seq_group() {
  local t="$1" m="$2" vol="$3" start
  drop_caches
  start=$(now)
  dd if="$bench_dir/src" of="$m/seq" bs=1M conv=fsync status=none
  record "$t" seqwrite "$(rate "$start")"
  "$cairn" umount "$m"
  drop_caches
  "$cairn" mount "$vol" "$m"
  start=$(now)
  dd if="$m/seq" of=/dev/null bs=1M status=none
  record "$t" seqread "$(rate "$start")"
  if [[ $# -ge 4 ]]; then
    drop_caches
    start=$(now)
    dd if="$4/seq" of=/dev/null bs=1M status=none
    record "$t" seqreadB "$(rate "$start")"
  fi
  rm -f "$m/seq"
}

group_embedded() {
  rm -rf "$bench_dir/emb-vol"
  "$cairn" format "$bench_dir/emb-vol" >/dev/null
  "$cairn" mount "$bench_dir/emb-vol" "$emb"
  record_meta embedded "" "$("$meta_bench" "$emb/meta" "$files")"
  seq_group embedded "$emb" "$bench_dir/emb-vol"
  "$cairn" umount "$emb"
}
# A fresh shared volume (database r$round, its own prefix in the bucket)
# mounted as A and B.
fresh_shared() {
  local m
  for m in "$mnt_a" "$mnt_b"; do
    if grep -q " $m " /proc/mounts; then "$cairn" umount "$m"; fi
  done
  rm -rf "$bench_dir/vol-a" "$bench_dir/vol-b"
  shared_format "$cairn" "$bench_dir/vol-a" "r$round"
  shared_attach "$cairn" "$bench_dir/vol-b" "r$round"
  "$cairn" mount "$bench_dir/vol-a" "$mnt_a"
  "$cairn" mount "$bench_dir/vol-b" "$mnt_b"
}
# Committed transactions in database r$round (the server's statistics
# lag up to a second behind).
xacts() {
  sleep 1.2
  shared_psql -d "r$round" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = 'r$round'"
}
group_shared() {
  fresh_shared
  local x0
  x0=$(xacts)
  record_meta shared "" "$("$meta_bench" "$mnt_a/meta" "$files")"
  # Over the four operations, per file: the round trips that bound them.
  record shared xacts_per_file "$(awk -v a="$x0" -v b="$(xacts)" -v n="$files" 'BEGIN { printf "%.1f", (b - a - 1) / n }')"
  seq_group shared "$mnt_a" "$bench_dir/vol-a" "$mnt_b"
}
group_two() {
  fresh_shared
  "$meta_bench" "$mnt_a/meta-a" "$files" >"$bench_dir/two-a" &
  local pa=$!
  "$meta_bench" "$mnt_b/meta-b" "$files" >"$bench_dir/two-b" &
  local pb=$!
  wait "$pa"
  wait "$pb"
  record_meta two _a "$(cat "$bench_dir/two-a")"
  record_meta two _b "$(cat "$bench_dir/two-b")"
}

groups=(embedded shared two)
load_log=""
for ((round = 1; round <= rounds; round++)); do
  order=()
  for ((i = 0; i < ${#groups[@]}; i++)); do
    order+=("${groups[(i + round - 1) % ${#groups[@]}]}")
  done
  log "round $round: ${order[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
  load_log+="- round $round (${order[*]}): load $(cut -d' ' -f1-3 /proc/loadavg)"
  for g in "${order[@]}"; do "group_$g"; done
  load_log+=" -> $(cut -d' ' -f1-3 /proc/loadavg)"$'\n'
done

# Visibility on the last round's shared volume (fresh_shared left it
# mounted as A and B).
log "visibility: $vis_samples samples of each kind"
vis="$(python3 - "$mnt_a/vis" "$mnt_b/vis" "$vis_samples" <<'EOF'
import os, random, sys, threading, time
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.mkdir(a)
deadline = time.monotonic() + 30
while not os.path.isdir(b):  # B sees the directory itself first
    if time.monotonic() > deadline: sys.exit("B never saw " + b)
    time.sleep(0.01)

def sample(change, seen):
    """Seconds from change() returning to B's first stat that satisfies seen()."""
    result = {}
    stop = time.monotonic() + 10
    def poll():
        while time.monotonic() < stop:
            try:
                st = os.stat(path_b)
            except FileNotFoundError:
                st = None
            if seen(st):
                result["t"] = time.monotonic()
                return
            time.sleep(0.002)
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(random.uniform(0.0, 0.05))  # B is already polling, at a random phase
    change()
    done = time.monotonic()
    t.join()
    if "t" not in result: sys.exit("B did not see the change within 10 s")
    return max(0.0, result["t"] - done)

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]

for kind in ("create", "chmod"):
    delays = []
    for i in range(n):
        path_a, path_b = "%s/f%d" % (a, i), "%s/f%d" % (b, i)
        if kind == "create":
            d = sample(lambda: os.close(os.open(path_a, os.O_CREAT | os.O_WRONLY, 0o644)),
                       lambda st: st is not None)
        else:
            d = sample(lambda: os.chmod(path_a, 0o600),
                       lambda st: st is not None and (st.st_mode & 0o777) == 0o600)
        delays.append(d * 1000)
    print("%s %.1f %.1f %.1f" % (kind, pct(delays, 50), pct(delays, 99), max(delays)))
EOF
)"
echo "$vis" >&2

log "one directory, two hosts: $files names each"
mkdir "$mnt_a/same"
sleep 1.2  # B's kernel may hold a negative entry for it
cat >"$bench_dir/same.py" <<'EOF'
import collections, errno, os, sys, time
d, p, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
errs = collections.Counter()
start = time.monotonic()
for i in range(n):
    a, b = "%s/%s%d" % (d, p, i), "%s/%sr%d" % (d, p, i)
    for op, call in (("create", lambda: os.close(os.open(a, os.O_CREAT | os.O_EXCL | os.O_WRONLY))),
                     ("rename", lambda: os.rename(a, b)), ("unlink", lambda: os.unlink(b))):
        try:
            call()
        except OSError as e:
            errs[op + " " + errno.errorcode[e.errno]] += 1
took = time.monotonic() - start
print("%s %.0f %s" % (p, 3 * n / took, ", ".join("%s: %d" % kv for kv in sorted(errs.items())) or "none"))
EOF
python3 "$bench_dir/same.py" "$mnt_a/same" A "$files" >"$bench_dir/same-a" &
same_pid=$!
python3 "$bench_dir/same.py" "$mnt_b/same" B "$files" >"$bench_dir/same-b"
wait "$same_pid"
cat "$bench_dir/same-a" "$bench_dir/same-b" >&2

# The table: median (min-max) of each figure; ratios within each round.
echo
echo "$rounds round(s) of $files files and $size_mb MiB; PostgreSQL fsync=$PG_FSYNC;" \
  "each cell the median (min-max) over the rounds, ratios taken within each round."
echo
echo "| figure | embedded | shared, host A alone | shared, A and B at once (A + B = sum) | shared / embedded | sum / A alone |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
  function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function cell(key, fmt,   a, n, r, m) {
    n = 0
    for (r = 1; r <= R; r++) if ((r, key) in v) a[++n] = v[r, key]
    if (n == 0) return ""
    sortn(a, n)
    m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    if (n == 1) return sprintf(fmt, m)
    return sprintf(fmt " (" fmt "-" fmt ")", m, a[1], a[n])
  }
  { v[$1, $2 "/" $3] = $4; if ($1 > R) R = $1 }
  END {
    split("create stat rename unlink", ops, " ")
    for (i = 1; i <= 4; i++) {
      o = ops[i]
      for (r = 1; r <= R; r++) {
        v[r, "two/" o "_sum"] = v[r, "two/" o "_a"] + v[r, "two/" o "_b"]
        v[r, "ratio/" o] = v[r, "shared/" o] / v[r, "embedded/" o]
        v[r, "ratio2/" o] = v[r, "two/" o "_sum"] / v[r, "shared/" o]
      }
      printf "| %s (ops/s) | %s | %s | %s + %s = %s | %s | %s |\n", o, cell("embedded/" o, "%.0f"),
        cell("shared/" o, "%.0f"), cell("two/" o "_a", "%.0f"), cell("two/" o "_b", "%.0f"),
        cell("two/" o "_sum", "%.0f"), cell("ratio/" o, "%.2fx"), cell("ratio2/" o, "%.2fx")
    }
    for (r = 1; r <= R; r++) {
      v[r, "ratio/seqwrite"] = v[r, "shared/seqwrite"] / v[r, "embedded/seqwrite"]
      v[r, "ratio/seqread"] = v[r, "shared/seqread"] / v[r, "embedded/seqread"]
      v[r, "ratio/seqreadB"] = v[r, "shared/seqreadB"] / v[r, "embedded/seqread"]
    }
    printf "| %d MiB write, conv=fsync (MiB/s) | %s | %s | | %s | |\n", MB, cell("embedded/seqwrite", "%.0f"),
      cell("shared/seqwrite", "%.0f"), cell("ratio/seqwrite", "%.2fx")
    printf "| read on the writer after drop_caches + remount (MiB/s) | %s | %s | | %s | |\n",
      cell("embedded/seqread", "%.0f"), cell("shared/seqread", "%.0f"), cell("ratio/seqread", "%.2fx")
    printf "| read on host B, from the bucket (MiB/s) | | %s | | %s | |\n",
      cell("shared/seqreadB", "%.0f"), cell("ratio/seqreadB", "%.2fx")
    printf "| PostgreSQL transactions per file (create + stat + rename + unlink, host A alone) | | %s | | | |\n",
      cell("shared/xacts_per_file", "%.1f")
  }' MB="$size_mb" "$raw"
echo
echo "Change on A seen by B polling every 2 ms ($vis_samples samples each), ms:"
echo
echo "| change | p50 | p99 | max |"
echo "|---|---:|---:|---:|"
awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' <<<"$vis"
echo
echo "A and B at once in one directory, $files names each (create, rename, unlink):"
echo
echo "| host | ops/s | failed operations |"
echo "|---|---:|---|"
cat "$bench_dir/same-a" "$bench_dir/same-b" | while read -r host ops failed; do
  echo "| $host | $ops | $failed |"
done
echo
echo "load average (1, 5, 15 min) at the start and the end of each round:"
printf '%s' "$load_log"
printf '\nmachine: %s, %s CPUs, %s GiB RAM, kernel %s; %s\n' \
  "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(nproc)" \
  "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)" "$(date -u '+%Y-%m-%d %H:%M UTC')"

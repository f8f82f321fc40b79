#!/usr/bin/env bash
# Replication and disaster recovery against s3rver on 127.0.0.1: how fast
# the replicator copies a volume's blobs to the replica bucket, how far the
# replica falls behind a steady writer, how long `cairn restore` takes to
# rebuild a volume from a backup, and how big a namespace backup is per file.
# Every volume has three disk directories (ec:2+1) and a [replica] section;
# background scrub is off so it does not compete. Needs root (drop_caches,
# mounts), python3, the s3rver that tests/run-all.sh installs (or
# CAIRN_S3RVER), and about 20 GiB free in BENCH_DIR (the 100 MiB/s writer
# writes 6 GiB, stored 1.5x on the disks and once more in s3rver).
#
#   bash bench/replica.sh                 # all four figures (~7 min)
#   bash bench/replica.sh throughput lag  # some of them: throughput, lag,
#                                         # restore, nssize
#   CAIRN_BUILD_DIR=build-bench bash bench/replica.sh nssize
#
#   BENCH_DIR       scratch directory (default /tmp/cairn-replica-bench)
#   BENCH_RUNS      rounds of the throughput figure (default 3)
#   LAG_RATES       MiB/s of the steady writers (default "20 50 100")
#   LAG_SECONDS     how long each writer writes (default 60)
#   RESTORE_FILES   files of the restore figure (default 10000; 1 GiB in all)
#   RESTORE_RUNS    restores of the same backup (default 3)
#   NS_FILES        files of the namespace-size figure (default 1000000)
#   CAIRN_BUILD_DIR a built tree to use (default: packaging/build.sh default)
#
# The replica's figures are read from the daemon's Prometheus endpoint
# ([metrics] listen), which computes them on each request: `cairn status`
# shows the same numbers, but from stats.json, which the daemon rewrites
# only every 2 s. Figures go to stdout as Markdown, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${BENCH_DIR:-/tmp/cairn-replica-bench}"
runs="${BENCH_RUNS:-3}"
lag_rates="${LAG_RATES:-20 50 100}"
lag_seconds="${LAG_SECONDS:-60}"
restore_files="${RESTORE_FILES:-10000}"
restore_runs="${RESTORE_RUNS:-3}"
ns_files="${NS_FILES:-1000000}"
if [[ -n "${CAIRN_BUILD_DIR:-}" ]]; then
  build_dir="$(cd "$CAIRN_BUILD_DIR" && pwd)"
else
  build_dir="$(bash packaging/build.sh default | tail -n 1)"
fi
cairn="$build_dir/daemon/cairn"
s3rver="${CAIRN_S3RVER:-$build_dir/s3rver/node_modules/.bin/s3rver}"
if [[ ! -x "$s3rver" ]]; then
  npm install --prefix "$build_dir/s3rver" --no-audit --no-fund s3rver@3.7.1 >/dev/null
fi
figures=("$@")
[[ ${#figures[@]} -eq 0 || "${figures[0]}" == all ]] && figures=(nssize throughput lag restore)
for f in "${figures[@]}"; do
  case "$f" in throughput|lag|restore|nssize) ;; *) echo "unknown figure '$f'" >&2; exit 2 ;; esac
done

bucket=replica
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
server_pid=""
sampler_pid=""
port=""
mounts=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  set +e
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null
  for m in "${mounts[@]}"; do "$cairn" umount "$m" >/dev/null 2>&1; done
  stop_server
  rm -rf "$bench_dir"
}
trap cleanup EXIT
cleanup
mkdir -p "$bench_dir"

# start_server: a fresh s3rver (empty data directory) with the bucket.
start_server() {
  stop_server
  rm -rf "$bench_dir/s3rver"
  mkdir -p "$bench_dir/s3rver"
  port=$(free_port)
  NODE_OPTIONS=--openssl-legacy-provider "$s3rver" -d "$bench_dir/s3rver" -a 127.0.0.1 \
    -p "$port" --silent --configure-bucket "$bucket" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "s3rver did not start" >&2
  exit 1
}

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cpu_seconds() {  # utime+stime of a process, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
# The whole machine: "BUSY_JIFFIES ALL_JIFFIES DISK_BUSY_MS" (CPU time not
# idle and not waiting for I/O, all CPU time, and the time the device under
# BENCH_DIR had I/O in flight). sys_usage BEFORE AFTER prints the machine's
# CPU busy % (100 = every core) and the device's busy %.
disk_name=""
sys_snapshot() {
  if [[ -z "$disk_name" ]]; then
    disk_name=$(basename "$(readlink -f "$(df --output=source "$bench_dir" | tail -n 1)")")
  fi
  awk -v d="$disk_name" '
    FILENAME == "/proc/stat" && $1 == "cpu" { for (i = 2; i <= NF; i++) all += $i; busy = all - $5 - $6 }
    FILENAME == "/proc/diskstats" && $3 == d { io = $13 }
    END { printf "%d %d %d\n", busy, all, io }' /proc/stat /proc/diskstats
}
sys_usage() {
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.0f %.0f\n", (y[1] - x[1]) / (y[2] - x[2]) * 100, (y[3] - x[3]) / 10 / (t1 - t0) }'
}
daemon_pid() { "$cairn" status --json "$1" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }

# new_volume DIR METRICS_PORT: formats DIR/vol over DIR/d0..d2 (ec:2+1),
# replicating to the bucket, scrub off, metrics on METRICS_PORT.
new_volume() {
  local dir="$1" metrics_port="$2"
  mkdir -p "$dir"
  "$cairn" format "$dir/vol" --disk "$dir/d0" --disk "$dir/d1" --disk "$dir/d2" >/dev/null
  sed -i 's/^scrub_interval_seconds = .*/scrub_interval_seconds = 0/' "$dir/vol/cairn.toml"
  cat >> "$dir/vol/cairn.toml" <<EOF

[replica]
endpoint = "http://127.0.0.1:$port"
bucket = "$bucket"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
backup_interval_seconds = 0

[metrics]
listen = "127.0.0.1:$metrics_port"
EOF
  chmod 600 "$dir/vol/cairn.toml"
}
mount_volume() {  # VOL MNT
  mkdir -p "$2"
  "$cairn" mount "$1" "$2" >/dev/null
  mounts+=("$2")
}
umount_volume() {  # MNT
  "$cairn" umount "$1" >/dev/null
  local kept=()
  for m in "${mounts[@]}"; do [[ "$m" == "$1" ]] || kept+=("$m"); done
  mounts=("${kept[@]}")
}

# The sampler: every INTERVAL seconds one line "TIME QUEUED_BLOBS
# QUEUED_BYTES LAG_SECONDS COPIED_BLOBS COPIED_BYTES DIRTY_BYTES" from the
# daemon's metrics, until killed.
cat > "$bench_dir/sampler.py" <<'PY'
import sys, time, urllib.request
url, interval, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
keys = ["cairn_replica_queued_blobs", "cairn_replica_queued_bytes",
        "cairn_replica_lag_seconds", "cairn_replica_copied_blobs_total",
        "cairn_replica_copied_bytes_total", "cairn_cache_dirty_bytes"]
with open(out, "w", buffering=1) as f:
    deadline = time.time()
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except Exception:
            text = ""
        values = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in keys:
                values[parts[0]] = int(float(parts[1]))
        if len(values) == len(keys):
            f.write("%.3f %s\n" % (time.time(), " ".join(str(values[k]) for k in keys)))
        deadline += interval
        time.sleep(max(0.0, deadline - time.time()))
PY
start_sampler() {  # METRICS_PORT INTERVAL FILE
  python3 "$bench_dir/sampler.py" "http://127.0.0.1:$1/metrics" "$2" "$3" &
  sampler_pid=$!
  for _ in $(seq 100); do [[ -s "$3" ]] && return 0; sleep 0.1; done
  echo "no metrics from the daemon at 127.0.0.1:$1" >&2
  exit 1
}
stop_sampler() {
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
}
# wait_replicated FILE BLOBS: until the sampler saw BLOBS copied and an
# empty queue (at most 30 minutes).
wait_replicated() {
  for _ in $(seq 9000); do
    if tail -n 1 "$1" | awk -v n="$2" '{ exit !($5 >= n && $2 == 0) }'; then return 0; fi
    sleep 0.2
  done
  echo "the replica did not catch up" >&2
  exit 1
}

# 256 files of 4 MiB of random bytes, shared by the throughput and lag figures.
make_big_files() {
  [[ -d "$bench_dir/src" ]] && return 0
  log "writing 256 files of 4 MiB (random bytes) to $bench_dir/src ..."
  mkdir -p "$bench_dir/src"
  python3 - "$bench_dir/src" <<'PY'
import os, sys
for i in range(256):
    with open(os.path.join(sys.argv[1], "f%03d" % i), "wb") as f:
        f.write(os.urandom(4 << 20))
PY
}

declare -A result

# ---- 1. Replication throughput: 1 GiB in 256 files of 4 MiB -----------------
# Each round, two volumes:
# - live: the volume replicates while cp writes into it. Timed: cp + sync,
#   then until every blob is in the replica (queue empty, all 256 copied).
# - backlog: the same files written into a volume without [replica] (timed:
#   the write without replication), unmounted, [replica] added, mounted
#   again: the mount queues all 256 blobs and the replicator drains them
#   with nothing else running. That is the replicator's own throughput.
figure_throughput() {
  make_big_files
  local total=$((1 << 30)) round dir mport samples t0 t1 t2 tm pid cpu_d0 cpu_s0 line sys0 sys1
  for round in $(seq "$runs"); do
    log "throughput round $round of $runs: live ..."
    start_server
    dir="$bench_dir/tp"
    rm -rf "$dir"
    mport=$(free_port)
    new_volume "$dir" "$mport"
    mount_volume "$dir/vol" "$dir/mnt"
    samples="$bench_dir/tp-$round.samples"
    start_sampler "$mport" 0.2 "$samples"
    pid=$(daemon_pid "$dir/mnt")
    cpu_d0=$(cpu_seconds "$pid"); cpu_s0=$(cpu_seconds "$server_pid")
    sys0=$(sys_snapshot)
    t0=$(now)
    cp -r "$bench_dir/src" "$dir/mnt/data"
    sync
    t1=$(now)
    wait_replicated "$samples" 256
    sys1=$(sys_snapshot); t2=$(now)
    stop_sampler
    read -r sys_cpu disk_busy <<<"$(sys_usage "$sys0" "$sys1" "$t0" "$t2")"
    result[tp_live_sys_cpu]+="$sys_cpu "; result[tp_live_disk]+="$disk_busy "
    # The first sample with the whole GiB copied and the queue empty.
    line=$(awk -v t0="$t0" -v t1="$t1" -v n="$total" '
      $1 >= t1 && $6 >= n && $2 == 0 && done == "" { done = $1 }
      END { printf "%.1f %.1f %.1f %.0f %.0f %.0f\n", t1 - t0, done - t1, done - t0,
                   n / 1048576 / (t1 - t0), n / 1048576 / (done - t1), n / 1048576 / (done - t0) }' "$samples")
    read -r w_s drain_s e2e_s w_rate drain_rate e2e_rate <<<"$line"
    result[tp_write_s]+="$w_s "; result[tp_write_rate]+="$w_rate "
    result[tp_drain_s]+="$drain_s "; result[tp_drain_rate]+="$drain_rate "
    result[tp_e2e_s]+="$e2e_s "; result[tp_e2e_rate]+="$e2e_rate "
    result[tp_live_cpu_daemon]+="$(awk -v a="$cpu_d0" -v b="$(cpu_seconds "$pid")" -v s="$e2e_s" 'BEGIN { printf "%.0f", (b - a) / s * 100 }') "
    result[tp_live_cpu_s3rver]+="$(awk -v a="$cpu_s0" -v b="$(cpu_seconds "$server_pid")" -v s="$e2e_s" 'BEGIN { printf "%.0f", (b - a) / s * 100 }') "
    log "  cp + sync ${w_s} s (${w_rate} MiB/s); queue empty ${drain_s} s after the sync; 1 GiB replicated ${e2e_s} s after the cp began (${e2e_rate} MiB/s)"
    umount_volume "$dir/mnt"
    rm -rf "$dir"

    log "throughput round $round of $runs: backlog ..."
    start_server
    mport=$(free_port)
    new_volume "$dir" "$mport"
    # Written without the [replica] section (and its metrics), which go
    # back in before the next mount.
    cp "$dir/vol/cairn.toml" "$dir/cairn.toml.replica"
    sed -i '/^\[replica\]/,$d' "$dir/vol/cairn.toml"
    mount_volume "$dir/vol" "$dir/mnt"
    t0=$(now)
    cp -r "$bench_dir/src" "$dir/mnt/data"
    sync
    t1=$(now)
    umount_volume "$dir/mnt"
    plain_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    result[tp_plain_write_s]+="$plain_s "
    result[tp_plain_write_rate]+="$(awk -v a="$t0" -v b="$t1" -v n="$total" 'BEGIN { printf "%.0f", n / 1048576 / (b - a) }') "
    cp "$dir/cairn.toml.replica" "$dir/vol/cairn.toml"
    chmod 600 "$dir/vol/cairn.toml"
    drop_caches
    samples="$bench_dir/tp-backlog-$round.samples"
    tm=$(now)
    mount_volume "$dir/vol" "$dir/mnt"
    pid=$(daemon_pid "$dir/mnt")
    cpu_d0=$(cpu_seconds "$pid"); cpu_s0=$(cpu_seconds "$server_pid")
    sys0=$(sys_snapshot); t0=$(now)
    start_sampler "$mport" 0.2 "$samples"
    wait_replicated "$samples" 256
    sys1=$(sys_snapshot); t2=$(now)
    stop_sampler
    read -r sys_cpu disk_busy <<<"$(sys_usage "$sys0" "$sys1" "$t0" "$t2")"
    result[tp_backlog_sys_cpu]+="$sys_cpu "; result[tp_backlog_disk]+="$disk_busy "
    # From the mount (the queue holds all 256 blobs) and from the first
    # finished copy (the replicator looks at its queue every 2 s when idle,
    # so the first pass starts up to 2 s after the mount).
    line=$(awk -v tm="$tm" -v n="$total" '
      $6 > 0 && first == "" { first = $1; first_bytes = $6 }
      $6 >= n && $2 == 0 && done == "" { done = $1 }
      END { printf "%.1f %.0f %.0f %.3f\n", done - tm, n / 1048576 / (done - tm),
                   (n - first_bytes) / 1048576 / (done - first), done }' "$samples")
    read -r bl_s bl_rate bl_steady bl_done <<<"$line"
    result[tp_backlog_s]+="$bl_s "; result[tp_backlog_rate]+="$bl_rate "
    result[tp_backlog_steady]+="$bl_steady "
    result[tp_cpu_daemon]+="$(awk -v a="$cpu_d0" -v b="$(cpu_seconds "$pid")" -v s="$bl_s" 'BEGIN { printf "%.0f", (b - a) / s * 100 }') "
    result[tp_cpu_s3rver]+="$(awk -v a="$cpu_s0" -v b="$(cpu_seconds "$server_pid")" -v s="$bl_s" 'BEGIN { printf "%.0f", (b - a) / s * 100 }') "
    log "  cp + sync without replica ${plain_s} s; backlog of 1 GiB replicated ${bl_s} s after the mount (${bl_rate} MiB/s; ${bl_steady} MiB/s from the first copy)"
    umount_volume "$dir/mnt"
    rm -rf "$dir"
  done
  stop_server
}

# ---- 2. Lag under a steady writer -------------------------------------------
figure_lag() {
  make_big_files
  local rate dir mport samples pid t0 t1 interval count
  for rate in $lag_rates; do
    log "lag at $rate MiB/s for $lag_seconds s ..."
    start_server
    dir="$bench_dir/lag"
    rm -rf "$dir"
    mport=$(free_port)
    new_volume "$dir" "$mport"
    mount_volume "$dir/vol" "$dir/mnt"
    samples="$bench_dir/lag-$rate.samples"
    start_sampler "$mport" 1 "$samples"
    interval=$(awk -v r="$rate" 'BEGIN { printf "%.4f", 4 / r }')
    count=$(awk -v r="$rate" -v s="$lag_seconds" 'BEGIN { printf "%d", r * s / 4 }')
    t0=$(now)
    # One 4 MiB file every 4/RATE seconds, on a fixed schedule; prints how
    # far behind the schedule the writer fell at worst, and its MiB/s.
    behind=$(python3 - "$bench_dir/src" "$dir/mnt/load" "$interval" "$count" <<'PY'
import os, sys, time
src, dst, interval, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
os.makedirs(dst)
blocks = [open(os.path.join(src, "f%03d" % i), "rb").read() for i in range(256)]
start, worst = time.time(), 0.0
for i in range(count):
    due = start + i * interval
    now = time.time()
    if now < due:
        time.sleep(due - now)
    worst = max(worst, time.time() - due)
    with open(os.path.join(dst, "g%05d" % i), "wb") as f:
        f.write(blocks[i % 256])
print("%.2f %.1f" % (worst, count * 4 / (time.time() - start)))
PY
)
    read -r behind achieved <<<"$behind"
    t1=$(now)
    wait_replicated "$samples" "$count"
    stop_sampler
    # During the load: max and median lag, max queue; after it: time to drain.
    read -r lag_max queue_max queue_blobs_max drain dirty_max <<<"$(awk -v t0="$t0" -v t1="$t1" -v n="$count" '
      $1 >= t0 && $1 <= t1 { if ($4 > lm) lm = $4; if ($3 > qm) qm = $3; if ($2 > bm) bm = $2; if ($7 > dm) dm = $7 }
      $1 > t1 && $5 >= n && $2 == 0 && done == "" { done = $1 }
      END { printf "%d %.0f %d %.1f %.0f\n", lm, qm / 1048576, bm, done - t1, dm / 1048576 }' "$samples")"
    lag_med=$(awk -v t0="$t0" -v t1="$t1" '$1 >= t0 && $1 <= t1 { print $4 }' "$samples" | median)
    result[lag_$rate]="$achieved $lag_max $lag_med $queue_max $queue_blobs_max $drain $behind $dirty_max"
    log "  achieved $(cut -d' ' -f1 <<<"${result[lag_$rate]}") MiB/s; lag max ${lag_max}s median ${lag_med}s; queue max ${queue_max} MiB (${queue_blobs_max} blobs); drained ${drain}s after the writer stopped; writer behind schedule at worst ${behind}s"
    umount_volume "$dir/mnt"
    rm -rf "$dir"
  done
  stop_server
}

# ---- 3. Restore of 1 GiB in RESTORE_FILES files ------------------------------
figure_restore() {
  local dir="$bench_dir/rs" mport samples t0 t1 t2 out i rdir cpu_s0 cpu_r sys0 sys1
  log "writing $restore_files files (1 GiB in all, random bytes) to $bench_dir/small ..."
  rm -rf "$bench_dir/small"
  python3 - "$bench_dir/small" "$restore_files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
total = 1 << 30
per_dir = 100
for i in range(n):
    size = total * (i + 1) // n - total * i // n
    d = os.path.join(root, "d%03d" % (i // per_dir))
    if i % per_dir == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(size))
PY
  (cd "$bench_dir/small" && find . -type f -print0 | xargs -0 sha256sum > "$bench_dir/small.sums")

  start_server
  mport=$(free_port)
  new_volume "$dir" "$mport"
  mount_volume "$dir/vol" "$dir/mnt"
  samples="$bench_dir/rs.samples"
  start_sampler "$mport" 0.2 "$samples"
  log "copying them into a volume and waiting for the replica ..."
  t0=$(now)
  cp -r "$bench_dir/small" "$dir/mnt/small"
  sync
  t1=$(now)
  wait_replicated "$samples" "$restore_files"
  t2=$(awk -v n="$restore_files" '$5 >= n && $2 == 0 { print $1; exit }' "$samples")
  stop_sampler
  result[rs_write_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  result[rs_replicated_s]=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
  log "  written in ${result[rs_write_s]} s; replicated ${result[rs_replicated_s]} s after the copy began"
  t0=$(now)
  out=$("$cairn" backup "$dir/mnt" | head -n 1)
  t1=$(now)
  result[rs_backup_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  result[rs_backup_line]="$out"
  log "  $out"
  out=$("$cairn" backup list "$dir/mnt" --json)
  result[rs_backup_bytes]=$(grep -o '"stored_bytes": *[0-9]*' <<<"$out" | tail -n 1 | grep -o '[0-9]*$')
  result[rs_backup_inodes]=$(grep -o '"inodes": *[0-9]*' <<<"$out" | tail -n 1 | grep -o '[0-9]*$')
  # Its objects, from s3rver's data directory: table files, OPTIONS (about
  # 45 KiB whatever the size), the rest of the checkpoint, the blob list.
  read -r result[rs_backup_objects] result[rs_backup_sst] result[rs_backup_options] \
    result[rs_backup_other] result[rs_backup_list] <<<"$(find "$bench_dir/s3rver/$bucket" \
    -path '*/backups/*' -name '*._S3rver_object' -printf '%s %f\n' | awk '
      $2 == "manifest._S3rver_object" { next }
      { n++ } $2 ~ /\.sst\./ { sst += $1; next } $2 ~ /^OPTIONS/ { opt += $1; next }
      $2 == "blobs._S3rver_object" { list += $1; next } { other += $1 }
      END { printf "%d %d %d %d %d\n", n, sst, opt, other, list }')"
  umount_volume "$dir/mnt"

  for i in $(seq "$restore_runs"); do
    log "restore $i of $restore_runs ..."
    rdir="$bench_dir/restored"
    rm -rf "$rdir"
    drop_caches
    cpu_s0=$(cpu_seconds "$server_pid")
    sys0=$(sys_snapshot)
    t0=$(now)
    # bash's time: wall, then user + system CPU of cairn restore.
    cpu_r=$( { TIMEFORMAT='%R %U %S'; time "$cairn" restore --from "s3://$bucket/cairn/" \
      --endpoint "http://127.0.0.1:$port" "$rdir/vol" --disk "$rdir/e0" --disk "$rdir/e1" \
      --disk "$rdir/e2" > "$bench_dir/restore.out" 2>/dev/null; } 2>&1 )
    t1=$(now)
    sys1=$(sys_snapshot)
    read -r sys_cpu disk_busy <<<"$(sys_usage "$sys0" "$sys1" "$t0" "$t1")"
    result[rs_sys_cpu]+="$sys_cpu "; result[rs_disk]+="$disk_busy "
    out=$(head -n 1 "$bench_dir/restore.out")
    log "  $out"
    result[rs_blobs]=$(sed -n 's/.*; \([0-9]*\) blobs (.*/\1/p' <<<"$out")
    result[rs_own_s]+="$(sed -n 's/.* fetched in \([0-9.]*\) s .*/\1/p' <<<"$out") "
    result[rs_cpu_restore]+="$(awk -v a="$t0" -v b="$t1" -v c="$cpu_r" 'BEGIN { split(c, x, " "); printf "%.0f", (x[2] + x[3]) / (b - a) * 100 }') "
    result[rs_cpu_s3rver]+="$(awk -v a="$t0" -v b="$t1" -v c0="$cpu_s0" -v c1="$(cpu_seconds "$server_pid")" 'BEGIN { printf "%.0f", (c1 - c0) / (b - a) * 100 }') "
    result[rs_restore_s]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') "
    result[rs_restore_rate]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1024 / (b - a) }') "
    sed -i 's/^scrub_interval_seconds = .*/scrub_interval_seconds = 0/' "$rdir/vol/cairn.toml"
    t0=$(now)
    mount_volume "$rdir/vol" "$rdir/mnt"
    t1=$(now)
    drop_caches
    local found
    found=$(find "$rdir/mnt/small" -type f | wc -l)
    t2=$(now)
    [[ "$found" -eq "$restore_files" ]] || { echo "restored $found files, not $restore_files" >&2; exit 1; }
    result[rs_mount_s]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') "
    result[rs_find_s]+="$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }') "
    t0=$(now)
    (cd "$rdir/mnt/small" && sha256sum --quiet -c "$bench_dir/small.sums") ||
      { echo "MISMATCH in the restored volume" >&2; exit 1; }
    t1=$(now)
    result[rs_read_s]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') "
    log "  mounted, $found files found and every one read back and checked"
    t0=$(now)
    umount_volume "$rdir/mnt"
    t1=$(now)
    result[rs_umount_s]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') "
    rm -rf "$rdir"
  done
  stop_server
  rm -rf "$dir"
}

# ---- 4. Namespace backup size per file --------------------------------------
figure_nssize() {
  local tool="$build_dir/bench/cairn-backup-size"
  [[ -x "$tool" ]] || { echo "$tool is not built" >&2; exit 1; }
  log "namespace of $ns_files files with one blob each (bench/backup_size.cc) ..."
  rm -rf "$bench_dir/ns"
  "$tool" "$bench_dir/ns" "$ns_files" $(( ns_files >= 1000 ? ns_files / 1000 : 1 )) > "$bench_dir/ns.out"
  rm -rf "$bench_dir/ns"
  local key value
  while read -r key value; do result[ns_$key]="$value"; done < "$bench_dir/ns.out"
}

for f in "${figures[@]}"; do
  start_time=$(now)
  "figure_$f"
  result[time_$f]=$(awk -v a="$start_time" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
  log "$f took ${result[time_$f]} s"
done

m() { tr ' ' '\n' <<<"${result[$1]}" | grep . | median; }
all() { tr -s ' ' <<<"${result[$1]}" | sed 's/ $//'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo
echo "# Replication and disaster recovery, s3rver on 127.0.0.1 ($(date -u +%F))"
for f in "${figures[@]}"; do
  echo
  case "$f" in
  throughput)
    echo "## 1 GiB in 256 files of 4 MiB: median of $runs rounds (${result[time_throughput]} s)"
    echo
    echo "| figure | median | every round |"
    echo "|---|---:|---|"
    echo "| live: cp + sync into the replicating volume, s | $(m tp_write_s) | $(all tp_write_s) |"
    echo "| live: cp + sync, MiB/s | $(m tp_write_rate) | $(all tp_write_rate) |"
    echo "| live: queue empty after the sync, s | $(m tp_drain_s) | $(all tp_drain_s) |"
    echo "| live: 1 GiB / that time, MiB/s | $(m tp_drain_rate) | $(all tp_drain_rate) |"
    echo "| live: start of cp to queue empty, s | $(m tp_e2e_s) | $(all tp_e2e_s) |"
    echo "| live: 1 GiB / that time, MiB/s | $(m tp_e2e_rate) | $(all tp_e2e_rate) |"
    echo "| live: CPU of the daemon, % of one core | $(m tp_live_cpu_daemon) | $(all tp_live_cpu_daemon) |"
    echo "| live: CPU of s3rver, % of one core | $(m tp_live_cpu_s3rver) | $(all tp_live_cpu_s3rver) |"
    echo "| live: whole machine CPU busy, % of both cores | $(m tp_live_sys_cpu) | $(all tp_live_sys_cpu) |"
    echo "| live: disk busy (I/O in flight), % | $(m tp_live_disk) | $(all tp_live_disk) |"
    echo "| cp + sync into a volume without [replica], s | $(m tp_plain_write_s) | $(all tp_plain_write_s) |"
    echo "| cp + sync without [replica], MiB/s | $(m tp_plain_write_rate) | $(all tp_plain_write_rate) |"
    echo "| backlog: mount to queue empty, s | $(m tp_backlog_s) | $(all tp_backlog_s) |"
    echo "| backlog: 1 GiB / that time, MiB/s | $(m tp_backlog_rate) | $(all tp_backlog_rate) |"
    echo "| backlog: first copy to last, MiB/s | $(m tp_backlog_steady) | $(all tp_backlog_steady) |"
    echo "| backlog: CPU of the daemon, % of one core | $(m tp_cpu_daemon) | $(all tp_cpu_daemon) |"
    echo "| backlog: CPU of s3rver, % of one core | $(m tp_cpu_s3rver) | $(all tp_cpu_s3rver) |"
    echo "| backlog: whole machine CPU busy, % of both cores | $(m tp_backlog_sys_cpu) | $(all tp_backlog_sys_cpu) |"
    echo "| backlog: disk busy (I/O in flight), % | $(m tp_backlog_disk) | $(all tp_backlog_disk) |"
    ;;
  lag)
    echo "## Steady writer, one 4 MiB file at a time for $lag_seconds s, sampled every second (${result[time_lag]} s)"
    echo
    echo "| target MiB/s | written MiB/s | lag max, s | lag median, s | queue max, MiB (blobs) | queue empty after the writer stopped, s | writer behind schedule at worst, s | unstored data max, MiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for rate in $lag_rates; do
      read -r achieved lmax lmed qmax qblobs drain behind dirty <<<"${result[lag_$rate]}"
      echo "| $rate | $achieved | $lmax | $lmed | $qmax ($qblobs) | $drain | $behind | $dirty |"
    done
    ;;
  restore)
    echo "## Restore of 1 GiB in $restore_files files: median of $restore_runs restores of one backup (${result[time_restore]} s)"
    echo
    echo "| figure | median | every run |"
    echo "|---|---:|---|"
    echo "| cairn restore (wall), s | $(m rs_restore_s) | $(all rs_restore_s) |"
    echo "| 1 GiB / that, MiB/s | $(m rs_restore_rate) | $(all rs_restore_rate) |"
    echo "| fetching the blobs alone (as cairn restore reports it), s | $(m rs_own_s) | $(all rs_own_s) |"
    echo "| blobs fetched | ${result[rs_blobs]} | |"
    echo "| CPU of cairn restore, % of one core | $(m rs_cpu_restore) | $(all rs_cpu_restore) |"
    echo "| CPU of s3rver, % of one core | $(m rs_cpu_s3rver) | $(all rs_cpu_s3rver) |"
    echo "| whole machine CPU busy, % of both cores | $(m rs_sys_cpu) | $(all rs_sys_cpu) |"
    echo "| disk busy (I/O in flight), % | $(m rs_disk) | $(all rs_disk) |"
    echo "| cairn mount of the restored volume, s | $(m rs_mount_s) | $(all rs_mount_s) |"
    echo "| find \| wc -l, cold, s | $(m rs_find_s) | $(all rs_find_s) |"
    echo "| sha256sum -c of every file, cold, s | $(m rs_read_s) | $(all rs_read_s) |"
    echo "| cairn umount, s | $(m rs_umount_s) | $(all rs_umount_s) |"
    echo
    echo "Source volume: cp + sync ${result[rs_write_s]} s; every blob in the replica ${result[rs_replicated_s]} s after the cp began; cairn backup ${result[rs_backup_s]} s:"
    echo "\`${result[rs_backup_line]}\`"
    echo
    echo "Namespace copy: ${result[rs_backup_bytes]} bytes for ${result[rs_backup_inodes]} inodes ($(awk -v b="${result[rs_backup_bytes]}" -v n="${result[rs_backup_inodes]}" 'BEGIN { printf "%.0f", b / n }') bytes per inode) in ${result[rs_backup_objects]} objects besides the manifest: table files ${result[rs_backup_sst]}, OPTIONS ${result[rs_backup_options]}, other checkpoint files ${result[rs_backup_other]}, blob list ${result[rs_backup_list]} bytes; without OPTIONS $(awk -v b="${result[rs_backup_bytes]}" -v o="${result[rs_backup_options]}" -v n="${result[rs_backup_inodes]}" 'BEGIN { printf "%.0f", (b - o) / n }') bytes per inode."
    ;;
  nssize)
    echo "## Namespace backup of ${result[ns_files]} files in ${result[ns_dirs]} directories, one blob each (${result[time_nssize]} s)"
    echo
    echo "| figure | value |"
    echo "|---|---:|"
    echo "| building the namespace (MakeNode + CommitWrite each), s | ${result[ns_create_seconds]} |"
    echo "| CreateCheckpoint, s | ${result[ns_checkpoint_seconds]} |"
    echo "| checkpoint files | ${result[ns_checkpoint_files]} |"
    echo "| checkpoint, MiB (table files $(mib "${result[ns_checkpoint_sst]}")) | $(mib "${result[ns_checkpoint_total]}") |"
    echo "| blob list (16 bytes per blob), MiB | $(mib "${result[ns_blob_list]}") |"
    echo "| backup (checkpoint + blob list), MiB | $(mib "${result[ns_backup_bytes]}") |"
    echo "| backup, bytes per file | ${result[ns_backup_bytes_per_file]} |"
    echo "| the same with the checkpoint fully compacted, bytes per file | ${result[ns_compacted_backup_bytes_per_file]} |"
    ;;
  esac
done

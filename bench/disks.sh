#!/usr/bin/env bash
# The striped store's figures: the same workloads through the mount on a
# volume with one plain disk and on one with six disk directories (ec:4+2),
# all on the same underlying device (so the ratio shows cairn's own cost,
# not more spindles). Needs root (drop_caches) and about 4 GiB free in
# BENCH_DIR (default /var/tmp/cairn-disks-bench).
#
#   bash bench/disks.sh                  # 1 GiB and 10,000 files (~3 min)
#   BENCH_SIZE_MB=256 BENCH_FILES=2000 BENCH_RUNS=1 bash bench/disks.sh
#
# Reports per layout: sequential write and cold read MiB/s (fio, bs=1M),
# bytes in shard files per user byte (write amplification on the data
# disks), bytes the daemon wrote to any device per user byte (/proc/PID/io,
# journal and namespace included), and for small files: files/s, shard
# files and fsync/fdatasync calls per user file (strace -c on the daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${BENCH_DIR:-/var/tmp/cairn-disks-bench}"
size_mb="${BENCH_SIZE_MB:-1024}"
files="${BENCH_FILES:-10000}"
runs="${BENCH_RUNS:-3}"
build_dir="$(bash packaging/build.sh default | tail -n 1)"
cairn="$build_dir/daemon/cairn"
mnt="$bench_dir/mnt"

cleanup() {
  set +e
  "$cairn" umount "$mnt" >/dev/null 2>&1
  rm -rf "$bench_dir"
}
trap cleanup EXIT
cleanup
mkdir -p "$mnt"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
daemon_pid() { "$cairn" status --json "$mnt" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
daemon_written() { awk '/^write_bytes/ { print $2 }' "/proc/$(daemon_pid)/io"; }
shard_bytes() { find "$@" -name '*.shard' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
shard_files() { find "$@" -name '*.shard' | wc -l; }
fio_field() { fio --minimal "${@:2}" | awk -F';' -v f="$1" '{ print $f }'; }

declare -A result
# small_files NAME BYTES COUNT DISK...: creates COUNT files of BYTES each in a
# new directory, then counts the shard files and fsync calls they cost once
# everything is stored.
small_files() {
  local name="$1" bytes="$2" count="$3"; shift 3
  local shards_before pid trace start strace_pid syncs key
  key="$name,$bytes"
  shards_before=$(shard_files "$@")
  pid=$(daemon_pid)
  trace="$bench_dir/$name-$bytes.strace"
  strace -f -c -o "$trace" -e trace=fsync,fdatasync,syncfs -p "$pid" 2>/dev/null &
  strace_pid=$!
  sleep 1
  start=$(now)
  python3 - "$mnt/small-$bytes" "$count" "$bytes" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mkdir(d)
block = os.urandom(size)
for i in range(n):
    with open(f"{d}/f{i:06d}", "wb") as f:
        f.write(block)
PY
  result[$key,files_per_s]=$(rate "$count" "$start" "$(now)")
  sync -f "$mnt/small-$bytes"
  sleep 7   # the flush timer stores whatever sync left in the journal
  kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
  syncs=$(awk '$NF ~ /^(fsync|fdatasync|syncfs)$/ { s += $4 } END { print s + 0 }' "$trace")
  result[$key,shards_per_file]=$(ratio $(( $(shard_files "$@") - shards_before )) "$count")
  result[$key,fsyncs_per_file]=$(ratio "$syncs" "$count")
  result[$key,count]=$count
}

# Formats volume NAME over the disk directories D...
make_volume() {
  local name="$1"; shift
  local disk_args=()
  for d in "$@"; do disk_args+=(--disk "$bench_dir/$name-$d"); done
  "$cairn" format "$bench_dir/$name" "${disk_args[@]}" >&2
  # No background scrub during the measurements, and no garbage collection
  # either, so shard counts and bytes before and after a step differ by
  # exactly what the step stored.
  sed -i -e 's/^scrub_interval_seconds = .*/scrub_interval_seconds = 0/' \
    -e 's/^gc_grace_seconds = .*/gc_grace_seconds = 100000000/' "$bench_dir/$name/cairn.toml"
}
disk_dirs() { ls -d "$bench_dir/$1"-d*; }

# One sequential write and cold read of the layout; appends to the lists.
seq_round() {
  local name="$1" kib stored_before
  stored_before=$(shard_bytes $(disk_dirs "$name"))
  "$cairn" mount "$bench_dir/$name" "$mnt"
  kib=$(fio_field 48 --name=seqwrite --directory="$mnt" --ioengine=psync --filename=seq \
        --rw=write --bs=1M --size="${size_mb}M" --end_fsync=1)
  result[$name,seqwrite]+="$((kib / 1024)) "
  "$cairn" umount "$mnt"   # stores everything still in the journal
  # The daemon is gone: count what the shards hold.
  result[$name,wa_disks]=$(ratio $(( $(shard_bytes $(disk_dirs "$name")) - stored_before )) \
                           $((size_mb << 20)))
  "$cairn" mount "$bench_dir/$name" "$mnt"
  sync; echo 3 > /proc/sys/vm/drop_caches
  kib=$(fio_field 7 --name=seqread --directory="$mnt" --ioengine=psync --filename=seq \
        --rw=read --bs=1M --size="${size_mb}M")
  result[$name,seqread]+="$((kib / 1024)) "
  rm -f "$mnt/seq"
  "$cairn" umount "$mnt"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

other_figures() {
  local name="$1" before after
  "$cairn" mount "$bench_dir/$name" "$mnt"
  # Device bytes for one write measured alone (/proc/PID/io of a fresh
  # daemon: the journal, the namespace and the shards).
  before=$(daemon_written)
  head -c $((256 << 20)) /dev/urandom > "$mnt/wa" && sync -f "$mnt/wa"
  sleep 3
  after=$(daemon_written)
  result[$name,wa_total]=$(ratio $((after - before)) $((256 << 20)))
  rm -f "$mnt/wa"
  small_files "$name" 4096 "$files" $(disk_dirs "$name")
  small_files "$name" 65536 $((files / 5)) $(disk_dirs "$name")
  small_files "$name" 131072 $((files / 5)) $(disk_dirs "$name")
  "$cairn" umount "$mnt"
}

make_volume plain d0
make_volume ec42 d0 d1 d2 d3 d4 d5
# Alternating rounds: this VM's disk speed drifts by 2x between minutes, so
# each layout gets the same mix of good and bad moments; medians are shown.
for ((round = 1; round <= runs; round++)); do
  echo "=== round $round" >&2
  seq_round plain
  seq_round ec42
done
for name in plain ec42; do
  for key in seqwrite seqread; do
    result[$name,${key}_all]="${result[$name,$key]}"
    result[$name,$key]=$(echo "${result[$name,$key]}" | median)
  done
done
other_figures plain
other_figures ec42

printf '\n| figure | 1 disk, plain | 6 disks, ec:4+2 | ec:4+2 / plain |\n|---|---|---|---|\n'
row() { printf '| %s | %s | %s | %s |\n' "$1" "${result[plain,$2]}" "${result[ec42,$2]}" \
        "$(ratio "${result[ec42,$2]}" "${result[plain,$2]}")"; }
row "seq write ${size_mb} MiB, MiB/s (median of $runs)" seqwrite
row "seq read, cold, MiB/s (median of $runs)" seqread
row "bytes in shard files / user bytes" wa_disks
row "bytes the daemon wrote to devices / user bytes (journal incl.)" wa_total
for bytes in 4096 65536 131072; do
  kib=$((bytes / 1024))
  row "create ${result[plain,$bytes,count]} files of $kib KiB, files/s" "$bytes,files_per_s"
  row "shard files per $kib KiB file" "$bytes,shards_per_file"
  row "fsync+fdatasync calls per $kib KiB file (all devices)" "$bytes,fsyncs_per_file"
done
printf '\nall rounds (MiB/s): plain write %s/ ec42 write %s/ plain read %s/ ec42 read %s\n' \
  "${result[plain,seqwrite_all]}" "${result[ec42,seqwrite_all]}" \
  "${result[plain,seqread_all]}" "${result[ec42,seqread_all]}"

#!/usr/bin/env bash
# The benchmark suite: the same workloads on a cairn mount (default embedded
# volume), a native directory, and libfuse's passthrough_ll example mounted
# over a native directory (the FUSE ceiling on this kernel), then one table
# with the ratios. Needs root (drop_caches, mounts) and about 4 GiB free in
# BENCH_DIR (default /var/tmp/cairn-bench, on the same disk as the volume).
#
#   bash bench/run.sh            # builds if needed, runs everything (~5 min)
#   BENCH_QUICK=1 bash bench/run.sh   # 256 MiB instead of 1 GiB, shorter runs
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

bench_dir="${BENCH_DIR:-/var/tmp/cairn-bench}"
size_mb=1024
rand_seconds=15
meta_files=5000
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  size_mb=256
  rand_seconds=5
fi
git_repo="${BENCH_GIT_REPO:-$repo}"

build_dir="$(bash packaging/build.sh default | tail -n 1)"
cairn="$build_dir/daemon/cairn"
meta_bench="$build_dir/bench/cairn-meta-bench"
passthrough="$bench_dir/passthrough_ll"

cleanup() {
  set +e
  "$cairn" umount "$bench_dir/cairn" >/dev/null 2>&1
  fusermount3 -u "$bench_dir/pt" >/dev/null 2>&1
  rm -rf "$bench_dir"
}
trap cleanup EXIT
cleanup
mkdir -p "$bench_dir"/{native,pt-src,pt,cairn}

gcc -O2 -Wall -o "$passthrough" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
  $(pkg-config --cflags --libs fuse3)
"$passthrough" -o source="$bench_dir/pt-src" "$bench_dir/pt"
"$cairn" format "$bench_dir/volume" >/dev/null
"$cairn" mount "$bench_dir/volume" "$bench_dir/cairn"

daemon_pid() { "$cairn" status --json "$bench_dir/cairn" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Cold means cold for cairn too: remounting empties the daemon's block cache.
make_cold() {
  if [[ "$1" == cairn ]]; then
    "$cairn" umount "$bench_dir/cairn"
    drop_caches
    "$cairn" mount "$bench_dir/volume" "$bench_dir/cairn"
  else
    drop_caches
  fi
}
# fio's terse output: field 7 is read KiB/s, 8 read IOPS, 48 write KiB/s, 49 write IOPS.
fio_field() { fio --minimal "${@:2}" | awk -F';' -v f="$1" '{ print $f }'; }

declare -A result
targets=(native pt cairn)
peak_rss_kib=0
note_rss() {
  local pid kib
  pid="$(daemon_pid)"
  kib="$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)"
  (( kib > peak_rss_kib )) && peak_rss_kib=$kib
  return 0
}

for t in "${targets[@]}"; do
  d="$bench_dir/$t"
  echo "=== $t" >&2
  common=(--directory="$d" --ioengine=psync --group_reporting)
  kib=$(fio_field 48 --name=seqwrite "${common[@]}" --filename=seq --rw=write --bs=1M \
        --size="${size_mb}M" --end_fsync=1)
  result[$t,seqwrite]=$((kib / 1024))
  [[ $t == cairn ]] && note_rss
  make_cold "$t"
  kib=$(fio_field 7 --name=seqread "${common[@]}" --filename=seq --rw=read --bs=1M \
        --size="${size_mb}M")
  result[$t,seqread]=$((kib / 1024))
  [[ $t == cairn ]] && note_rss
  make_cold "$t"
  result[$t,randread]=$(fio_field 8 --name=randread "${common[@]}" --filename=seq \
        --rw=randread --bs=4k --size="${size_mb}M" --time_based --runtime="$rand_seconds")
  [[ $t == cairn ]] && note_rss
  result[$t,randwrite]=$(fio_field 49 --name=randwrite "${common[@]}" --filename=rand \
        --rw=randwrite --bs=4k --size=256M --time_based --runtime="$rand_seconds" --end_fsync=1)
  [[ $t == cairn ]] && note_rss
  rm -f "$d/seq" "$d/rand"

  read -r _ c _ s _ r _ u < <("$meta_bench" "$d/meta" "$meta_files")
  result[$t,create]=$c; result[$t,stat]=$s; result[$t,rename]=$r; result[$t,unlink]=$u
  [[ $t == cairn ]] && note_rss

  start=$(now); cp -a /usr/include "$d/inc"; result[$t,cp]=$(elapsed "$start")
  make_cold "$t"
  start=$(now); ls -lR "$d/inc" >/dev/null; result[$t,lsR]=$(elapsed "$start")
  start=$(now); du -s "$d/inc" >/dev/null; result[$t,du]=$(elapsed "$start")
  mkdir "$d/copy"
  start=$(now); tar c -C "$d" inc | tar x -C "$d/copy"; result[$t,tar]=$(elapsed "$start")
  start=$(now); rm -rf "$d/inc" "$d/copy"; result[$t,rm]=$(elapsed "$start")
  [[ $t == cairn ]] && note_rss

  start=$(now); git clone -q --no-hardlinks "$git_repo" "$d/repo"; result[$t,clone]=$(elapsed "$start")
  start=$(now); git -C "$d/repo" status >/dev/null; result[$t,gstatus]=$(elapsed "$start")
  start=$(now); git -C "$d/repo" log --stat >/dev/null; result[$t,glog]=$(elapsed "$start")
  rm -rf "$d/repo"
  [[ $t == cairn ]] && note_rss
done

# Higher is better for rates, lower for times; the ratio is always
# "how many times better cairn is" (>1 means cairn wins).
rows=(
  "seqwrite|fio seq write ${size_mb} MiB, bs=1M, end_fsync (MiB/s)|rate"
  "seqread|fio seq read, cold (MiB/s)|rate"
  "randread|fio 4 KiB random read, cold start (IOPS)|rate"
  "randwrite|fio 4 KiB random write, end_fsync (IOPS)|rate"
  "create|create ${meta_files} files in one dir (ops/s)|rate"
  "stat|stat (ops/s)|rate"
  "rename|rename (ops/s)|rate"
  "unlink|unlink (ops/s)|rate"
  "cp|cp -a /usr/include (s)|time"
  "lsR|ls -lR, cold (s)|time"
  "du|du -s (s)|time"
  "tar|tar c piped to tar x of the copy (s)|time"
  "rm|rm -rf both trees (s)|time"
  "clone|git clone (local, no hardlinks) (s)|time"
  "gstatus|git status (s)|time"
  "glog|git log --stat (s)|time"
)
printf '\n| workload | native | passthrough_ll | cairn | cairn vs native | cairn vs passthrough_ll |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
for row in "${rows[@]}"; do
  IFS='|' read -r key label kind <<< "$row"
  n=${result[native,$key]}; p=${result[pt,$key]}; c=${result[cairn,$key]}
  awk -v label="$label" -v n="$n" -v p="$p" -v c="$c" -v kind="$kind" 'BEGIN {
    if (kind == "rate") { rn = (n > 0) ? c / n : 0; rp = (p > 0) ? c / p : 0 }
    else { rn = (c > 0) ? n / c : 0; rp = (c > 0) ? p / c : 0 }
    printf "| %s | %s | %s | %s | %.2fx | %.2fx |\n", label, n, p, c, rn, rp
  }'
done
printf '\ncairn daemon peak RSS (VmHWM): %d MiB\n' $((peak_rss_kib / 1024))
printf 'machine: %s, %s CPUs, %s GiB RAM, kernel %s\n' \
  "$(lsb_release -ds 2>/dev/null || grep PRETTY /etc/os-release | cut -d= -f2)" \
  "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"

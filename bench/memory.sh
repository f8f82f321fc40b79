#!/usr/bin/env bash
# The daemon's memory under load (issue 15): on a default volume, 8 fio
# writers (random read/write, 4 KiB to 1 MiB blocks, every block verified),
# `cairn scrub` in a loop and a metadata loop (create, stat, rename, unlink
# small files) run at once; the daemon's RSS is sampled every second. Then
# the mount is left idle and its RSS read again: memory the caches no longer
# hold must go back to the system. Prints one table. Needs root (mount) and
# about 2.5 GiB free in BENCH_DIR (default: a new directory under /tmp).
#
#   bash bench/memory.sh              # builds if needed; ~60 s load, 60 s idle
#   BENCH_QUICK=1 bash bench/memory.sh   # 20 s load, 30 s idle
#   CAIRN_BUILD_DIR=build bash bench/memory.sh   # use an existing build
set -euo pipefail
cd "$(dirname "$0")/.."

load_seconds=60
idle_seconds=60
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  load_seconds=20
  idle_seconds=30
fi
jobs=8
file_mb=256
meta_files=2000
meta_file_bytes=2000

build_dir="${CAIRN_BUILD_DIR:-$(bash packaging/build.sh default | tail -n 1)}"
cairn="$build_dir/daemon/cairn"
meta_bench="$build_dir/bench/cairn-meta-bench"
bench_dir="${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cairn-memory.XXXXXX")}"
volume="$bench_dir/volume"
mnt="$bench_dir/mnt"

pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  "$cairn" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u "$mnt" >/dev/null 2>&1
  rm -rf "$bench_dir"
}
trap cleanup EXIT
mkdir -p "$mnt"

"$cairn" format "$volume" >/dev/null
"$cairn" mount "$volume" "$mnt"
pid="$("$cairn" status --json "$mnt" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')"
[[ -n "$pid" ]] || { echo "memory.sh: no daemon pid in cairn status" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$pid/status"; }
mib() { echo $(( $1 / 1024 )); }
# A field of the "cache" object of cairn status --json, in MiB.
cache_mib() {
  "$cairn" status --json "$mnt" |
    sed -n "s/.*\"cache\": {[^}]*\"$1\": *\([0-9]*\).*/\1/p" |
    awk '{ printf "%d", $1 / 1048576 }'
}
# A cache's limit in MiB: its key in cairn.toml, else its quarter of memory_bytes.
config_mib() {
  awk -v k="$1" '$1 == k { set = $3 } $1 == "memory_bytes" { budget = $3 }
    END { printf "%d", (set != "" ? set : budget / 4) / 1048576 }' "$volume/cairn.toml"
}

echo "=== load: $jobs fio jobs x ${file_mb} MiB, scrub and metadata loops, ${load_seconds} s" >&2
start_kib="$(rss_kib)"
stop_file="$bench_dir/stop"
fio --name=randrw --directory="$mnt" --numjobs="$jobs" --size="${file_mb}M" \
  --rw=randrw --bsrange=4k-1m --ioengine=psync --verify=crc32c --verify_backlog=64 \
  --verify_fatal=1 --verify_state_save=0 --time_based --runtime="$load_seconds" --group_reporting \
  --output="$bench_dir/fio.txt" &
fio_pid=$!
pids+=("$fio_pid")
scrubs=0
(
  n=0
  until [[ -e "$stop_file" ]]; do
    "$cairn" scrub "$volume" >"$bench_dir/scrub.txt" 2>&1 ||
      { cat "$bench_dir/scrub.txt" >&2; echo "memory.sh: scrub failed" >&2; exit 1; }
    n=$((n + 1)); echo "$n" > "$bench_dir/scrubs"
    sleep 1
  done
) &
scrub_pid=$!
pids+=("$scrub_pid")
(
  n=0
  until [[ -e "$stop_file" ]]; do
    "$meta_bench" "$mnt/meta" "$meta_files" "$meta_file_bytes" >/dev/null
    n=$((n + 1)); echo "$n" > "$bench_dir/meta"
  done
) &
meta_pid=$!
pids+=("$meta_pid")

max_sampled_kib=0
while kill -0 "$fio_pid" 2>/dev/null; do
  kib="$(rss_kib)"
  (( kib > max_sampled_kib )) && max_sampled_kib=$kib
  sleep 1
done
fio_rc=0
wait "$fio_pid" || fio_rc=$?
touch "$stop_file"
loops_rc=0
wait "$scrub_pid" || loops_rc=1
wait "$meta_pid" || loops_rc=1
pids=()
peak_kib="$(hwm_kib)"
after_load_kib="$(rss_kib)"
if (( fio_rc != 0 || loops_rc != 0 )); then
  cat "$bench_dir/fio.txt" >&2
  echo "memory.sh: the load failed (fio exit $fio_rc, loops $loops_rc)" >&2
  exit 1
fi
fio_rates="$(grep -oE '(READ|WRITE): bw=[^ ]+' "$bench_dir/fio.txt" | sed 's/: bw=/ /' | paste -sd, -)"

echo "=== idle ${idle_seconds} s" >&2
sleep "$idle_seconds"
idle_kib="$(rss_kib)"

printf '\n| daemon memory, default volume | MiB |\n|---|---:|\n'
printf '| RSS at mount | %d |\n' "$(mib "$start_kib")"
printf '| peak RSS under load (VmHWM) | %d |\n' "$(mib "$peak_kib")"
printf '| highest RSS sampled each second | %d |\n' "$(mib "$max_sampled_kib")"
printf '| RSS when the load stopped | %d |\n' "$(mib "$after_load_kib")"
printf '| RSS after %d s idle | %d |\n' "$idle_seconds" "$(mib "$idle_kib")"
printf '| dirty data after idle (limit %d) | %d |\n' "$(config_mib max_dirty_bytes)" "$(cache_mib dirty_bytes)"
printf '| read cache after idle (limit %d) | %d |\n' "$(config_mib read_cache_bytes)" "$(cache_mib read_cache_bytes)"
printf '\nload: %d fio jobs (randrw, bs 4k-1m, verify=crc32c) on %d MiB files for %d s (%s); ' \
  "$jobs" "$file_mb" "$load_seconds" "$fio_rates"
printf '%s scrubs and %s metadata rounds of %d files of %d bytes\n' \
  "$(cat "$bench_dir/scrubs" 2>/dev/null || echo 0)" "$(cat "$bench_dir/meta" 2>/dev/null || echo 0)" \
  "$meta_files" "$meta_file_bytes"
printf 'machine: %s CPUs, %s GiB RAM, kernel %s\n' \
  "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"

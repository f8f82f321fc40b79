#!/bin/bash
# A/B of two cairn builds on the sequential-write figures of bench/run.sh:
#   fio seq write 1 GiB, bs=1M, psync, end_fsync
#   fio write 256 MiB, bs=1M, default ioengine, end_fsync
# Each round mounts a fresh default volume per build, in alternating order
# (A B, then B A, ...), and prints both figures; at the end the median and
# range of each, and of B/A computed within each round.
#
# usage: bench/ab-write.sh BUILD_DIR_A BUILD_DIR_B [ROUNDS]   (default 3)
# Needs fio and /dev/fuse, and about 1.5 GiB free in BENCH_DIR (default
# /var/tmp). Takes about 2 minutes a round on 2 CPUs.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
build_a=$1 build_b=$2 rounds=${3:-3}
bench_dir=${BENCH_DIR:-/var/tmp}
for build in "$build_a" "$build_b"; do
  [[ -x $build/daemon/cairn ]] || { echo "no $build/daemon/cairn; build it first" >&2; exit 2; }
done
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 2; }

work=$(mktemp -d "$bench_dir/cairn-ab.XXXXXX")
mounted=""
cleanup() {
  if [[ -n $mounted ]]; then "$mounted/daemon/cairn" umount "$work/mnt" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Prints "SEQ_MIBS W256_MIBS" for one build on a fresh volume.
measure() {
  local build=$1
  rm -rf "$work/vol" "$work/mnt"
  "$build/daemon/cairn" format "$work/vol" >/dev/null
  mkdir "$work/mnt"
  "$build/daemon/cairn" mount "$work/vol" "$work/mnt"
  mounted=$build
  local seq w256
  seq=$(fio --name=seq --directory="$work/mnt" --filename=seq --rw=write --bs=1M --size=1G \
          --end_fsync=1 --ioengine=psync --minimal | awk -F';' '{printf "%d", $48 / 1024}')
  w256=$(fio --name=w256 --directory="$work/mnt" --filename=w256 --rw=write --bs=1M \
           --size=256M --end_fsync=1 --minimal | awk -F';' '{printf "%d", $48 / 1024}')
  "$build/daemon/cairn" umount "$work/mnt"
  mounted=""
  echo "$seq $w256"
}

results=()
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then order=(a b); else order=(b a); fi
  declare -A got=()
  for side in "${order[@]}"; do
    if [[ $side == a ]]; then got[a]=$(measure "$build_a"); else got[b]=$(measure "$build_b"); fi
  done
  echo "round $round: A ${got[a]}  B ${got[b]}  (seq, w256 MiB/s; load $(cut -d' ' -f1 /proc/loadavg))" >&2
  results+=("${got[a]} ${got[b]}")
done

printf '%s\n' "${results[@]}" | awk '
  function median_range(v, n, fmt,   i, j, t, m) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    return sprintf(fmt " (" fmt "-" fmt ")", m, v[1], v[n])
  }
  { n++; sa[n] = $1; wa[n] = $2; sb[n] = $3; wb[n] = $4; rs[n] = $3 / $1; rw[n] = $4 / $2 }
  END {
    printf "| figure | A (MiB/s) | B (MiB/s) | B / A within rounds |\n|---|---:|---:|---:|\n"
    printf "| seq write 1 GiB | %s | %s | %s |\n", median_range(sa, n, "%.0f"), median_range(sb, n, "%.0f"), median_range(rs, n, "%.2fx")
    printf "| write 256 MiB | %s | %s | %s |\n", median_range(wa, n, "%.0f"), median_range(wb, n, "%.0f"), median_range(rw, n, "%.2fx")
  }'

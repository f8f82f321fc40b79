#!/usr/bin/env bash
# The benchmark suite (issue 16): the same workloads on a native directory,
# on libfuse's passthrough_ll example mounted over a native directory (the
# FUSE ceiling on this kernel; "pt" below) and on a cairn mount (default
# embedded volume, formatted afresh each round), over BENCH_ROUNDS rounds.
# Each round runs every group of workloads on the three systems one after
# the other, in an order that rotates from round to round so that no system
# always goes first. Ratios are computed within each round ("how many times
# better cairn is": for rates cairn/other, for times other/cairn, so above 1
# always means cairn wins). Prints one markdown table: for every figure the
# median (min-max) over the rounds, the median (min-max) of the within-round
# ratios, and whether each goal is met, missed or inside the range; then the
# cairn daemon's peak RSS (VmHWM), the load average at the start and end of
# each round, the machine and the date. The raw value of every figure in
# every round goes to stderr as it is measured. README's table comes from it.
#
# Needs root (drop_caches, mounts) and about 5 GiB free in BENCH_DIR (on the
# same disk as the volume). The binaries are copied into BENCH_DIR first, so
# a rebuild during the run does not change what is measured.
#
#   bash bench/run.sh                  # builds if needed; 3 rounds, 12 min
#                                      # on 2 CPUs (about 4 min a round)
#   BENCH_QUICK=1 bash bench/run.sh    # 256 MiB files, 5 s random runs,
#                                      # 2,000 small files: ~2.5 min a round
#   BENCH_QUICK=1 BENCH_ROUNDS=1 bash bench/run.sh   # smoke test
#
# Environment:
#   BENCH_ROUNDS     rounds, a whole number >= 1 (default 3)
#   BENCH_QUICK=1    smaller sizes and shorter runs (see above)
#   BENCH_DIR        scratch directory, deleted on exit
#                    (default /var/tmp/cairn-bench)
#   BENCH_GIT_REPO   repository the git workloads clone (default this one)
#   CAIRN_BUILD_DIR  use an existing build instead of packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

rounds="${BENCH_ROUNDS:-3}"
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || (( 10#$rounds < 1 )); then
  echo "bench/run.sh: BENCH_ROUNDS must be a whole number of at least 1, not '$rounds'" >&2
  exit 2
fi
rounds=$((10#$rounds))
if (( EUID != 0 )); then
  echo "bench/run.sh: needs root (drop_caches, mounts)" >&2
  exit 2
fi

bench_dir="${BENCH_DIR:-/var/tmp/cairn-bench}"
size_mb=1024
rand_seconds=15
meta_files=5000
small_files=10000
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  size_mb=256
  rand_seconds=5
  small_files=2000
fi
small_dirs=100
git_repo="${BENCH_GIT_REPO:-$repo}"

build_dir="${CAIRN_BUILD_DIR:-$(bash packaging/build.sh default | tail -n 1)}"
for bin in "$build_dir/daemon/cairn" "$build_dir/bench/cairn-meta-bench"; do
  [[ -x "$bin" ]] || { echo "bench/run.sh: $bin is missing; build first" >&2; exit 1; }
done
cairn="$bench_dir/bin/cairn"
meta_bench="$bench_dir/bin/cairn-meta-bench"
passthrough="$bench_dir/bin/passthrough_ll"
targets=(native pt cairn)

# What is mounted at or under $bench_dir, from /proc/mounts.
mounted_here() { awk -v d="$bench_dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts; }
cleanup() {
  set +e
  trap - ERR
  if [[ -x "$cairn" ]]; then "$cairn" umount "$bench_dir/cairn" >/dev/null 2>&1; fi
  fusermount3 -u "$bench_dir/pt" >/dev/null 2>&1
  local m
  while read -r m; do
    [[ -n "$m" ]] || continue
    fusermount3 -u "$m" >/dev/null 2>&1 || umount -l "$m" >/dev/null 2>&1
  done <<< "$(mounted_here)"
  # Never rm -rf through a mount that is still there.
  if [[ -n "$(mounted_here)" ]]; then
    echo "bench/run.sh: still mounted, $bench_dir left in place: $(mounted_here)" >&2
    return
  fi
  rm -rf "$bench_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Which step failed, for the ERR trap.
step="setup"
set -E
trap 'echo "bench/run.sh: failed during: $step" >&2' ERR
# A subshell: cleanup's set +e and trap - ERR must not outlive it here.
(cleanup)
mkdir -p "$bench_dir"/{bin,native,pt-src,pt,cairn}
cp "$build_dir/daemon/cairn" "$cairn"
cp "$build_dir/bench/cairn-meta-bench" "$meta_bench"

# The tree the tree workloads copy: /usr/include without Boost's headers,
# which the build needs. With them it is 26,000 entries, and passthrough_ll,
# which holds a file descriptor for every inode the kernel knows, runs out
# of them on a machine that allows a process 20,000; without, it is the
# tree earlier tables were measured with.
cp -a /usr/include "$bench_dir/tree-src"
rm -rf "$bench_dir/tree-src/boost"
# shellcheck disable=SC2046  # pkg-config's flags are meant to split
gcc -O2 -Wall -o "$passthrough" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
  $(pkg-config --cflags --libs fuse3)
"$passthrough" -o source="$bench_dir/pt-src" "$bench_dir/pt"
# Random contents for the small files (cairn compresses what compresses).
head -c $((small_files * 4096)) /dev/urandom > "$bench_dir/small-src"

daemon_pid() {
  "$cairn" status --json "$bench_dir/cairn" |
    awk 'match($0, /"pid": *[0-9]+/) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); print s }'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
loadavg() { awk '{ print $1, $2, $3 }' /proc/loadavg; }

# The cairn daemon's peak RSS in this round: VmHWM of every daemon seen,
# sampled after each workload and before every unmount.
round_peak_kib=0
note_rss() {
  local pid kib
  pid="$(daemon_pid 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 0
  kib="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -n "$kib" ]] && (( kib > round_peak_kib )) && round_peak_kib=$kib
  return 0
}
# A new volume for each round, so that no round inherits another's garbage.
fresh_cairn() {
  if [[ -n "$(daemon_pid 2>/dev/null || true)" ]]; then
    "$cairn" umount "$bench_dir/cairn"
  fi
  rm -rf "$bench_dir/volume"
  "$cairn" format "$bench_dir/volume" >/dev/null
  "$cairn" mount "$bench_dir/volume" "$bench_dir/cairn"
}
# Cold means cold for cairn too: remounting empties the daemon's block cache.
make_cold() {
  if [[ "$1" == cairn ]]; then
    note_rss
    "$cairn" umount "$bench_dir/cairn"
    drop_caches
    "$cairn" mount "$bench_dir/volume" "$bench_dir/cairn"
  else
    drop_caches
  fi
}
# fio's terse output: field 7 is read KiB/s, 8 read IOPS, 48 write KiB/s, 49 write IOPS.
fio_field() { fio --minimal "${@:2}" | awk -F';' -v f="$1" '{ print $f }'; }

declare -A result  # [round,system,key] -> value
record() {  # record SYSTEM KEY VALUE
  [[ -n "$3" ]] || { echo "bench/run.sh: no value for $2 on $1" >&2; return 1; }
  result[$round,$1,$2]=$3
  printf 'round %d %-6s %-10s %s\n' "$round" "$1" "$2" "$3" >&2
  [[ "$1" == cairn ]] && note_rss
  return 0
}

# The groups of workloads. Each runs on one system at a time; a group's
# workloads depend on each other (files, warm or cold caches).
group_seq() {
  local t="$1" d="$bench_dir/$1" kib iops
  local common=(--directory="$d" --ioengine=psync --group_reporting)
  kib=$(fio_field 48 --name=seqwrite "${common[@]}" --filename=seq --rw=write --bs=1M \
        --size="${size_mb}M" --end_fsync=1)
  record "$t" seqwrite $((kib / 1024))
  make_cold "$t"
  kib=$(fio_field 7 --name=seqread "${common[@]}" --filename=seq --rw=read --bs=1M \
        --size="${size_mb}M")
  record "$t" seqread $((kib / 1024))
  make_cold "$t"
  # (A value goes through a variable: set -e does not see a failure in
  # a command substitution that is an argument.)
  iops=$(fio_field 8 --name=randread "${common[@]}" --filename=seq --rw=randread --bs=4k \
        --size="${size_mb}M" --time_based --runtime="$rand_seconds")
  record "$t" randread "$iops"
  rm -f "$d/seq"
}
group_randwrite() {
  local t="$1" d="$bench_dir/$1" iops
  iops=$(fio_field 49 --name=randwrite --directory="$d" --ioengine=psync --filename=rand \
        --rw=randwrite --bs=4k --size=256M --time_based --runtime="$rand_seconds" --end_fsync=1)
  record "$t" randwrite "$iops"
  rm -f "$d/rand"
}
group_fsync() {
  local t="$1" d="$bench_dir/$1" iops
  iops=$(fio_field 49 --name=fsync4k --directory="$d" --ioengine=psync --filename=log \
        --rw=write --bs=4k --fsync=1 --size=256M --time_based --runtime="$rand_seconds")
  record "$t" fsync4k "$iops"
  rm -f "$d/log"
}
group_write256() {
  local t="$1" d="$bench_dir/$1" kib
  # fio's default ioengine, a new file, one fsync at the end.
  kib=$(fio_field 48 --name=write256 --directory="$d" --filename=w256 --rw=write --bs=1M \
        --size=256M --end_fsync=1)
  record "$t" write256 $((kib / 1024))
  rm -f "$d/w256"
}
group_meta() {
  local t="$1" d="$bench_dir/$1" c s r u
  read -r _ c _ s _ r _ u < <("$meta_bench" "$d/meta" "$meta_files")
  [[ -n "$u" ]] || { echo "bench/run.sh: cairn-meta-bench failed on $t" >&2; return 1; }
  record "$t" create "$c"; record "$t" stat "$s"; record "$t" rename "$r"; record "$t" unlink "$u"
}
group_tree() {
  local t="$1" d="$bench_dir/$1" start
  start=$(now); cp -a "$bench_dir/tree-src" "$d/inc"; record "$t" cp "$(elapsed "$start")"
  make_cold "$t"
  start=$(now); ls -lR "$d/inc" >/dev/null; record "$t" lsR "$(elapsed "$start")"
  start=$(now); du -s "$d/inc" >/dev/null; record "$t" du "$(elapsed "$start")"
  mkdir "$d/copy"
  start=$(now); tar c -C "$d" inc | tar x -C "$d/copy"; record "$t" tar "$(elapsed "$start")"
  start=$(now); rm -rf "$d/inc" "$d/copy"; record "$t" rm "$(elapsed "$start")"
}
group_small() {
  local t="$1" d="$bench_dir/$1/small" start i per=$((small_files / small_dirs))
  cat "$bench_dir/small-src" >/dev/null  # the source is read from memory
  start=$(now)
  mkdir "$d"
  for ((i = 0; i < small_dirs; i++)); do
    mkdir "$d/$i"
    dd if="$bench_dir/small-src" bs=4096 skip=$((i * per)) count="$per" status=none |
      split -b 4096 -d -a 4 - "$d/$i/f"
  done
  record "$t" smallmk "$(elapsed "$start")"
  ls -lR "$d" >/dev/null
  start=$(now); ls -lR "$d" >/dev/null; record "$t" smallls "$(elapsed "$start")"
  start=$(now); rm -rf "$d"; record "$t" smallrm "$(elapsed "$start")"
}
group_git() {
  local t="$1" d="$bench_dir/$1" start
  start=$(now); git clone -q --no-hardlinks "$git_repo" "$d/repo"; record "$t" clone "$(elapsed "$start")"
  start=$(now); git -C "$d/repo" status >/dev/null; record "$t" gstatus "$(elapsed "$start")"
  start=$(now); git -C "$d/repo" log --stat >/dev/null; record "$t" glog "$(elapsed "$start")"
  rm -rf "$d/repo"
}
groups=(seq randwrite fsync write256 meta tree small git)

declare -a order_of load_start load_end peak_kib
date_start="$(date '+%Y-%m-%d %H:%M %Z')"
seconds_start=$SECONDS
for ((round = 1; round <= rounds; round++)); do
  order=()
  for i in 0 1 2; do order+=("${targets[(i + round - 1) % 3]}"); done
  order_of[round]="${order[*]}"
  load_start[round]="$(loadavg)"
  echo "=== round $round/$rounds: ${order[*]} (load ${load_start[round]})" >&2
  step="round $round: new cairn volume"
  fresh_cairn
  round_peak_kib=0
  for g in "${groups[@]}"; do
    for t in "${order[@]}"; do
      step="round $round: $g on $t"
      "group_$g" "$t"
    done
  done
  note_rss
  peak_kib[round]=$round_peak_kib
  load_end[round]="$(loadavg)"
done
step="the table"

# One row per figure: key|label|rate or time|goals. A goal is SYSTEM:RATIO,
# met when cairn's within-round ratio against SYSTEM is at least RATIO.
n_small="$(awk -v n="$small_files" 'BEGIN { s = n ""; while (match(s, /[0-9][0-9][0-9][0-9](,|$)/))
  s = substr(s, 1, RSTART) "," substr(s, RSTART + 1); print s }')"
rows=(
  "seqwrite|fio seq write ${size_mb} MiB, bs=1M, end_fsync (MiB/s)|rate|pt:1,native:0.7"
  "write256|fio write 256 MiB, bs=1M, end_fsync, default ioengine (MiB/s)|rate|pt:1"
  "seqread|fio seq read, cold (MiB/s)|rate|native:0.5"
  "randread|fio 4 KiB random read, cold start (IOPS)|rate|pt:1"
  "randwrite|fio 4 KiB random write, end_fsync (IOPS)|rate|pt:2"
  "fsync4k|fio 4 KiB write, fsync after each (IOPS)|rate|pt:1"
  "create|create ${meta_files} files in one dir (ops/s)|rate|pt:1.5"
  "stat|stat (ops/s)|rate|pt:1.5"
  "rename|rename (ops/s)|rate|pt:1.5"
  "unlink|unlink (ops/s)|rate|pt:1.5"
  "cp|cp -a /usr/include, without boost/ (s)|time|pt:1"
  "lsR|ls -lR, cold (s)|time|"
  "du|du -s (s)|time|"
  "tar|tar c piped to tar x of the copy (s)|time|"
  "rm|rm -rf both trees (s)|time|pt:1"
  "smallmk|${n_small} files of 4 KiB in ${small_dirs} dirs: create (s)|time|"
  "smallls|${n_small} files of 4 KiB: ls -lR, warm (s)|time|pt:1"
  "smallrm|${n_small} files of 4 KiB: rm -rf (s)|time|pt:1"
  "clone|git clone (local, no hardlinks) (s)|time|pt:1"
  "gstatus|git status (s)|time|"
  "glog|git log --stat (s)|time|"
)

# Shared by the table's awk programs: median, min, max of a[1..n] and the
# verdict of a goal against the range of a ratio.
awk_lib='
function sortn(a, n,   i, j, v) {
  for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
}
function median(a, n) { sortn(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function verdict(lo, hi, goal) {
  if (lo >= goal) return "met"
  if (hi < goal) return "missed"
  return "range crosses goal"
}
'

if (( rounds == 1 )); then
  printf '\n1 round: one value per cell (BENCH_ROUNDS=3 or more for medians and ranges).\n'
else
  printf '\n%d rounds: each cell is the median (min-max) over the rounds; the ratios are\ncomputed within each round.\n' "$rounds"
fi
printf '\n| workload | native | passthrough_ll | cairn | cairn vs native | cairn vs passthrough_ll | goal |\n'
printf '|---|---:|---:|---:|---:|---:|---|\n'
for row in "${rows[@]}"; do
  IFS='|' read -r key label kind goals <<< "$row"
  for ((r = 1; r <= rounds; r++)); do
    echo "${result[$r,native,$key]:-}|${result[$r,pt,$key]:-}|${result[$r,cairn,$key]:-}"
  done | awk -F'|' -v label="$label" -v kind="$kind" -v goals="$goals" "$awk_lib"'
    # Rates as integers; times to 10 ms, or to 1 ms for a median under 1 s.
    function fmt(v, m) {
      if (kind == "rate") return sprintf("%.0f", v)
      return sprintf(m < 1 ? "%.3f" : "%.2f", v)
    }
    # The cell of a[1..n]: the median, and the range when there are several.
    function cell(a, n, suffix,   b, i, lo, hi, m) {
      if (n == 0) return "n/a"
      for (i = 1; i <= n; i++) b[i] = a[i]
      m = median(b, n); lo = b[1]; hi = b[n]
      if (suffix == "x") {
        if (n == 1) return sprintf("%.2fx", m)
        return sprintf("%.2fx (%.2f-%.2f)", m, lo, hi)
      }
      if (n == 1) return fmt(m, m)
      return fmt(m, m) " (" fmt(lo, m) "-" fmt(hi, m) ")"
    }
    # cairn against another system in one round, rounded as it is shown.
    function ratio(other, c) {
      if (kind == "rate") return (other > 0) ? sprintf("%.2f", c / other) + 0 : ""
      return (c > 0) ? sprintf("%.2f", other / c) + 0 : ""
    }
    # A missing value (a workload that failed) leaves its round out.
    {
      if ($1 != "") n[++nn] = $1
      if ($2 != "") p[++np] = $2
      if ($3 != "") c[++nc] = $3
      if ($3 == "") next
      if ($1 != "") { v = ratio($1, $3); if (v != "") rn[++nrn] = v }
      if ($2 != "") { v = ratio($2, $3); if (v != "") rp[++nrp] = v }
    }
    END {
      text = ""
      split(goals, list, ",")
      for (i = 1; i in list; i++) {
        split(list[i], g, ":")
        if (g[1] == "pt") { m = nrp; for (j = 1; j <= m; j++) b[j] = rp[j]; who = "passthrough_ll" }
        else { m = nrn; for (j = 1; j <= m; j++) b[j] = rn[j]; who = "native" }
        if (m == 0) v = "no ratio"
        else { sortn(b, m); v = verdict(b[1], b[m], g[2] + 0) }
        text = text (text == "" ? "" : "; ") ">= " g[2] "x " who ": " v
      }
      if (text == "") text = "-"
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, cell(n, nn), cell(p, np), \
        cell(c, nc), cell(rn, nrn, "x"), cell(rp, nrp, "x"), text
    }'
done

for ((r = 1; r <= rounds; r++)); do echo "${peak_kib[r]}"; done |
  awk "$awk_lib"'{ a[NR] = $1 / 1024 }
    END {
      m = median(a, NR); lo = a[1]; hi = a[NR]
      # Below the goal is good here: met when the whole range is under it.
      v = (hi < 300) ? "met" : (lo >= 300) ? "missed" : "range crosses goal"
      if (NR == 1) printf "\ncairn daemon peak RSS (VmHWM): %.0f MiB; goal < 300 MiB: %s\n", m, v
      else printf "\ncairn daemon peak RSS (VmHWM): %.0f MiB (%.0f-%.0f); goal < 300 MiB: %s\n", m, lo, hi, v
    }'
printf '\nload average (1, 5, 15 min) at the start and the end of each round:\n'
for ((r = 1; r <= rounds; r++)); do
  printf -- '- round %d (%s): %s -> %s\n' "$r" "${order_of[r]// /, }" "${load_start[r]}" "${load_end[r]}"
done
printf '\nmachine: %s, %s CPUs, %s GiB RAM, kernel %s\n' \
  "$(lsb_release -ds 2>/dev/null || grep PRETTY /etc/os-release | cut -d= -f2)" \
  "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf 'date: %s to %s (%d min)%s\n' "$date_start" "$(date '+%Y-%m-%d %H:%M %Z')" \
  $(((SECONDS - seconds_start + 30) / 60)) "$([[ "${BENCH_QUICK:-0}" == 1 ]] && echo ', BENCH_QUICK=1')"

#!/usr/bin/env bash
# The S3 frontend's figures (issue 17): the same data put and got with
# Debian's aws cli (/usr/bin/aws, 2.9) against cairn's S3 endpoint (a
# mounted volume with [s3] on 127.0.0.1) and against s3rver on 127.0.0.1,
# beside cp of the same data into and out of the cairn mount; and the
# listing of a 100,000-key bucket (ListObjectsV2, 1,000 keys a page, boto3's
# paginator) beside `ls -l` of the same directory through the mount.
#
#   big      one 1 GiB file of random bytes: aws s3 cp up and down (8 MiB
#            parts, 10 at once, the cli's defaults); cp into the mount then
#            `sync FILE` (an S3 PUT is synced before it is answered), and cp
#            out of the mount; then the same object with curl against
#            cairn (one stream, no body hashing: the server's part, as the
#            cli's Python costs more than cairn on 2 CPUs).
#   small    10,000 files of 4 KiB of random bytes in one directory:
#            aws s3 cp --recursive up and down; cp -r into the mount then
#            `sync` of every file (fsync each, as each PUT is synced), and
#            cp -r out of the mount.
#   list10k  the 10,000 small keys: one paginated ListObjectsV2 (10 pages),
#            beside ls -l of the directory through the mount.
#   list100k 100,000 empty files made through the mount once (not timed),
#            listed over S3 (100 pages of 1,000) and with ls -l; s3rver is
#            left out (filling it takes 100,000 PUTs). The S3 listing is
#            timed twice: with boto3's paginator, and with the same signed
#            requests whose answers are not parsed into objects (the
#            server's part: boto3 spends more on parsing than cairn on
#            answering).
# Every GET, cp out, listing and ls is cold: cairn is remounted (which
# restarts its S3 endpoint) and the page cache dropped first; for s3rver the
# page cache is dropped. Downloads go to a directory on the same disk for
# all three, and are compared with the source (not timed).
#
# The systems take turns in an order that rotates from round to round.
# Prints a markdown table: medians (min-max) over the rounds, and the ratios
# taken within each round, as speed ratios (above 1: cairn's S3 endpoint is
# faster); every raw value goes to stderr as it is measured. Needs root
# (drop_caches, mounts), the s3rver that tests/run-all.sh installs (npm;
# installed here when missing) and about 6 GiB free in BENCH_DIR.
#
#   bash bench/s3.sh                         # 3 rounds: 26 min on 2 CPUs
#                                            # that other builds kept busy
#   ROUNDS=1 BENCH_QUICK=1 bash bench/s3.sh  # smoke test: 64 MiB, 1,000 and
#                                            # 10,000 keys
#
# Environment:
#   ROUNDS           rounds, a whole number >= 1 (default 3)
#   BENCH_GROUPS     which groups to run, of "big small list" (the default)
#   BENCH_QUICK=1    smaller sizes (see above)
#   BENCH_DIR        scratch directory, deleted on exit
#                    (default /var/tmp/cairn-s3-bench)
#   CAIRN_BUILD_DIR  use an existing build instead of packaging/build.sh
#   CAIRN_S3RVER     the s3rver to run (default: the build's, see above)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-3}"
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || (( 10#$rounds < 1 )); then
  echo "bench/s3.sh: ROUNDS must be a whole number of at least 1, not '$rounds'" >&2
  exit 2
fi
rounds=$((10#$rounds))
read -r -a groups <<< "${BENCH_GROUPS:-big small list}"
for g in "${groups[@]}"; do
  [[ "$g" == big || "$g" == small || "$g" == list ]] ||
    { echo "bench/s3.sh: BENCH_GROUPS: no group '$g' (big, small, list)" >&2; exit 2; }
done
runs() { [[ " ${groups[*]} " == *" $1 "* ]]; }
if (( EUID != 0 )); then
  echo "bench/s3.sh: needs root (drop_caches, mounts)" >&2
  exit 2
fi
big_mb=1024
small_files=10000
list_keys=100000
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  big_mb=64
  small_files=1000
  list_keys=10000
fi

bench_dir="${BENCH_DIR:-/var/tmp/cairn-s3-bench}"
build_dir="${CAIRN_BUILD_DIR:-$(bash packaging/build.sh default | tail -n 1)}"
[[ -x "$build_dir/daemon/cairn" ]] || { echo "bench/s3.sh: $build_dir/daemon/cairn is missing; build first" >&2; exit 1; }
s3rver="${CAIRN_S3RVER:-$build_dir/s3rver/node_modules/.bin/s3rver}"
if [[ ! -x "$s3rver" ]]; then
  npm install --prefix "$build_dir/s3rver" --no-audit --no-fund --loglevel=error \
    s3rver@3.7.1 >/dev/null
fi
aws=/usr/bin/aws          # Debian's, not another one earlier on PATH
python=/usr/bin/python3   # with Debian's boto3
[[ -x "$aws" ]] || { echo "bench/s3.sh: needs Debian's awscli (/usr/bin/aws)" >&2; exit 1; }
"$python" -c 'import boto3' 2>/dev/null ||
  { echo "bench/s3.sh: needs Debian's python3-boto3" >&2; exit 1; }

cairn="$bench_dir/bin/cairn"
vol="$bench_dir/volume"
mnt="$bench_dir/mnt"
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cairn_port=$(free_port)
s3rver_port=$(free_port)
cairn_endpoint="http://127.0.0.1:$cairn_port"
s3rver_endpoint="http://127.0.0.1:$s3rver_port"
server_pid=""

mounted_here() { awk -v d="$bench_dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts; }
cleanup() {
  set +e
  trap - ERR
  [[ -x "$cairn" ]] && "$cairn" umount "$mnt" >/dev/null 2>&1
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  server_pid=""
  if [[ -n "$(mounted_here)" ]]; then
    echo "bench/s3.sh: still mounted, $bench_dir left in place: $(mounted_here)" >&2
    return
  fi
  rm -rf "$bench_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
step="setup"
set -E
trap 'echo "bench/s3.sh: failed during: $step" >&2' ERR
(cleanup)
mkdir -p "$bench_dir"/{bin,src/small,s3rver,down} "$mnt"
cp "$build_dir/daemon/cairn" "$cairn"

# The clients: path-style addressing, no credentials but these. The
# environment's AWS_CA_BUNDLE is for TLS endpoints; these are plain http.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL
printf '[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n' > "$bench_dir/aws-config"
export AWS_CONFIG_FILE="$bench_dir/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_DEFAULT_REGION=us-east-1
aws_cairn() {
  AWS_ACCESS_KEY_ID=AKBENCH AWS_SECRET_ACCESS_KEY=bench-secret \
    "$aws" --endpoint-url "$cairn_endpoint" "$@"
}
aws_s3rver() {
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
    "$aws" --endpoint-url "$s3rver_endpoint" "$@"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
loadavg() { awk '{ print $1, $2, $3 }' /proc/loadavg; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench/s3.sh: nothing listens on port $1" >&2
  return 1
}

# The cairn volume: [s3] on loopback, one key acting as root.
"$cairn" format "$vol" >/dev/null
printf 'AKBENCH bench-secret 0 0\n' > "$vol/s3-keys"
chmod 600 "$vol/s3-keys"
printf '[s3]\nlisten = "127.0.0.1:%s"\n' "$cairn_port" >> "$vol/cairn.toml"
mount_cairn() { "$cairn" mount "$vol" "$mnt" >/dev/null; wait_port "$cairn_port"; }
umount_cairn() { "$cairn" umount "$mnt" >/dev/null; }
mount_cairn
mkdir "$mnt/bench" "$mnt/list"

NODE_OPTIONS=--openssl-legacy-provider "$s3rver" -d "$bench_dir/s3rver" -a 127.0.0.1 \
  -p "$s3rver_port" --silent --configure-bucket bench >/dev/null 2>&1 &
server_pid=$!
wait_port "$s3rver_port"

step="making the source data"
if runs big; then head -c $((big_mb << 20)) /dev/urandom > "$bench_dir/src/big"; fi
if runs small; then
  head -c $((small_files * 4096)) /dev/urandom |
    split -b 4096 -d -a 5 - "$bench_dir/src/small/f"
fi

# Lists a bucket, 1,000 keys a page; prints the seconds from the first
# request to the last page. Fails unless it saw WANT keys. HOW: "boto3",
# its paginator (each page parsed into Python objects, as the SDKs and
# aws cli do: on this machine that parsing, not the server, takes most of
# the time), or "raw": the same signed requests on one connection, keys
# counted in the XML and the continuation token cut out of it.
list_seconds() {  # list_seconds HOW ENDPOINT KEY SECRET BUCKET PREFIX WANT
  "$python" - "$@" <<'PY'
import http.client, re, sys, time, urllib.parse
import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
how, endpoint, key, secret, bucket, prefix, want = sys.argv[1:8]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1",
                  config=Config(signature_version="s3v4",
                                s3={"addressing_style": "path"}))
s3.list_buckets()  # the connection and the client's lazy set-up, untimed
n = 0
if how == "boto3":
    start = time.perf_counter()
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
        n += len(page.get("Contents", []))
else:
    signer = S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1")
    host = urllib.parse.urlsplit(endpoint)
    connection = http.client.HTTPConnection(host.hostname, host.port)
    start = time.perf_counter()
    token = None
    while True:
        query = {"list-type": "2", "max-keys": "1000", "prefix": prefix}
        if token is not None:
            query["continuation-token"] = token
        path = "/%s?%s" % (bucket, urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
        request = AWSRequest(method="GET", url=endpoint + path)
        signer.add_auth(request)
        connection.request("GET", path, headers=dict(request.headers))
        response = connection.getresponse()
        body = response.read().decode()
        if response.status != 200:
            sys.exit("HTTP %d: %s" % (response.status, body[:300]))
        n += body.count("<Key>")
        found = re.search("<NextContinuationToken>(.*?)</NextContinuationToken>", body)
        if not found:
            break
        token = found.group(1)
seconds = time.perf_counter() - start
if n != int(want):
    sys.exit("listed %d keys, not %s" % (n, want))
print("%.3f" % seconds)
PY
}

step="filling the list bucket"
if runs list; then
  echo "making $list_keys files through the mount (not timed) ..." >&2
  "$python" - "$mnt/list" "$list_keys" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open("%s/key-%07d" % (d, i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
fi

declare -A result  # [round,system,key] -> value
record() {  # record SYSTEM KEY VALUE
  [[ -n "$3" ]] || { echo "bench/s3.sh: no value for $2 on $1" >&2; return 1; }
  result[$round,$1,$2]=$3
  printf 'round %d %-6s %-9s %s\n' "$round" "$1" "$2" "$3" >&2
}
# Cold: cairn remounted (its caches and its S3 endpoint start empty), the
# page cache dropped.
make_cold() {
  if [[ "$1" != s3rver ]]; then umount_cairn; drop_caches; mount_cairn; else drop_caches; fi
}
mib_per_s() { awk -v n="$big_mb" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
per_s() { awk -v n="$small_files" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
same_tree() { diff -rq "$1" "$2" >/dev/null || { echo "bench/s3.sh: $2 differs from $1" >&2; return 1; }; }

# Systems: s3 (aws cli against cairn's endpoint), s3rver (the same against
# s3rver), mount (cp through the cairn mount). Each group runs on one
# system at a time.
group_big() {
  local t="$1" start sec
  case "$t" in
    s3) start=$(now); aws_cairn s3 cp --quiet "$bench_dir/src/big" s3://bench/s3/big ;;
    s3rver) start=$(now); aws_s3rver s3 cp --quiet "$bench_dir/src/big" s3://bench/s3rver/big ;;
    mount) mkdir -p "$mnt/bench/mount"; start=$(now)
           cp "$bench_dir/src/big" "$mnt/bench/mount/big"; sync "$mnt/bench/mount/big" ;;
  esac
  sec=$(elapsed "$start"); record "$t" bigput "$(mib_per_s "$sec")"
  make_cold "$t"
  case "$t" in
    s3) start=$(now); aws_cairn s3 cp --quiet s3://bench/s3/big "$bench_dir/down/big" ;;
    s3rver) start=$(now); aws_s3rver s3 cp --quiet s3://bench/s3rver/big "$bench_dir/down/big" ;;
    mount) start=$(now); cp "$mnt/bench/mount/big" "$bench_dir/down/big" ;;
  esac
  sec=$(elapsed "$start"); record "$t" bigget "$(mib_per_s "$sec")"
  cmp "$bench_dir/src/big" "$bench_dir/down/big"
  rm -f "$bench_dir/down/big"
  # The server's part: curl, one stream, no hashing of the body on either
  # side (UNSIGNED-PAYLOAD up, a presigned URL down). The mount's cells of
  # these rows repeat its cp figures, so the ratio is within the round.
  case "$t" in
    s3) start=$(now)
        curl -sSf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user AKBENCH:bench-secret \
          -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$bench_dir/src/big" \
          "$cairn_endpoint/bench/s3/curl-big"
        sec=$(elapsed "$start"); record s3 bigputcurl "$(mib_per_s "$sec")"
        make_cold s3
        local url; url=$(aws_cairn s3 presign s3://bench/s3/curl-big)
        start=$(now); curl -sSf -o "$bench_dir/down/big" "$url"
        sec=$(elapsed "$start"); record s3 biggetcurl "$(mib_per_s "$sec")"
        cmp "$bench_dir/src/big" "$bench_dir/down/big"
        rm -f "$bench_dir/down/big" ;;
    mount) record mount bigputcurl "${result[$round,mount,bigput]}"
           record mount biggetcurl "${result[$round,mount,bigget]}" ;;
  esac
}
group_small() {
  local t="$1" start sec
  case "$t" in
    s3) start=$(now); aws_cairn s3 cp --quiet --recursive "$bench_dir/src/small" s3://bench/s3/small ;;
    s3rver) start=$(now); aws_s3rver s3 cp --quiet --recursive "$bench_dir/src/small" s3://bench/s3rver/small ;;
    mount) mkdir -p "$mnt/bench/mount"; start=$(now)
           cp -r "$bench_dir/src/small" "$mnt/bench/mount/small"
           sync "$mnt/bench/mount/small"/* ;;
  esac
  sec=$(elapsed "$start"); record "$t" smallput "$(per_s "$sec")"
  make_cold "$t"
  case "$t" in
    s3) start=$(now); aws_cairn s3 cp --quiet --recursive s3://bench/s3/small "$bench_dir/down/small" ;;
    s3rver) start=$(now); aws_s3rver s3 cp --quiet --recursive s3://bench/s3rver/small "$bench_dir/down/small" ;;
    mount) start=$(now); cp -r "$mnt/bench/mount/small" "$bench_dir/down/small" ;;
  esac
  sec=$(elapsed "$start"); record "$t" smallget "$(per_s "$sec")"
  same_tree "$bench_dir/src/small" "$bench_dir/down/small"
  rm -rf "$bench_dir/down/small"
  make_cold "$t"
  case "$t" in
    s3) sec=$(list_seconds boto3 "$cairn_endpoint" AKBENCH bench-secret bench s3/small/ "$small_files") ;;
    s3rver) sec=$(list_seconds boto3 "$s3rver_endpoint" S3RVER S3RVER bench s3rver/small/ "$small_files") ;;
    mount) start=$(now); ls -l "$mnt/bench/mount/small" >/dev/null; sec=$(elapsed "$start") ;;
  esac
  record "$t" list10k "$sec"
}
group_list() {
  local t="$1" start sec
  make_cold "$t"
  case "$t" in
    s3) sec=$(list_seconds boto3 "$cairn_endpoint" AKBENCH bench-secret list "" "$list_keys") ;;
    s3rver) return 0 ;;
    mount) start=$(now); ls -l "$mnt/list" >/dev/null; sec=$(elapsed "$start") ;;
  esac
  record "$t" list100k "$sec"
  # The server's part: the same pages again, cold, without the SDK's parsing.
  [[ "$t" == s3 ]] || return 0
  make_cold "$t"
  record "$t" list100kraw "$(list_seconds raw "$cairn_endpoint" AKBENCH bench-secret list "" "$list_keys")"
}
# The next round starts from empty buckets (the list bucket stays).
clear_bench() {
  rm -rf "$mnt/bench/s3" "$mnt/bench/mount"
  aws_s3rver s3 rm --quiet --recursive s3://bench/s3rver
  sync
}

targets=(s3 s3rver mount)
declare -a order_of load_start load_end
date_start="$(date '+%Y-%m-%d %H:%M %Z')"
seconds_start=$SECONDS
for ((round = 1; round <= rounds; round++)); do
  order=()
  for i in 0 1 2; do order+=("${targets[(i + round - 1) % 3]}"); done
  order_of[round]="${order[*]}"
  load_start[round]="$(loadavg)"
  echo "=== round $round/$rounds: ${order[*]} (load ${load_start[round]})" >&2
  for g in "${groups[@]}"; do
    for t in "${order[@]}"; do
      step="round $round: $g on $t"
      "group_$g" "$t"
    done
  done
  load_end[round]="$(loadavg)"
  step="round $round: clearing the buckets"
  clear_bench
done
step="the table"

# 10000 -> 10,000
grouped() { awk -v n="$1" 'BEGIN { s = n ""; while (match(s, /[0-9][0-9][0-9][0-9](,|$)/))
  s = substr(s, 1, RSTART) "," substr(s, RSTART + 1); print s }'; }
n_small="$(grouped "$small_files")"
n_list="$(grouped "$list_keys")"
rows=(
  "bigput|${big_mb} MiB object: PUT / cp in + sync (MiB/s)|rate"
  "bigget|${big_mb} MiB object: GET / cp out, cold (MiB/s)|rate"
  "bigputcurl|the same PUT with curl, UNSIGNED-PAYLOAD (MiB/s)|rate"
  "biggetcurl|the same GET with curl, presigned, cold (MiB/s)|rate"
  "smallput|${n_small} objects of 4 KiB: PUT / cp -r in + sync (objects/s)|rate"
  "smallget|${n_small} objects of 4 KiB: GET / cp -r out, cold (objects/s)|rate"
  "list10k|list ${n_small} keys, 1,000 a page / ls -l, cold (s)|time"
  "list100k|list ${n_list} keys, 1,000 a page / ls -l, cold (s)|time"
  "list100kraw|the same, signed requests without the SDK's parsing (s)|time"
)
awk_lib='
function sortn(a, n,   i, j, v) {
  for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
}
function median(a, n) { sortn(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
'
if (( rounds == 1 )); then
  printf '\n1 round: one value per cell (ROUNDS=3 or more for medians and ranges).\n'
else
  printf '\n%d rounds: each cell is the median (min-max) over the rounds; the ratios are\ncomputed within each round, as speed ratios (above 1: cairn S3 is faster).\n' "$rounds"
fi
printf '\n| workload | cairn S3 (aws cli) | s3rver (aws cli) | cairn mount (cp, ls) | cairn S3 vs s3rver | cairn S3 vs mount |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
for row in "${rows[@]}"; do
  IFS='|' read -r key label kind <<< "$row"
  for ((r = 1; r <= rounds; r++)); do
    echo "${result[$r,s3,$key]:-}|${result[$r,s3rver,$key]:-}|${result[$r,mount,$key]:-}"
  done | awk -F'|' -v label="$label" -v kind="$kind" "$awk_lib"'
    function fmt(v, m) {
      if (kind == "rate") return sprintf("%.0f", v)
      return sprintf(m < 1 ? "%.3f" : "%.2f", v)
    }
    function cell(a, n, suffix,   b, i, lo, hi, m) {
      if (n == 0) return "-"
      for (i = 1; i <= n; i++) b[i] = a[i]
      m = median(b, n); lo = b[1]; hi = b[n]
      if (suffix == "x") {
        if (n == 1) return sprintf("%.2fx", m)
        return sprintf("%.2fx (%.2f-%.2f)", m, lo, hi)
      }
      if (n == 1) return fmt(m, m)
      return fmt(m, m) " (" fmt(lo, m) "-" fmt(hi, m) ")"
    }
    # cairn S3 against another system in one round: above 1, cairn S3 is faster.
    function ratio(other, c) {
      if (kind == "rate") return (other > 0) ? c / other : ""
      return (c > 0) ? other / c : ""
    }
    {
      if ($1 != "") c[++nc] = $1
      if ($2 != "") s[++ns] = $2
      if ($3 != "") m[++nm] = $3
      if ($1 == "") next
      if ($2 != "") { v = ratio($2, $1); if (v != "") rs[++nrs] = v }
      if ($3 != "") { v = ratio($3, $1); if (v != "") rm[++nrm] = v }
    }
    END {
      if (nc + ns + nm == 0) exit  # a group not run
      printf "| %s | %s | %s | %s | %s | %s |\n", label, cell(c, nc), cell(s, ns), cell(m, nm), \
        cell(rs, nrs, "x"), cell(rm, nrm, "x")
    }'
done
printf '\nload average (1, 5, 15 min) at the start and the end of each round:\n'
for ((r = 1; r <= rounds; r++)); do
  printf -- '- round %d (%s): %s -> %s\n' "$r" "${order_of[r]// /, }" "${load_start[r]}" "${load_end[r]}"
done
printf '\nmachine: %s, %s CPUs, %s GiB RAM, kernel %s\n' \
  "$(lsb_release -ds 2>/dev/null || grep PRETTY /etc/os-release | cut -d= -f2)" \
  "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf 'date: %s to %s (%d min)%s\n' "$date_start" "$(date '+%Y-%m-%d %H:%M %Z')" \
  $(((SECONDS - seconds_start + 30) / 60)) "$([[ "${BENCH_QUICK:-0}" == 1 ]] && echo ', BENCH_QUICK=1')"

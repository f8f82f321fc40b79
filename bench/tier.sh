#!/usr/bin/env bash
# The remote tier's figures against s3rver on 127.0.0.1: moving 1 GiB of
# 4 MiB files (one blob each) out to the bucket and back with cairn, beside
# `aws s3 cp` (Debian's awscli) and s3fs (Debian's s3fs) moving the same
# files to and from the same server; and the latency of the first byte of a
# tiered file read cold (nothing of it cached in memory or on local disk).
# Needs root (drop_caches, mounts), the s3rver that tests/run-all.sh
# installs (or CAIRN_S3RVER), and about 4 GiB free in BENCH_DIR (default
# /var/tmp/cairn-tier-bench). Installs awscli and s3fs with apt if missing.
#
#   bash bench/tier.sh                    # 1 GiB, 3 rounds (~10 min)
#   BENCH_SIZE_MB=256 BENCH_RUNS=1 bash bench/tier.sh
#
# Every figure is the median of BENCH_RUNS rounds; within a round the tools
# take turns, so drift of the machine's disk speed hits all of them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${BENCH_DIR:-/var/tmp/cairn-tier-bench}"
size_mb="${BENCH_SIZE_MB:-1024}"
runs="${BENCH_RUNS:-3}"
latency_files=20
build_dir="$(bash packaging/build.sh default | tail -n 1)"
cairn="$build_dir/daemon/cairn"
s3rver="${CAIRN_S3RVER:-$build_dir/s3rver/node_modules/.bin/s3rver}"
if [[ ! -x "$s3rver" ]]; then
  npm install --prefix "$build_dir/s3rver" --no-audit --no-fund s3rver@3.7.1 >/dev/null
fi
if ! [[ -x /usr/bin/aws ]] || ! command -v s3fs >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli s3fs >/dev/null
fi
aws=/usr/bin/aws  # Debian's, not another one earlier on PATH
files=$((size_mb / 4))
mnt="$bench_dir/mnt"
s3fs_mnt="$bench_dir/s3fs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1
server_pid=""

cleanup() {
  set +e
  "$cairn" umount "$mnt" >/dev/null 2>&1
  fusermount3 -u "$s3fs_mnt" >/dev/null 2>&1 || umount "$s3fs_mnt" >/dev/null 2>&1
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$bench_dir"
}
trap cleanup EXIT
cleanup
mkdir -p "$bench_dir"/{s3rver,src,back,vol} "$mnt" "$s3fs_mnt"

NODE_OPTIONS=--openssl-legacy-provider "$s3rver" -d "$bench_dir/s3rver" -a 127.0.0.1 \
  -p "$port" --silent --configure-bucket bench >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# first_byte_ms FILE...: milliseconds from open to the first byte, per file.
first_byte_ms() {
  python3 - "$@" <<'PY'
import os, sys, time
for path in sys.argv[1:]:
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 1)
    print("%.1f" % ((time.perf_counter() - start) * 1000))
    os.close(fd)
PY
}

echo "writing $files files of 4 MiB (random bytes) ..." >&2
for i in $(seq -w 1 "$files"); do head -c $((4 << 20)) /dev/urandom > "$bench_dir/src/f$i"; done
(cd "$bench_dir/src" && sha256sum f* > "$bench_dir/sums")

"$cairn" format "$bench_dir/vol" >/dev/null
cat >> "$bench_dir/vol/cairn.toml" <<EOF
[tier]
endpoint = "$endpoint"
bucket = "bench"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
EOF
chmod 600 "$bench_dir/vol/cairn.toml"
mount_cairn() { "$cairn" mount "$bench_dir/vol" "$mnt" >/dev/null; }
umount_cairn() { "$cairn" umount "$mnt" >/dev/null; }
mount_cairn
cp -r "$bench_dir/src" "$mnt/data"
umount_cairn

printf 'S3RVER:S3RVER\n' > "$bench_dir/s3fs.passwd"
chmod 600 "$bench_dir/s3fs.passwd"
mount_s3fs() {
  s3fs bench "$s3fs_mnt" -o url="$endpoint" -o use_path_request_style \
    -o passwd_file="$bench_dir/s3fs.passwd" -o endpoint=us-east-1
}
umount_s3fs() { fusermount3 -u "$s3fs_mnt" 2>/dev/null || umount "$s3fs_mnt"; }

declare -A samples
add() { samples[$1]+="$2 "; }
check_sums() { (cd "$1" && sha256sum --quiet -c "$bench_dir/sums") || { echo "MISMATCH in $1" >&2; exit 1; }; }

for round in $(seq "$runs"); do
  echo "round $round of $runs ..." >&2
  # cairn: out, then a cold read straight from the remote, then in.
  mount_cairn
  drop_caches
  a=$(now); "$cairn" tier out "$mnt/data" >/dev/null; b=$(now)
  add cairn_out "$(rate "$size_mb" "$a" "$b")"
  [[ $(getfattr --absolute-names --only-values -n user.cairn.location "$mnt/data/f$(printf %0${#files}d 1)") == remote ]]
  umount_cairn
  rm -rf "$bench_dir/vol/cache/tier-blocks"
  mount_cairn
  drop_caches
  for ms in $(first_byte_ms $(ls -d "$mnt"/data/f* | head -n "$latency_files")); do add cairn_first_byte "$ms"; done
  umount_cairn
  rm -rf "$bench_dir/vol/cache/tier-blocks"
  mount_cairn
  drop_caches
  a=$(now); cat "$mnt"/data/f* > /dev/null; b=$(now)
  add cairn_cold_read "$(rate "$size_mb" "$a" "$b")"
  check_sums "$mnt/data"
  # Read again after a remount: from the local block cache, not the remote.
  umount_cairn
  mount_cairn
  drop_caches
  for ms in $(first_byte_ms $(ls -d "$mnt"/data/f* | head -n "$latency_files")); do add cairn_cached_first_byte "$ms"; done
  umount_cairn
  rm -rf "$bench_dir/vol/cache/tier-blocks"
  mount_cairn
  a=$(now); "$cairn" tier in "$mnt/data" >/dev/null; b=$(now)
  add cairn_in "$(rate "$size_mb" "$a" "$b")"
  # The next round moves out again: unpin (tier in pins), and the remote
  # copies are reused, so delete and rewrite the files to upload anew.
  rm -rf "$mnt/data"
  cp -r "$bench_dir/src" "$mnt/data"
  umount_cairn

  # aws s3 cp, both ways.
  drop_caches
  a=$(now); "$aws" --endpoint-url "$endpoint" s3 cp --recursive --quiet "$bench_dir/src" s3://bench/aws/; b=$(now)
  add aws_out "$(rate "$size_mb" "$a" "$b")"
  rm -rf "$bench_dir/back"
  a=$(now); "$aws" --endpoint-url "$endpoint" s3 cp --recursive --quiet s3://bench/aws/ "$bench_dir/back"; sync; b=$(now)
  add aws_in "$(rate "$size_mb" "$a" "$b")"
  check_sums "$bench_dir/back"
  "$aws" --endpoint-url "$endpoint" s3 rm --recursive --quiet s3://bench/aws/

  # s3fs: cp into the mount (it uploads each file on close), then read back
  # through a fresh mount.
  mount_s3fs
  drop_caches
  a=$(now); cp -r "$bench_dir/src" "$s3fs_mnt/s3fs"; umount_s3fs; b=$(now)
  add s3fs_out "$(rate "$size_mb" "$a" "$b")"
  mount_s3fs
  drop_caches
  for ms in $(first_byte_ms $(ls -d "$s3fs_mnt"/s3fs/f* | head -n "$latency_files")); do add s3fs_first_byte "$ms"; done
  umount_s3fs
  mount_s3fs
  drop_caches
  a=$(now); cat "$s3fs_mnt"/s3fs/f* > /dev/null; b=$(now)
  add s3fs_in "$(rate "$size_mb" "$a" "$b")"
  check_sums "$s3fs_mnt/s3fs"
  rm -rf "$s3fs_mnt/s3fs"
  umount_s3fs
done

m() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
echo
echo "## $size_mb MiB in $files files of 4 MiB, s3rver on 127.0.0.1, medians of $runs rounds"
echo
echo "| | to the bucket (MiB/s) | from the bucket (MiB/s) | first byte, cold (ms) |"
echo "|---|---|---|---|"
echo "| cairn tier out / tier in | $(m cairn_out) | $(m cairn_in) | |"
echo "| cairn read of tiered files (cat) | | $(m cairn_cold_read) | $(m cairn_first_byte) |"
echo "| cairn read, blocks cached on local disk | | | $(m cairn_cached_first_byte) |"
echo "| aws s3 cp --recursive | $(m aws_out) | $(m aws_in) | |"
echo "| s3fs (cp in, cat out) | $(m s3fs_out) | $(m s3fs_in) | $(m s3fs_first_byte) |"

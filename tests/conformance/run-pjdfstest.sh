#!/usr/bin/env bash
# Runs pjdfstest as root inside a fresh cairn mount and prints prove's summary.
#
#   tests/conformance/run-pjdfstest.sh PJDFSTEST_DIR [CAIRN_BINARY]
#
# PJDFSTEST_DIR is a built checkout of github.com/pjd/pjdfstest (autoreconf
# -ifs && ./configure && make pjdfstest); it is not part of this repository.
# The same script with CAIRN_NATIVE_DIR=/some/ext4/dir runs the suite on a
# native filesystem for comparison. With CAIRN_SHARED=1 it runs on a shared
# volume (docs/MULTIHOST.md): a private PostgreSQL and an s3rver on
# 127.0.0.1 (tests/shared-volume.sh; s3rver from tests/run-all.sh or
# CAIRN_S3RVER), both stopped by their PIDs however the run ends. The full
# prove log is kept beside the work directory (its path is printed last).
set -euo pipefail
pjd="${1:?usage: $0 PJDFSTEST_DIR [CAIRN_BINARY]}"
cairn="${2:-cairn}"
# Absolute: the cleanup unmounts from /, where a relative path means nothing.
case "$cairn" in */*) cairn="$(cd "$(dirname "$cairn")" && pwd)/$(basename "$cairn")" ;; esac
[ -x "$pjd/pjdfstest" ] || { echo "$pjd/pjdfstest not built" >&2; exit 2; }

work="$(mktemp -d /tmp/cairn-pjd-XXXXXX)"
shared="${CAIRN_SHARED:-0}"
if [ "$shared" = 1 ]; then
  # shellcheck source=tests/shared-volume.sh
  source "$(dirname "$0")/../shared-volume.sh"
fi
cleanup() {
  cd /
  if grep -q " $work/mnt " /proc/self/mounts; then
    "$cairn" umount "$work/mnt" || fusermount3 -u -z "$work/mnt" || true
  fi
  # After the unmount: the daemon flushes to both servers as it stops.
  if [ "$shared" = 1 ]; then shared_stop; fi
  if ! grep -q " $work/mnt " /proc/self/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${CAIRN_NATIVE_DIR:-}" ]; then
  target="$CAIRN_NATIVE_DIR/pjd-run"
  mkdir -p "$target"
else
  mkdir -p "$work/mnt"
  if [ "$shared" = 1 ]; then
    shared_start "$work"
    shared_format "$cairn" "$work/vol" pjdfstest
  else
    "$cairn" format "$work/vol" >/dev/null
  fi
  "$cairn" mount "$work/vol" "$work/mnt"
  target="$work/mnt"
fi
cd "$target"
prove -r "$pjd/tests" 2>&1 | tee "$work.log" | grep -v '\.\. ok$' || true
echo "full log: $work.log"

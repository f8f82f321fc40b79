#!/usr/bin/env bash
# Runs pjdfstest as root inside a fresh cairn mount and prints prove's summary.
#
#   tests/conformance/run-pjdfstest.sh PJDFSTEST_DIR [CAIRN_BINARY]
#
# PJDFSTEST_DIR is a built checkout of github.com/pjd/pjdfstest (autoreconf
# -ifs && ./configure && make pjdfstest); it is not part of this repository.
# The same script with CAIRN_NATIVE_DIR=/some/ext4/dir runs the suite on a
# native filesystem for comparison.
set -euo pipefail
pjd="${1:?usage: $0 PJDFSTEST_DIR [CAIRN_BINARY]}"
cairn="${2:-cairn}"
[ -x "$pjd/pjdfstest" ] || { echo "$pjd/pjdfstest not built" >&2; exit 2; }

work="$(mktemp -d /tmp/cairn-pjd-XXXXXX)"
cleanup() {
  cd /
  if grep -q " $work/mnt " /proc/self/mounts; then
    "$cairn" umount "$work/mnt" || fusermount3 -u -z "$work/mnt" || true
  fi
  if ! grep -q " $work/mnt " /proc/self/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT

if [ -n "${CAIRN_NATIVE_DIR:-}" ]; then
  target="$CAIRN_NATIVE_DIR/pjd-run"
  mkdir -p "$target"
else
  mkdir -p "$work/mnt"
  "$cairn" format "$work/vol" >/dev/null
  "$cairn" mount "$work/vol" "$work/mnt"
  target="$work/mnt"
fi
cd "$target"
prove -r "$pjd/tests" 2>&1 | tee "$work.log" | grep -v '\.\. ok$' || true

#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a full test run: installs
# dependencies, builds cairn twice (optimised, and with ASan+UBSan) and runs
# every unit and integration test in both builds. Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

status=0
for preset in default asan; do
  echo "=== build: $preset"
  build_dir="$(bash packaging/build.sh "$preset" | tail -n 1)"
  # The S3 server the remote-tier tests talk to (127.0.0.1 only).
  if [[ ! -x "$build_dir/s3rver/node_modules/.bin/s3rver" ]]; then
    echo "=== installing s3rver (npm) into $build_dir/s3rver"
    npm install --prefix "$build_dir/s3rver" --no-audit --no-fund --loglevel=error \
      s3rver@3.7.1 >/dev/null
  fi
  echo "=== tests: $preset"
  # Sanitizer findings fail the run; leaks in libfuse's detached threads at
  # exit are not ours, so leak checking stays on only for the unit tests.
  if ! ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
       ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 900; then
    status=1
  fi
done
exit "$status"

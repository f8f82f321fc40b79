#!/usr/bin/env bash
# Configures and builds cairn. Usage: packaging/build.sh [PRESET]
# PRESET is one of CMakePresets.json's: default (optimised), asan (ASan+UBSan),
# tsan. Prints the build directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
cmake --preset "$preset" >/dev/null
jobs="$(nproc)"
cmake --build --preset "$preset" -j "$jobs"
case "$preset" in
  default) echo "$PWD/build" ;;
  *) echo "$PWD/build-$preset" ;;
esac

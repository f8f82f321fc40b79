#!/usr/bin/env bash
# Builds the Debian package from an optimised build: packaging/deb.sh [OUT_DIR]
# (default: the build directory). Prints the .deb's path on its last line.
# Install it with: dpkg -i cairn_VERSION_amd64.deb (apt-get -f install pulls
# in any missing runtime library).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="$(bash packaging/build.sh default | tail -n 1)"
out_dir="${1:-$build_dir}"
(cd "$build_dir" && cpack -G DEB -B "$out_dir" >/dev/null)
ls -t "$out_dir"/cairn_*.deb | head -n 1

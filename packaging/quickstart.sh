#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a mounted, usable volume:
# installs dependencies, builds and installs cairn, formats a volume with the
# embedded defaults (data inside the volume directory) and mounts it.
#
#   VOLUME (default /var/lib/cairn/quickstart)  where the volume lives
#   MOUNTPOINT (default /mnt/cairn)             where it is mounted
set -euo pipefail
cd "$(dirname "$0")/.."
volume="${VOLUME:-/var/lib/cairn/quickstart}"
mountpoint="${MOUNTPOINT:-/mnt/cairn}"

bash packaging/install-deps.sh
build_dir="$(bash packaging/build.sh default | tail -n 1)"
# --prefix /usr: mount(8) finds /usr/sbin/mount.cairn (mount -t cairn, fstab),
# and systemd finds the units in /usr/lib/systemd/system.
cmake --install "$build_dir" --prefix /usr >/dev/null
echo "installed $(command -v cairn)"

if grep -q " $mountpoint fuse.cairn " /proc/self/mounts; then
  echo "$mountpoint is already a cairn mount; unmounting it first"
  cairn umount "$mountpoint"
fi
if [ ! -f "$volume/cairn.toml" ]; then
  cairn format "$volume"
fi
mkdir -p "$mountpoint"
cairn mount "$volume" "$mountpoint"

echo "--- the volume in use"
echo "hello from cairn" > "$mountpoint/hello.txt"
mkdir -p "$mountpoint/docs"
cp -a README.md "$mountpoint/docs/"
ls -la "$mountpoint"
cat "$mountpoint/hello.txt"
df -h "$mountpoint"
cairn status "$mountpoint"
echo "--- $mountpoint is mounted and ready; unmount with: cairn umount $mountpoint"

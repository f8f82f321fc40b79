#!/usr/bin/env bash
# The Debian package, end to end: build it from this build directory,
# check it with lintian (no error may be reported; skipped with a note when
# lintian is not installed), install it with dpkg, mount with mount -t cairn
# (its mount.cairn), use the volume, unmount, and remove the package:
# nothing of it may be left.
#   tests/deb_test.sh BUILD_DIR
# Exits 77 (skipped) where it would clobber a cairn that is not its own: a
# cairn package already installed, or an unpackaged /usr/bin/cairn.
set -euo pipefail
build_dir="$1"
if dpkg-query -W -f='${Status}' cairn 2>/dev/null | grep -q "install ok"; then
  echo "SKIP: a cairn package is installed; remove it to run this test"
  exit 77
fi
for path in /usr/bin/cairn /usr/sbin/mount.cairn /usr/sbin/umount.fuse.cairn; do
  if [[ -e "$path" || -L "$path" ]]; then
    echo "SKIP: $path exists and belongs to no package"
    exit 77
  fi
done
work="$(mktemp -d /tmp/cairn-deb-test-XXXXXX)"
installed=0
cleanup() {
  set +e
  if mountpoint -q "$work/mnt"; then umount "$work/mnt"; sleep 1; fi
  [[ "$installed" == 1 ]] && dpkg -r cairn >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

(cd "$build_dir" && cpack -G DEB -B "$work/pkg" >/dev/null)
deb="$(ls "$work"/pkg/cairn_*.deb)"
dpkg-deb -f "$deb" Depends | grep -q fuse3 || fail "the package does not depend on fuse3"
if command -v lintian >/dev/null; then
  # lintian does not want to run as root; --allow-root says it may.
  if ! report="$(lintian --allow-root --fail-on error "$deb" 2>&1)"; then
    echo "$report"
    tags="$(grep -E '^E: ' <<<"$report" | awk '{ print $3 }' | sort -u | paste -sd ' ')"
    fail "lintian reports errors: ${tags:-(none by tag; see above)}"
  fi
  [[ -z "$report" ]] || printf 'lintian, warnings and notes (not errors):\n%s\n' "$report"
else
  echo "SKIP-note: lintian is not installed, the package is not checked" \
       "(packaging/install-deps.sh installs it)"
fi
dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"
installed=1
dpkg-query -W -f='${Status}' cairn | grep -q "install ok installed" || fail "not installed"
[[ -x /usr/bin/cairn ]] || fail "no /usr/bin/cairn"
[[ "$(readlink -f /usr/sbin/mount.cairn)" == /usr/bin/cairn ]] || fail "no /usr/sbin/mount.cairn"
[[ "$(readlink -f /usr/sbin/umount.fuse.cairn)" == /usr/bin/cairn ]] ||
  fail "no /usr/sbin/umount.fuse.cairn"
[[ -f /usr/lib/systemd/system/cairn@.service ]] || fail "no cairn@.service"
[[ -f /usr/share/doc/cairn/README.md ]] || fail "no docs"
[[ -f /usr/share/doc/cairn/copyright ]] || fail "no copyright file"
[[ -f /usr/share/doc/cairn/changelog.Debian.gz ]] || fail "no changelog.Debian.gz"
for page in man1/cairn.1 man8/mount.cairn.8 man8/umount.fuse.cairn.8 man5/cairn.toml.5; do
  gzip -t "/usr/share/man/$page.gz" 2>/dev/null || fail "no /usr/share/man/$page.gz"
done
/usr/bin/cairn --version | grep -q '^cairn ' || fail "cairn --version"

/usr/bin/cairn format "$work/vol" >/dev/null
mkdir "$work/mnt"
mount -t cairn "$work/vol" "$work/mnt" -o noatime || fail "mount -t cairn"
head -c 2000000 /dev/urandom > "$work/data"
cp "$work/data" "$work/mnt/data"
mkdir -p "$work/mnt/dir/sub" && echo hello > "$work/mnt/dir/sub/f"
umount "$work/mnt" || fail "umount"
# Plain umount runs the package's umount.fuse.cairn: the daemon is gone
# when it returns.
/usr/bin/cairn status --json "$work/vol" | grep -q '"mounted": false' ||
  fail "umount returned while the daemon still held the volume"
mount -t cairn "$work/vol" "$work/mnt" || fail "mount again"
cmp "$work/data" "$work/mnt/data" || fail "data differs after a remount"
[[ "$(cat "$work/mnt/dir/sub/f")" == hello ]] || fail "small file differs"
umount "$work/mnt"
for _ in $(seq 100); do
  /usr/bin/cairn status --json "$work/vol" | grep -q '"mounted": false' && break
  sleep 0.2
done

dpkg -r cairn >/dev/null || fail "dpkg -r cairn"
installed=0
for path in /usr/bin/cairn /usr/sbin/mount.cairn /usr/sbin/umount.fuse.cairn \
            /usr/lib/systemd/system/cairn@.service /usr/share/doc/cairn \
            /usr/share/man/man1/cairn.1.gz /usr/share/man/man8/mount.cairn.8.gz \
            /usr/share/man/man8/umount.fuse.cairn.8.gz /usr/share/man/man5/cairn.toml.5.gz; do
  [[ -e "$path" || -L "$path" ]] && fail "$path left after dpkg -r"
done
echo "PASS: built, installed, mounted with mount -t cairn, used, removed"

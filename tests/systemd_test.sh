#!/usr/bin/env bash
# cairn under a real systemd: a container booted with systemd-nspawn, this
# machine's /usr below a writable layer holding the cairn under test (as
# the package installs it), and three volumes mounted the three ways the
# README gives: a mount unit, an /etc/fstab line and cairn@.service. It
# restarts the mount unit and the service in a loop, then reboots the
# container and boots it again:
#   - every restart succeeds and keeps the data (a stop returns only once
#     the daemon has stored everything, so the next start finds the volume
#     free), and systemd never logs that a daemon outlived its unit;
#   - every volume was stopped cleanly by the shutdown (last-stop "ok"),
#     mounts again at boot and holds what was written.
#   tests/systemd_test.sh BUILD_DIR
# Exits 77 (skipped) where no container can boot: no systemd-nspawn, or a
# kernel or sandbox that refuses it.
set -euo pipefail
build_dir="$(cd "$1" && pwd)"
cairn="$build_dir/daemon/cairn"
units="$(cd "$(dirname "$0")/../packaging/systemd" && pwd)"
if ! command -v systemd-nspawn >/dev/null || [[ ! -x /usr/lib/systemd/systemd ]]; then
  echo "SKIP: systemd-nspawn or systemd is not installed (apt-get install systemd-container)"
  exit 77
fi
[[ -x "$cairn" ]] || { echo "FAIL: no cairn at $cairn"; exit 1; }

work="$(mktemp -d /tmp/cairn-systemd-test-XXXXXX)"
root="$work/root"
nspawn_pid=""
fail() { echo "FAIL: $*"; exit 1; }
note() { echo "$(date +%T) $*"; }
# The container's init, once it runs.
leader() { pgrep -P "$nspawn_pid" -x systemd | head -1; }
inside() { nsenter -t "$(leader)" -a -- "$@"; }

stop_container() {
  [[ -n "$nspawn_pid" ]] || return 0
  if kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGTERM to nspawn asks the container's systemd to power off.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  wait "$nspawn_pid" 2>/dev/null || true
  nspawn_pid=""
}
cleanup() {
  set +e
  stop_container
  # A daemon of ours left running after all would hold a volume under $work.
  pkill -KILL -f "$work/" 2>/dev/null
  for m in $(findmnt -rn -o TARGET | grep "^$work/" | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# The root: a copy of /etc (units and fstab are added to it), this
# machine's /usr under an overlay whose upper layer is the cairn install.
mkdir -p "$root"/{usr,var/log/journal,tmp,run,root,proc,sys,dev,home,srv/cairn,mnt}
cp -a /etc "$root/etc"
rm -f "$root/etc/os-release" "$root/etc/machine-id" "$root/etc/fstab"
cp /usr/lib/os-release "$root/etc/os-release"   # nspawn checks it before /usr is there
: > "$root/etc/machine-id"
for link in bin sbin lib lib64; do ln -s "usr/$link" "$root/$link"; done
# Services of this machine's own (databases) have no business booting here.
find "$root/etc/systemd/system" -path '*.wants/*' \
  ! -name 'systemd-*' ! -name 'getty*' ! -name 'dbus*' -delete 2>/dev/null || true
upper="$work/usr-upper"
mkdir -p "$upper/bin" "$upper/sbin" "$upper/lib/systemd/system" "$work/usr-work"
cp "$cairn" "$upper/bin/cairn"
ln -s ../bin/cairn "$upper/sbin/mount.cairn"
ln -s ../bin/cairn "$upper/sbin/umount.fuse.cairn"
cp "$units/cairn@.service" "$upper/lib/systemd/system/"

# Three volumes, in a directory bound at /srv/cairn so they outlive each boot.
data="$work/data"
mkdir -p "$data"
chmod 755 "$work" "$data"
for v in unit fstab svc; do
  "$cairn" format "$data/$v" >/dev/null || fail "format $v"
done
sed -e 's|^What=.*|What=/srv/cairn/unit|' -e 's|^Where=.*|Where=/mnt/unit|' \
  -e 's|^RequiresMountsFor=.*|RequiresMountsFor=/srv/cairn|' \
  -e 's|^Description=.*|Description=cairn volume at /mnt/unit|' \
  "$units/mnt-cairn.mount" > "$root/etc/systemd/system/mnt-unit.mount"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/cairn" \
  "$root/mnt/unit" "$root/mnt/fstab" "$root/mnt/svc"
ln -s ../mnt-unit.mount "$root/etc/systemd/system/multi-user.target.wants/mnt-unit.mount"
echo "/srv/cairn/fstab  /mnt/fstab  cairn  defaults,noatime,nofail  0  0" > "$root/etc/fstab"
echo "CAIRN_VOLUME=/srv/cairn/svc" > "$root/etc/cairn/mnt-svc.conf"
ln -s /usr/lib/systemd/system/cairn@.service \
  "$root/etc/systemd/system/multi-user.target.wants/cairn@mnt-svc.service"

boot() {
  systemd-nspawn -q -D "$root" --boot --register=no --keep-unit --console=passive --private-network \
    --bind=/dev/fuse --bind="$data:/srv/cairn" \
    --overlay="/usr:$upper:/usr" >"$work/console-$1.log" 2>&1 &
  nspawn_pid=$!
  for _ in $(seq 300); do
    [[ -n "$(leader)" ]] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$(leader)" ]]; then
    if [[ "$1" == 1 ]]; then
      echo "SKIP: the container does not boot here:"; cat "$work/console-$1.log"; exit 77
    fi
    fail "boot $1: the container did not start: $(cat "$work/console-$1.log")"
  fi
  local state=""
  # Until systemd has its socket up, systemctl cannot reach it.
  for _ in $(seq 1200); do
    state="$(inside timeout 120 systemctl is-system-running --wait 2>&1 || true)"
    [[ "$state" == *"Failed to connect"* ]] || break
    sleep 0.1
  done
  [[ "$state" == running || "$state" == degraded ]] ||
    fail "boot $1: systemd is '$state': $(inside systemctl --failed --no-legend 2>&1)"
  for m in unit fstab svc; do
    inside findmnt -n -t fuse.cairn "/mnt/$m" >/dev/null ||
      fail "boot $1: /mnt/$m is not mounted: $(inside systemctl status --no-pager mnt-$m.mount cairn@mnt-svc.service 2>&1 | tail -20)"
  done
}

note "boot 1"; boot 1; note "booted"
for m in unit fstab svc; do
  inside bash -c "head -c 20000000 /dev/urandom > /mnt/$m/boot1 && sha256sum /mnt/$m/boot1" \
    > "$work/sum-$m" || fail "writing to /mnt/$m"
done

# Restarts in a loop: each stop must have let go of the volume before the
# start, which mounts again at once.
for i in $(seq 6); do
  inside bash -c "head -c 30000000 /dev/urandom > /mnt/unit/r$i" || fail "write before restart $i"
  # (reset-failed clears systemd's limit of 5 starts in 10 s, not a failure)
  inside systemctl reset-failed mnt-unit.mount
  inside systemctl restart mnt-unit.mount ||
    fail "restart $i of mnt-unit.mount: $(inside journalctl -b -n 30 --no-pager 2>&1)"
  inside findmnt -n -t fuse.cairn /mnt/unit >/dev/null || fail "restart $i: not mounted"
  [[ "$(inside stat -c %s /mnt/unit/r$i)" == 30000000 ]] || fail "restart $i lost data"
done
for i in $(seq 3); do
  inside bash -c "head -c 30000000 /dev/urandom > /mnt/svc/r$i" || fail "write before restart $i"
  inside systemctl reset-failed cairn@mnt-svc.service
  inside systemctl restart cairn@mnt-svc.service ||
    fail "restart $i of cairn@mnt-svc.service: $(inside journalctl -b -n 30 --no-pager 2>&1)"
  inside findmnt -n -t fuse.cairn /mnt/svc >/dev/null || fail "service restart $i: not mounted"
done
if inside journalctl -b --no-pager | grep -E "remains running after unit stopped|already mounted"; then
  fail "a daemon outlived its unit's stop"
fi

# A reboot: the shutdown must stop every daemon cleanly; the next boot
# mounts all three again with everything written.
inside bash -c "head -c 30000000 /dev/urandom > /mnt/fstab/last" || fail "write before reboot"
note "rebooting"; inside systemctl reboot || true
for _ in $(seq 1200); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not shut down within 2 minutes"
wait "$nspawn_pid" 2>/dev/null || true
nspawn_pid=""
for v in unit fstab svc; do
  stop="$(cat "$data/$v/last-stop" 2>/dev/null || echo missing)"
  [[ "$stop" == ok* ]] || fail "the shutdown did not stop the daemon of $v cleanly: last-stop: $stop"
done

note "boot 2"; boot 2; note "booted again"
for m in unit fstab svc; do
  inside sha256sum "/mnt/$m/boot1" | cmp -s - "$work/sum-$m" || fail "/mnt/$m/boot1 changed"
done
[[ "$(inside stat -c %s /mnt/fstab/last)" == 30000000 ]] || fail "the write before the reboot was lost"
stop_container
echo "PASS"

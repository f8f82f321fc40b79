#!/usr/bin/env bash
# Installs every Debian package cairn needs to build, run and test.
# Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (it calls apt-get); try: sudo $0" >&2
  exit 1
fi

build_packages=(
  build-essential g++ cmake ninja-build pkg-config git
  libfuse3-dev libmount-dev librocksdb-dev liblz4-dev libabsl-dev
  libcurl4-openssl-dev libssl-dev libisal-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev
  libboost1.81-dev libpq-dev
)
# libpq5: the client of the PostgreSQL namespace of shared volumes (issue 18).
runtime_packages=(fuse3 librocksdb7.8 liblz4-1 libisal2 libpq5)
# fio, strace and python3 also serve bench/.
# nodejs and npm run s3rver, the S3 server of the remote-tier tests.
# mount (util-linux) and systemd (systemd-analyze, the fstab generator) serve
# the tests of mount -t cairn, fstab and the units; systemd-container boots
# a container to test them under a running systemd; passwd (useradd) makes
# the unprivileged user of the security tests; lintian checks the .deb
# (tests/deb_test.sh), and man-db the man pages (tests/check-man-pages.sh).
# awscli, boto3, s3cmd, rclone and s3fs (which mounts a bucket; its fuse
# dependency is met by fuse3) are the clients of the S3 frontend's tests.
# postgresql-15 is the server tests/pg-server.sh starts for the tests of the
# PostgreSQL namespace (only its binaries; no cluster of the package is used).
test_packages=(rsync attr acl fio e2fsprogs util-linux mount systemd systemd-container procps
               psmisc perl python3 strace passwd lintian man-db
               awscli python3-boto3 s3cmd rclone s3fs curl postgresql-15)
command -v npm >/dev/null || test_packages+=(nodejs npm)

missing=()
for pkg in "${build_packages[@]}" "${runtime_packages[@]}" "${test_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps.sh: all packages present"
fi

# FUSE needs the device and, for allow_other, the user_allow_other switch.
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
fi
if [ -f /etc/fuse.conf ] && ! grep -q '^user_allow_other' /etc/fuse.conf; then
  echo user_allow_other >> /etc/fuse.conf
fi

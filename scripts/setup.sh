#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a fresh Debian 12
# machine (as root): the Debian tools syn3-backup drives, and the npm packages.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# grub-pc-bin, grub2-common and udev: the restore reinstalls GRUB (tested on a loop disk).
# samba, smbclient, vsftpd, openssl, radosgw, ceph-mon, ceph-osd: the SMB, FTP/FTPS and S3 targets'
# tests run real servers on 127.0.0.1 (Ceph: one monitor, one OSD on a file, the RADOS Gateway).
# e2fsprogs: chattr, with which a test makes an old backup undeletable; openssl: the file target hashes the dump as it is written.
# busybox-static: the initramfs premount script is also tested under busybox sh, the shell it meets at boot.
APT_PACKAGES=(xfsprogs xfsdump rsync acl attr e2fsprogs util-linux fdisk zstd grub-pc-bin grub2-common udev busybox-static samba smbclient vsftpd openssl radosgw ceph-mon ceph-osd)
# The test lane (test/lane, part of npm test) and the drill (npm run drill): QEMU for the virtual
# machines, mmdebstrap for their Debian, cpio (and busybox-static, above) for their initramfs, lvm2 for
# the drill's disk builder, binutils to strip the guests' node; e2fsprogs (above) makes the lane's disks.
# --drill is still accepted: the drill needs nothing more than the tests now.
APT_PACKAGES+=(qemu-system-x86 mmdebstrap cpio lvm2 binutils)
# The shipped database modules (examples/modules) are tested against real servers started in a temp
# dir; shellcheck checks them as scripts.
APT_PACKAGES+=(postgresql mariadb-server mariadb-client shellcheck)

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root: the tests create loop devices and mount XFS file systems" >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

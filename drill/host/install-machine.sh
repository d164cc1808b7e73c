#!/bin/bash
# install-machine.sh: installs a small Debian machine onto a new disk image, as
# an administrator would with a Debian installer: an MBR disk with /boot (ext4),
# / (XFS) and an LVM physical volume for /home; the Debian template unpacked;
# fstab by UUID; a serial console; GRUB in the MBR; syn3-backup installed with
# "syn3-backup install", which also builds the initramfs with its hook.
# The /home logical volume itself is made by the builder VM (builder-initramfs.sh),
# because this host's kernel has no device-mapper.
#
# Everything comes from the environment (the drill harness sets it):
#   DISK DISK_SIZE BOOT_SIZE ROOT_SIZE   the image and its partition sizes (sfdisk units)
#   TEMPLATE                             the Debian root file system, a tar
#   MACHINE_HOSTNAME HOME_UUID
#   PKG NODE GUEST                       syn3-backup's package, node, drill/guest
# and, each only when set:
#   TARGET_UUID                          the backup disk, mounted at /backup (the file target)
#   CONFIG                               config.yaml (else "syn3-backup install" writes its example)
#   SMB_CREDENTIALS                      /etc/syn3-backup/smb.cred (the smb target's), 0600
#   NETWORK_ADDRESS                      the address systemd-networkd gives the network card
# Prints ROOT_UUID=... and BOOT_UUID=... on success.
set -euo pipefail
: "${DISK:?}" "${DISK_SIZE:?}" "${BOOT_SIZE:?}" "${ROOT_SIZE:?}" "${TEMPLATE:?}" "${MACHINE_HOSTNAME:?}"
: "${HOME_UUID:?}" "${PKG:?}" "${NODE:?}" "${GUEST:?}"
TARGET_UUID=${TARGET_UUID:-} CONFIG=${CONFIG:-} SMB_CREDENTIALS=${SMB_CREDENTIALS:-} NETWORK_ADDRESS=${NETWORK_ADDRESS:-}

[ -e "$DISK" ] && { echo "install-machine: $DISK exists; a drill disk is always made new" >&2; exit 1; }
truncate -s "$DISK_SIZE" "$DISK"
printf 'label: dos\n,%s,L,*\n,%s,L\n,,8e\n' "$BOOT_SIZE" "$ROOT_SIZE" | sfdisk -q "$DISK"

M=$(mktemp -d /tmp/syn3-drill-mnt.XXXXXX)
LOOP=$(losetup -f --show "$DISK")
cleanup() {
  for d in "$M/dev/pts" "$M/dev" "$M/proc" "$M/sys" "$M/run" "$M/boot" "$M"; do
    mountpoint -q "$d" 2>/dev/null && umount -l "$d"
  done
  partx -d "$LOOP" 2>/dev/null || true
  losetup -d "$LOOP" 2>/dev/null || true
  rmdir "$M" 2>/dev/null || true
}
trap cleanup EXIT
# a killed earlier run can leave partitions registered on this loop device
partx -d "$LOOP" 2>/dev/null || true
partx -a "$LOOP"
for i in $(seq 50); do [ -b "${LOOP}p3" ] && break; sleep 0.1; done

mkfs.ext4 -q -L boot "${LOOP}p1"
mkfs.xfs -q -f -L root "${LOOP}p2"
ROOT_UUID=$(blkid -s UUID -o value "${LOOP}p2")
BOOT_UUID=$(blkid -s UUID -o value "${LOOP}p1")

mount "${LOOP}p2" "$M"
mkdir -p "$M/boot"
mount "${LOOP}p1" "$M/boot"
tar -xpf "$TEMPLATE" -C "$M" --numeric-owner --xattrs --xattrs-include='*'

cat > "$M/etc/fstab" <<F
# <file system>                           <mount point> <type> <options>        <dump> <pass>
UUID=$ROOT_UUID /             xfs    defaults          0 1
UUID=$BOOT_UUID /boot         ext4   defaults          0 2
UUID=$HOME_UUID /home         xfs    defaults          0 2
F
if [ -n "$TARGET_UUID" ]; then
  printf '# the backup disk (syn3-backup'"'"'s file target)\nUUID=%s /backup       xfs    defaults,nofail   0 2\n' "$TARGET_UUID" >> "$M/etc/fstab"
  mkdir -p "$M/backup"
fi
# The network card (virtio, the only one), as the installer's static setup would leave it; no
# gateway and no DNS: the drill's QEMU lets the machine reach its SMB share and nothing else.
if [ -n "$NETWORK_ADDRESS" ]; then
  mkdir -p "$M/etc/systemd/network"
  printf '[Match]\nType=ether\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$NETWORK_ADDRESS" \
    > "$M/etc/systemd/network/10-drill.network"
  ln -sf /lib/systemd/system/systemd-networkd.service "$M/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
fi
echo "$MACHINE_HOSTNAME" > "$M/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$MACHINE_HOSTNAME" > "$M/etc/hosts"
: > "$M/etc/machine-id"

# node and syn3-backup, as an administrator copies a release onto a machine
install -m 0755 "$NODE" "$M/usr/local/bin/node"
mkdir -p "$M/opt/syn3-backup/dist"
cp -a "$PKG/package.json" "$PKG/boot" "$PKG/examples" "$M/opt/syn3-backup/"
cp -a "$PKG/dist/bin" "$M/opt/syn3-backup/dist/"
[ -n "$CONFIG" ] && install -D -m 0600 "$CONFIG" "$M/etc/syn3-backup/config.yaml"
[ -n "$SMB_CREDENTIALS" ] && install -D -m 0600 "$SMB_CREDENTIALS" "$M/etc/syn3-backup/smb.cred"
install -d -m 0755 "$M/usr/backup/modules"
for f in "$GUEST"/modules/*; do install -m 0755 "$f" "$M/usr/backup/modules/"; done

# the drill's hands in the guest: runs the job the harness puts on the job disk
install -m 0755 "$GUEST/drill-agent" "$M/usr/local/sbin/drill-agent"
install -m 0755 "$GUEST/fingerprint" "$M/usr/local/sbin/drill-fingerprint"
install -m 0644 "$GUEST/drill-agent.service" "$M/etc/systemd/system/drill-agent.service"
ln -sf /etc/systemd/system/drill-agent.service "$M/etc/systemd/system/multi-user.target.wants/drill-agent.service"

# serial console for the kernel and GRUB, so the harness reads every boot
cat > "$M/etc/default/grub" <<G
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200n8"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
G

for d in dev dev/pts proc sys run; do mkdir -p "$M/$d"; done
mount --bind /dev "$M/dev"; mount --bind /dev/pts "$M/dev/pts"
mount -t proc proc "$M/proc"; mount -t sysfs sys "$M/sys"; mount -t tmpfs tmpfs "$M/run"

# MariaDB is in the template for the test lane; the drill's server has no MariaDB.
# Masking it was not enough: its 180 MB of programs and its data directory went
# into every system copy and dump (about 190 MiB more per backup, 4-5 minutes
# more drill under TCG). Purged offline, with only the packages that are
# MariaDB's; what they pulled in (lsof, socat, iproute2, ...) stays, as the rest
# of the template does. policy-rc.d keeps the maintainer scripts from starting
# or stopping anything in this chroot; the purge keeps the data directory, so it goes too.
MARIADB_PACKAGES="mariadb-server mariadb-server-core mariadb-client mariadb-client-core mariadb-common libmariadb3 galera-4 mysql-common"
printf '#!/bin/sh\nexit 101\n' > "$M/usr/sbin/policy-rc.d"
chmod 0755 "$M/usr/sbin/policy-rc.d"
# shellcheck disable=SC2086 # the list is words
chroot "$M" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o Dpkg::Use-Pty=0 $MARIADB_PACKAGES >&2
rm -f "$M/usr/sbin/policy-rc.d"
rm -rf "$M/var/lib/mysql" "$M/etc/mysql" "$M/var/log/mysql"
if chroot "$M" dpkg -l | grep -E '^[a-z][a-z] +(mariadb|galera|mysql|libmariadb)' >&2; then
  echo "install-machine: MariaDB packages are still installed (above)" >&2; exit 1
fi

# syn3-backup install: hooks, units, wrapper; it runs update-initramfs itself
chroot "$M" /usr/local/bin/node /opt/syn3-backup/dist/bin/syn3-backup.mjs install --scheduler timer >&2
KV=$(ls "$M/usr/lib/modules" | head -n 1)
chroot "$M" lsinitramfs "/boot/initrd.img-$KV" | grep 'scripts/local-premount/syn3-backup' > /dev/null ||
  { echo "install-machine: the initramfs has no syn3-backup scripts" >&2; exit 1; }

# From now on the machine rebuilds its own initramfs (the restore does) with only
# the modules it needs, as many administrators set it: under TCG a MODULES=most
# rebuild takes three minutes. The first one, above, had to be "most": a chroot
# on this host cannot see the guest's devices.
sed -i 's/^MODULES=most$/MODULES=dep/' "$M/etc/initramfs-tools/initramfs.conf"

chroot "$M" grub-install --target=i386-pc --boot-directory=/boot "$LOOP" >&2
chroot "$M" grub-mkconfig -o /boot/grub/grub.cfg >&2 2>/dev/null || true
if ! grep -q "root=UUID=$ROOT_UUID" "$M/boot/grub/grub.cfg" 2>/dev/null; then
  # grub-mkconfig cannot always name a loop device's file system from a chroot:
  # the first boot runs update-grub for real; this is enough to get there.
  cat > "$M/boot/grub/grub.cfg" <<C
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=1
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $BOOT_UUID
menuentry 'Debian GNU/Linux (drill first boot)' {
	echo 'Loading Linux $KV ...'
	linux /vmlinuz-$KV root=UUID=$ROOT_UUID ro console=ttyS0,115200n8
	echo 'Loading initial ramdisk ...'
	initrd /initrd.img-$KV
}
C
fi
sync
echo "ROOT_UUID=$ROOT_UUID"
echo "BOOT_UUID=$BOOT_UUID"

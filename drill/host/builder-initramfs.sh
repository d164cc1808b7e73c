#!/bin/bash
# builder-initramfs.sh KROOT OUT.cpio.gz
# The drill's disk builder: a busybox initramfs for the guest's own kernel with
# lvm and mkfs.xfs from this host. It exists because this host's kernel has no
# device-mapper, so the /home logical volume of a drill machine is created in a
# short QEMU boot. The kernel command line says what to make:
#   drill.pv=/dev/vda3 drill.vg=vg0 drill.lv=home drill.lvsize=1600M
#   drill.uuid=<uuid of the XFS file system> drill.label=home
# and the init prints "=== BUILDER DONE rc=N" before it powers off.
set -euo pipefail
KROOT=$1 OUT=$2
KV=$(ls "$KROOT/usr/lib/modules" | head -n 1)
MODDIR=$KROOT/usr/lib/modules/$KV
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,etc/lvm,proc,sys,dev,run/lock/lvm,tmp,usr/sbin,lib64} "$R/lib/modules/$KV"
cp /bin/busybox "$R/bin/busybox"
: > "$R/lib/modules/$KV/modules.dep"
for m in virtio_pci virtio_blk libcrc32c xfs dm-mod; do
  line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -n 1) || { echo "builder-initramfs: no module $m in $MODDIR" >&2; exit 1; }
  for f in ${line%%:*} ${line#*:}; do
    mkdir -p "$R/lib/modules/$KV/$(dirname "$f")"
    cp "$MODDIR/$f" "$R/lib/modules/$KV/$f"
    grep -E "^$f:" "$MODDIR/modules.dep" >> "$R/lib/modules/$KV/modules.dep"
  done
done
sort -u -o "$R/lib/modules/$KV/modules.dep" "$R/lib/modules/$KV/modules.dep"
for b in /usr/sbin/lvm /usr/sbin/mkfs.xfs; do
  cp "$b" "$R/usr/sbin/"
  ldd "$b" | grep -o '/[^ ]*' | while read -r l; do mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; done
done
for t in pvcreate vgcreate lvcreate vgchange; do ln -s lvm "$R/usr/sbin/$t"; done
cat > "$R/etc/lvm/lvm.conf" <<'L'
devices { obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { locking_dir = "/run/lock/lvm" }
L
cat > "$R/init" <<'I'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DM_DISABLE_UDEV=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk libcrc32c xfs dm_mod; do modprobe $m || echo "modprobe $m failed"; done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^drill\.$1=//p"; }
build() {
  pv=$(arg pv); vg=$(arg vg); lv=$(arg lv)
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -b "$pv" ] && break; sleep 0.5; done
  pvcreate -ff -y "$pv" && vgcreate "$vg" "$pv" && lvcreate -y -Zy -n "$lv" -L "$(arg lvsize)" "$vg" &&
    mkfs.xfs -f -q -L "$(arg label)" -m "uuid=$(arg uuid)" "/dev/$vg/$lv" && vgchange -an "$vg"
}
build; rc=$?
sync
echo "=== BUILDER DONE rc=$rc"
poweroff -f
I
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"

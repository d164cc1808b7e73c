#!/bin/bash
# initramfs.sh KROOT OUT.cpio.gz
# The lane's initramfs: busybox and the few modules it takes to mount the
# lane's root (virtio disks, ext4), nothing else. Its init finds the disk with
# serial "lane-root", mounts it, moves /dev, /proc and /sys over, and
# switch_roots into /lane/init, the lane's own init on that root (no systemd).
# KROOT holds the template's kernel (usr/lib/modules/<version>/).
set -euo pipefail
KROOT=$1 OUT=$2
KV=$(ls "$KROOT/usr/lib/modules" | head -n 1)
MODDIR=$KROOT/usr/lib/modules/$KV
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,proc,sys,dev,newroot} "$R/lib/modules/$KV"
cp /bin/busybox "$R/bin/busybox"
"$R/bin/busybox" true 2>/dev/null && ! ldd "$R/bin/busybox" >/dev/null 2>&1 ||
  { echo "initramfs: /bin/busybox must be the static one (busybox-static)" >&2; exit 1; }
: > "$R/lib/modules/$KV/modules.dep"
loaded=()
for m in virtio_pci virtio_blk crc32c_generic ext4; do
  name=${m//_/[-_]}
  if grep -qE "/$name\.ko" "$MODDIR/modules.builtin"; then continue; fi
  line=$(grep -E "/$name\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -n 1) || { echo "initramfs: no module $m in $MODDIR" >&2; exit 1; }
  for f in ${line%%:*} ${line#*:}; do
    mkdir -p "$R/lib/modules/$KV/$(dirname "$f")"
    cp "$MODDIR/$f" "$R/lib/modules/$KV/$f"
    grep -E "^$f:" "$MODDIR/modules.dep" >> "$R/lib/modules/$KV/modules.dep"
  done
  loaded+=("$m")
done
sort -u -o "$R/lib/modules/$KV/modules.dep" "$R/lib/modules/$KV/modules.dep"
echo "${loaded[*]}" > "$R/modules"
cat > "$R/init" <<'I'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "lane-initramfs: $*" > /dev/console; poweroff -f; }
for m in $(cat /modules); do modprobe "$m" || echo "lane-initramfs: modprobe $m failed" > /dev/console; done
root=
i=0
while [ -z "$root" ] && [ $i -lt 200 ]; do
  for s in /sys/block/vd*/serial; do
    [ "$(cat "$s" 2>/dev/null)" = lane-root ] && root=/dev/${s#/sys/block/} && root=${root%/serial}
  done
  [ -n "$root" ] && [ -b "$root" ] || { root=; sleep 0.05; i=$((i + 1)); }
done
[ -n "$root" ] || fail "no disk with serial lane-root"
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root"
echo "lane-initramfs: root $root mounted (uptime $(cut -d' ' -f1 /proc/uptime) s)" > /dev/console
for d in dev proc sys; do mount --move /$d /newroot/$d || fail "cannot move /$d"; done
exec switch_root /newroot /lane/init
I
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"

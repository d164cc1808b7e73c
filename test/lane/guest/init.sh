#!/bin/sh
# /lane/init: PID 1 of a lane guest, on the lane's root image (the Debian
# template), started by the lane's initramfs with /dev, /proc and /sys already
# mounted. No systemd, no udev: it mounts what programs expect, loads the
# modules the specs use, names the extra disks, mounts the program disk at
# /opt/syn3-backup (read-only) and starts the agent on the virtio-serial port
# "lane". It stays as the reaper of orphaned daemons (pg_ctl's postmaster). The
# agent powers the guest off itself (when asked, or when the host has gone); if
# it ends otherwise, the init does.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DM_DISABLE_UDEV=1
exec </dev/null >/dev/console 2>&1
say() { echo "lane-init: $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
off() {
  say "$*; powering off"
  sync
  /lane/busybox poweroff -f
}
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^lane\.$1=//p"; }

mkdir -p /dev/pts /dev/shm /dev/disk/by-id
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev run /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mkdir -p /run/lock/lvm /run/lvm /run/lock/subsys
install -d -o postgres -g postgres -m 2775 /run/postgresql
install -d -o mysql -g mysql -m 0755 /run/mysqld
# xfsdump reads the mount table from /etc/mtab.
ln -sfn ../proc/self/mounts /etc/mtab
mount -o remount,rw / 2>/dev/null

host=$(arg hostname)
echo "${host:-lane}" >/proc/sys/kernel/hostname
/lane/busybox ip link set lo up

# virtio_console carries the agent's port; the rest are what the specs use
# (a mount or lvcreate would load most on demand, but not before they are named).
for m in virtio_console virtio_net xfs dm_mod dm_snapshot dm_bufio loop drbd; do
  modprobe "$m" || say "modprobe $m failed"
done
address=$(arg address)
if [ -n "$address" ]; then
  /lane/busybox ip addr add "$address" dev eth0 && /lane/busybox ip link set eth0 up || say "cannot configure eth0 as $address"
fi

# Without udev there is no /dev/disk/by-id: made here from the serials in sysfs.
for s in /sys/block/vd*/serial; do
  serial=$(cat "$s" 2>/dev/null)
  dev=${s#/sys/block/}
  dev=${dev%/serial}
  [ -n "$serial" ] && ln -sfn "../../$dev" "/dev/disk/by-id/virtio-$serial"
done
if [ -b /dev/disk/by-id/virtio-lane-prog ]; then
  mount -t ext4 -o ro /dev/disk/by-id/virtio-lane-prog /opt/syn3-backup || say "cannot mount the program disk"
fi

port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = lane ] && [ -c "/dev/${p##*/}" ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] || { sleep 0.05; i=$((i + 1)); }
done
[ -n "$port" ] || off "no virtio-serial port named lane"
say "starting the agent on $port"
/usr/local/bin/node /lane/agent.mjs "$port" &
agent=$!
# wait reaps every child, orphans included, until the agent ends.
wait "$agent"
off "the agent ended with $?"

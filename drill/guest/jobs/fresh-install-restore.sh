# The administrator's side of a disaster, on the freshly installed machine
# (run by drill-agent; $1: results folder): see the backups on the target,
# then restore the lost host from the newest, confirming with its name. Its
# configuration trusts the lost host's public key only (the papers' line);
# its own signing key, made by its install, signed none of these backups.
# With an SMB share (files config.yaml, smb.cred and share on the job disk), the
# administrator brings the configuration and the credentials file onto the fresh
# installation first, as root's private files.
# The program asks for a reboot at the end; drill-agent reboots.
set -euo pipefail
out=$1
if [ -f config.yaml ]; then
  install -o root -g root -m 0600 config.yaml /etc/syn3-backup/config.yaml
  install -o root -g root -m 0600 smb.cred /etc/syn3-backup/smb.cred
  stat -c '%n %U:%G %a' /etc/syn3-backup/config.yaml /etc/syn3-backup/smb.cred > "$out/brought.txt"
fi
if [ -f share ]; then
  read -r addr port < share
  # systemd-networkd brings the address up during the boot; wait until the share answers.
  for _ in $(seq 60); do timeout 2 bash -c ": < /dev/tcp/$addr/$port" 2> /dev/null && break; sleep 1; done
  # QEMU's restrict=on: this host's own address (and through it the loopback smbd listens on) is out of reach.
  read -r host_addr host_port < host-address
  if timeout 3 bash -c ": < /dev/tcp/$host_addr/$host_port" 2> /dev/null; then echo yes; else echo no; fi > "$out/host-reached.txt"
fi
syn3-backup config check | tee "$out/config-check.txt"
grep -E '^ *(type|share|path):' "$out/config-check.txt" > "$out/target.txt" || true
syn3-backup list --json > "$out/list.json"
syn3-backup --log-format text restore --confirm "$(cat host)" --json > "$out/restore.json"
cat "$out/restore.json"
syn3-backup status --json > "$out/status.json" || true
# What the initrd phase will find: the restored /home mounted at /home (its UUID), holding the marker.
# (systemd once unmounted it behind the restore's back: the fresh fstab names the old UUID.)
findmnt -n -o UUID,SOURCE --mountpoint /home > "$out/home-mount.txt" || echo "nothing mounted at /home" > "$out/home-mount.txt"
ls -A /home > "$out/home-entries.txt" || true

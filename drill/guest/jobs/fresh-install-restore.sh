# The administrator's side of a disaster, on the freshly installed machine
# (run by drill-agent; $1: results folder): see the backups on the backup disk,
# then restore the lost host from the newest, confirming with its name. Its
# configuration trusts the lost host's public key only (the papers' line);
# its own signing key, made by its install, signed none of these backups.
# The program asks for a reboot at the end; drill-agent reboots.
set -euo pipefail
out=$1
syn3-backup list --json > "$out/list.json"
syn3-backup --log-format text restore --confirm "$(cat host)" --json > "$out/restore.json"
cat "$out/restore.json"
syn3-backup status --json > "$out/status.json" || true
# What the initrd phase will find: the restored /home mounted at /home (its UUID), holding the marker.
# (systemd once unmounted it behind the restore's back: the fresh fstab names the old UUID.)
findmnt -n -o UUID,SOURCE --mountpoint /home > "$out/home-mount.txt" || echo "nothing mounted at /home" > "$out/home-mount.txt"
ls -A /home > "$out/home-entries.txt" || true

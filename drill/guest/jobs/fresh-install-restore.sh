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

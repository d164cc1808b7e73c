# The restored machine after one more reboot (run by drill-agent; $1: results):
# its fingerprint, its database and what syn3-backup says of it.
set -euo pipefail
out=$1
syn3-backup status --json > "$out/status.json"
su postgres -s /bin/sh -c "psql -At -d shop -c \"SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o\"" > "$out/db.txt"
echo "database shop: $(cat "$out/db.txt")"
cat /proc/cmdline > "$out/cmdline.txt"
drill-fingerprint "$out/fingerprint"

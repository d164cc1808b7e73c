# The restored machine after one more reboot (run by drill-agent; $1: results):
# what syn3-backup says of it, the database "shop" (loaded from the spool by the
# restore module), then PostgreSQL's cluster on the restored /home/pgdata: it
# started at the first boot from the snapshot's files (a crash-consistent copy: it
# replayed its WAL), the rows of "drill", and pg_amcheck over every database; last,
# the machine's fingerprint.
set -euo pipefail
out=$1
cd / # the postgres account cannot enter the job's folder
syn3-backup status --json > "$out/status.json"
cat /proc/cmdline > "$out/cmdline.txt"
ready=no
for _ in $(seq 120); do runuser -u postgres -- pg_isready -q && { ready=yes; break; }; sleep 1; done
echo "$ready" > "$out/pg-ready.txt"
systemctl status --no-pager 'postgresql@15-main.service' > "$out/postgresql-service.txt" 2>&1 || true
cp /var/log/postgresql/postgresql-15-main.log "$out/postgresql.log" 2>/dev/null || true
[ "$ready" = yes ] || { echo "PostgreSQL did not start on the restored machine" >&2; exit 1; }
pg() { runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
pg -d shop -c "SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o" > "$out/db.txt"
echo "database shop: $(cat "$out/db.txt")"
pg -d postgres -c 'SHOW data_directory' | tee "$out/data-directory.txt"
pg -d drill -c "SELECT count(*) || ' ' || coalesce(min(n), 0) || ' ' || coalesce(max(n), 0) FROM ticks" | tee "$out/rows.txt"
rc=0
# Debian's pg_wrapper does not wrap pg_amcheck: it is in the version's own bin.
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_amcheck --install-missing --all --heapallindexed --verbose \
  > "$out/amcheck.txt" 2>&1 || rc=$?
echo "$rc" > "$out/amcheck-rc.txt"
echo "pg_amcheck: exit $rc, $(grep -c 'checking' "$out/amcheck.txt") relations checked"
grep -v '^pg_amcheck: checking' "$out/amcheck.txt" | tail -n 5 || true
drill-fingerprint "$out/fingerprint"

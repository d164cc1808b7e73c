# The snapshot variant's restored machine at its first boot, after post.restore
# (run by drill-agent; $1: results): what after-restore.sh gathers (it comes on the
# job disk too), then PostgreSQL on the restored /home/pgdata: it started from the
# snapshot's files (a crash-consistent copy: it replays its WAL), its rows, and
# pg_amcheck over every database.
set -uo pipefail
out=$1
bash ./after-restore.sh "$out"
cd / # the postgres account cannot enter the job's folder
lsblk -J -b -o NAME,TYPE,SIZE,FSTYPE,UUID,LABEL,MOUNTPOINT > "$out/lsblk.json"
ready=no
for _ in $(seq 120); do runuser -u postgres -- pg_isready -q && { ready=yes; break; }; sleep 1; done
echo "$ready" > "$out/pg-ready.txt"
systemctl status --no-pager 'postgresql@15-main.service' > "$out/postgresql-service.txt" 2>&1
cp /var/log/postgresql/postgresql-15-main.log "$out/postgresql.log" 2>/dev/null || true
[ "$ready" = yes ] || { echo "PostgreSQL did not start on the restored machine" >&2; exit 1; }
set -e
pg() { runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
pg -d postgres -c 'SHOW data_directory' | tee "$out/data-directory.txt"
pg -d drill -c "SELECT count(*) || ' ' || coalesce(min(n), 0) || ' ' || coalesce(max(n), 0) FROM ticks" | tee "$out/rows.txt"
rc=0
# Debian's pg_wrapper does not wrap pg_amcheck: it is in the version's own bin.
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_amcheck --install-missing --all --heapallindexed --verbose \
  > "$out/amcheck.txt" 2>&1 || rc=$?
echo "$rc" > "$out/amcheck-rc.txt"
echo "pg_amcheck: exit $rc, $(grep -c 'checking' "$out/amcheck.txt") relations checked"
grep -v '^pg_amcheck: checking' "$out/amcheck.txt" | tail -n 5 || true

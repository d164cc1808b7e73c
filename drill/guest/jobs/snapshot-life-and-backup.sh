# The snapshot variant's original machine (run by drill-agent; $1: results folder).
# PostgreSQL's cluster moves onto /home (data directory and WAL on the volume the
# snapshot holds), the shipped postgresql.freeze is enabled and the spool pair
# removed; a client commits one row at a time while "syn3-backup tick" backs up
# in snapshot mode. After each commit returns, the client appends "N epoch-ms"
# to a log on /, outside /home: what it knew to be committed, and when.
set -euo pipefail
out=$1
cd / # the postgres account cannot enter the job's folder
# No update-grub here (the spool variant's original runs it; post.restore does on the restored
# machine): under TCG it takes half a minute, and the grub.cfg install-machine.sh made boots.

# The cluster moves to /home/pgdata, as an administrator puts a database on the volume it
# snapshots: stopped, moved, data_directory set (a new cluster's initdb takes 50 s under TCG).
systemctl stop postgresql@15-main
mv /var/lib/postgresql/15/main /home/pgdata
sed -i "s|^data_directory = .*|data_directory = '/home/pgdata'|" /etc/postgresql/15/main/postgresql.conf
grep -q "^data_directory = '/home/pgdata'" /etc/postgresql/15/main/postgresql.conf
systemctl start postgresql@15-main
pg() { runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 60); do runuser -u postgres -- pg_isready -q && break; sleep 1; done
pg -d postgres -c 'CREATE DATABASE drill'
pg -d drill -c 'CREATE TABLE ticks (n integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())'
pg -d postgres -c 'SHOW data_directory' | tee "$out/data-directory.txt"

# Snapshot mode's freezer instead of the spool modules.
rm -f /usr/backup/modules/50-postgresql.backup /usr/backup/modules/50-postgresql.restore
install -o root -g root -m 0700 /etc/syn3-backup/modules.examples/postgresql.freeze /usr/backup/modules/postgresql.freeze
ls -l /usr/backup/modules

# The client: one psql session, autocommit, one INSERT a transaction. psql answers the \echo
# after it only once the INSERT has returned; then the client logs the row and the time. All in
# one bash loop without a process a row, and a pause of 0.2 s between rows: under TCG a client
# as fast as it can go slows the backup beside it by minutes; a few rows a second straddle the
# freeze window all the same.
log=/var/lib/drill-client/commits.log stop=/run/drill-client.stop
install -d -m 0755 /var/lib/drill-client
cat > /usr/local/sbin/drill-commit-client <<'CLIENT'
#!/bin/bash
# drill-commit-client LOG STOP: commits rows 1, 2, 3 ... until the file STOP exists.
set -u
log=$1 stop=$2
coproc PSQL { exec runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d drill; }
exec {logfd}>>"$log" {pause}<> <(:)
n=0
while [ ! -e "$stop" ]; do
  n=$((n + 1))
  printf 'INSERT INTO ticks (n) VALUES (%d);\n\\echo %d\n' "$n" "$n" >&"${PSQL[1]}"
  IFS= read -r ack <&"${PSQL[0]}" || { echo "drill-commit-client: psql ended at row $n" >&2; exit 1; }
  [ "$ack" = "$n" ] || { echo "drill-commit-client: psql answered $ack to row $n" >&2; exit 1; }
  t=${EPOCHREALTIME/[.,]/}
  echo "$n $((t / 1000))" >&"$logfd"
  read -rt 0.2 -u "$pause" || :
done
exec {PSQL[1]}>&-
wait
CLIENT
chmod 0755 /usr/local/sbin/drill-commit-client
rm -f "$stop"
/usr/local/sbin/drill-commit-client "$log" "$stop" 2> "$out/client.stderr" &
client=$!
rows() { if [ -f "$log" ]; then wc -l < "$log"; else echo 0; fi; }
for _ in $(seq 120); do [ "$(rows)" -ge 20 ] && break; sleep 0.5; done
echo "client: $(rows) rows committed before the backup"

vgs --units m --nosuffix -o vg_name,vg_size,vg_free --noheadings vg0 | tee "$out/vgs.txt"
syn3-backup config check
syn3-backup key show > "$out/public-key.txt"
syn3-backup --log-format text tick
sleep 2
touch "$stop"
wait "$client"
tail -n 1 "$log" | cut -d' ' -f1 > "$out/committed.txt"
echo "client: stopped; rows 1..$(cat "$out/committed.txt") committed"
cp "$log" "$out/commits.log"
pg -d drill -c "SELECT count(*) || ' ' || coalesce(max(n), 0) FROM ticks" > "$out/rows-at-stop.txt"
syn3-backup status --json > "$out/status.json"
syn3-backup list --json > "$out/list.json"
lsblk -J -b -o NAME,TYPE,SIZE,FSTYPE,UUID,LABEL,MOUNTPOINT > "$out/lsblk.json"
cp /var/lib/syn3-backup/syn3-backup.log "$out/" 2>/dev/null || true

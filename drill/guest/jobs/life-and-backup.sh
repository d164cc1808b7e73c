# The original machine's life, then its backup (run by drill-agent; $1: results folder).
# Users and their files with owners, modes, ACLs, xattrs, links and holes on
# /home; PostgreSQL's cluster moved onto /home with two databases: "shop" (20,000
# rows, dumped into the spool by the spool module and loaded from it by the restore
# module) and "drill", left to the snapshot (the shipped postgresql.freeze holds the
# server while LVM snapshots /home), into which a client commits one row at a time
# while "syn3-backup tick" backs up in snapshot mode as cron would run it (onto the
# drill's target: the SMB share, or the backup disk). After each commit returns,
# the client appends "N epoch-ms" to a log outside /home (on /run): what it knew to
# be committed, and when. Then the fingerprint of the machine as it was backed up.
set -euo pipefail
out=$1
job=$PWD
cd / # the postgres account cannot enter the job's folder
update-grub
useradd -m -u 1001 -s /bin/bash alice
useradd -m -u 1002 -s /bin/bash bob
groupadd -g 2000 projects
usermod -aG projects alice
install -d -o alice -g projects -m 2775 /home/projects
head -c 8M /dev/urandom > /home/alice/random.bin
seq 1 200000 > /home/alice/numbers.txt
ln /home/alice/numbers.txt /home/alice/numbers-hardlink.txt
ln -s ../alice/numbers.txt /home/bob/link-to-alice
truncate -s 64M /home/bob/sparse.img && printf 'middle' | dd of=/home/bob/sparse.img bs=1 seek=33554432 conv=notrunc status=none
echo 'budget 2026' > /home/projects/plan.txt
setfacl -m u:bob:rw,g:projects:r /home/projects/plan.txt
setfacl -d -m g:projects:rwx /home/projects
setfattr -n user.origin -v drill /home/projects/plan.txt
setfattr -n trusted.syn3 -v keep /home/alice/random.bin
mkfifo /home/bob/pipe
mkdir -p '/home/bob/names with spaces/ünïcødé'
echo 'hello' > '/home/bob/names with spaces/ünïcødé/file'
chown -R alice:alice /home/alice; chown -R bob:bob /home/bob
chmod 4750 /home/alice/numbers.txt
touch -d '2001-02-03 04:05:06' /home/bob/link-to-alice /home/alice/random.bin
# The cluster moves to /home/pgdata, as an administrator puts a database on the volume it
# snapshots: stopped, moved, data_directory set (a new cluster's initdb takes 50 s under TCG).
systemctl stop postgresql@15-main
mv /var/lib/postgresql/15/main /home/pgdata
sed -i "s|^data_directory = .*|data_directory = '/home/pgdata'|" /etc/postgresql/15/main/postgresql.conf
grep -q "^data_directory = '/home/pgdata'" /etc/postgresql/15/main/postgresql.conf
systemctl start postgresql@15-main
pg() { runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 60); do runuser -u postgres -- pg_isready -q && break; sleep 1; done
pg -d postgres -c 'SHOW data_directory' | tee "$out/data-directory.txt"
# a database with rows in it, and the checksum of its content
su postgres -s /bin/sh -c "createdb shop"
su postgres -s /bin/sh -c "psql -q -d shop -v ON_ERROR_STOP=1" <<'SQL'
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), at timestamptz);
INSERT INTO orders (customer, amount, at)
  SELECT 'customer-' || (g % 97), g * 1.25, timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 20000) g;
SQL
db_sum() { su postgres -s /bin/sh -c "psql -At -d shop -c \"SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o\""; }
# "drill": the snapshot's proof. The spool module leaves it alone (its comment says so), so
# what comes back of it is what the snapshot held, replayed from its WAL at the first start.
pg -d postgres -c 'CREATE DATABASE drill'
pg -d postgres -c "COMMENT ON DATABASE drill IS 'syn3: left to the snapshot'"
pg -d drill -c 'CREATE TABLE ticks (n integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())'
# Snapshot mode's freezer beside the spool module pair.
install -o root -g root -m 0700 /etc/syn3-backup/modules.examples/postgresql.freeze /usr/backup/modules/postgresql.freeze
ls -l /usr/backup/modules

# The client: one psql session, autocommit, one INSERT a transaction. psql answers the \echo
# after it only once the INSERT has returned; then the client logs the row and the time. All in
# one bash loop without a process a row, and a pause of 0.2 s between rows: under TCG a client
# as fast as it can go slows the backup beside it by minutes; a few rows a second straddle the
# freeze window all the same.
log=/run/drill-client/commits.log stop=/run/drill-client/stop
install -d -m 0755 /run/drill-client
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
/usr/local/sbin/drill-commit-client "$log" "$stop" 2> "$out/client.stderr" &
client=$!
rows() { if [ -f "$log" ]; then wc -l < "$log"; else echo 0; fi; }
for _ in $(seq 120); do [ "$(rows)" -ge 20 ] && break; sleep 0.5; done
echo "client: $(rows) rows committed before the backup"

vgs --units m --nosuffix -o vg_name,vg_size,vg_free --noheadings vg0 | tee "$out/vgs.txt"
syn3-backup config check
# With an SMB share (the file share on the job disk): systemd-networkd brings the address up
# during the boot; the tick waits until the share answers, as cron's would find it.
if [ -f "$job/share" ]; then
  read -r addr port < "$job/share"
  for _ in $(seq 60); do timeout 2 bash -c ": < /dev/tcp/$addr/$port" 2> /dev/null && break; sleep 1; done
fi
# The signing key "syn3-backup install" made: its public key is what the papers keep.
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
db_sum > "$out/db.txt"
echo "database shop: $(cat "$out/db.txt")"
drill-fingerprint "$out/fingerprint"
cp /var/lib/syn3-backup/syn3-backup.log "$out/" 2>/dev/null || true

# The original machine's life, then its backup (run by drill-agent; $1: results folder).
# Users and their files with owners, modes, ACLs, xattrs, links and holes on
# /home; a PostgreSQL database; then "syn3-backup tick" as cron would run it
# (onto the variant's target: the backup disk, or the SMB share),
# and the fingerprint of the machine as it was backed up.
set -euo pipefail
out=$1
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
# a database with rows in it, and the checksum of its content
su postgres -s /bin/sh -c "createdb shop"
su postgres -s /bin/sh -c "psql -q -d shop -v ON_ERROR_STOP=1" <<'SQL'
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), at timestamptz);
INSERT INTO orders (customer, amount, at)
  SELECT 'customer-' || (g % 97), g * 1.25, timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 20000) g;
SQL
db_sum() { su postgres -s /bin/sh -c "psql -At -d shop -c \"SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o\""; }
syn3-backup config check
# With an SMB share (the file share on the job disk): systemd-networkd brings the address up
# during the boot; the tick waits until the share answers, as cron's would find it.
if [ -f share ]; then
  read -r addr port < share
  for _ in $(seq 60); do timeout 2 bash -c ": < /dev/tcp/$addr/$port" 2> /dev/null && break; sleep 1; done
fi
# The signing key "syn3-backup install" made: its public key is what the papers keep.
syn3-backup key show > "$out/public-key.txt"
syn3-backup --log-format text tick
syn3-backup status --json > "$out/status.json"
syn3-backup list --json > "$out/list.json"
db_sum > "$out/db.txt"
echo "database shop: $(cat "$out/db.txt")"
drill-fingerprint "$out/fingerprint"
cp /var/lib/syn3-backup/syn3-backup.log "$out/" 2>/dev/null || true

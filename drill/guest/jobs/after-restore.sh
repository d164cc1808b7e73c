# The first boot of the restored machine (run by drill-agent after
# syn3-backup-resume.service, i.e. post.restore, has finished; $1: results).
set -uo pipefail
out=$1
systemctl status --no-pager syn3-backup-resume.service > "$out/resume-service.txt" 2>&1
systemctl show -p Result -p ExecMainStatus syn3-backup-resume.service > "$out/resume-result.txt"
journalctl -b -u syn3-backup-resume.service --no-pager > "$out/resume-journal.txt"
syn3-backup status --json > "$out/status.json"
cat "$out/resume-result.txt"
cp /var/lib/syn3-backup/syn3-backup.log "$out/" 2>/dev/null || true

#!/usr/bin/env bash
# The runbook's diagnose_p0.sh (docs: incident-runbook, "P0 root cause analysis"), adapted ONLY for
# the compose project and the database names of the reference stack, and writing into a temp logs/
# directory. Used by bench_diagnose.py as the baseline; not part of the collection.
#   bench/diagnose_p0.sh [workdir]     (workdir default: a new temp dir; logs/ is created in it)
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK/logs"
cd "$WORK" || exit 1
docker-compose() { command docker-compose -p recsys -f "$ROOT/examples/recommendation-stack/docker-compose.yml" "$@"; }

echo "=== P0 Incident Diagnostics ==="
echo ""

echo "[1] Service Status"
docker-compose ps

echo "[2] Recent Logs (last 200 lines)"
docker-compose logs --tail=200 recommendation-service > logs/service.log
tail -50 logs/service.log

echo "[3] Database Status"
docker-compose exec -T postgres psql -U postgres -d recommendation_db -c "
  SELECT datname, numbackends, xact_commit, xact_rollback 
  FROM pg_stat_database WHERE datname = 'recommendation_db';" > logs/db_status.log
cat logs/db_status.log

echo "[4] Redis Status"
docker-compose exec -T redis redis-cli INFO server memory clients > logs/redis_status.log
cat logs/redis_status.log

echo "[5] System Resources"
docker stats --no-stream > logs/docker_stats.log
cat logs/docker_stats.log

echo "[6] Disk Space"
df -h > logs/disk_space.log
cat logs/disk_space.log

echo "[7] Recent Errors"
docker-compose logs recommendation-service | grep -i "error\|fatal\|panic" > logs/errors.log
tail -20 logs/errors.log

echo "Diagnostics complete. Results saved to logs/"

#!/usr/bin/env bash
# The runbook's diagnose_p0.sh (docs: incident-runbook, "P0 root cause analysis"), adapted ONLY for
# the names of the stack it runs against (compose project and file, services, database, ports) and
# writing into a temp logs/ directory. Used by bench_diagnose.py as the baseline; not part of the collection.
#   bench/diagnose_p0.sh [workdir]     (workdir default: a new temp dir; logs/ is created in it)
# The stack (defaults: the reference stack as inventories/local runs it; bench_diagnose.py sets them
# from the inventory it measures): BENCH_PROJECT, BENCH_COMPOSE_FILE, BENCH_SERVICE, BENCH_DB_SERVICE,
# BENCH_DB_NAME, BENCH_DB_PORT, BENCH_REDIS_SERVICE, BENCH_REDIS_PORT.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
PROJECT=${BENCH_PROJECT:-recsys}
COMPOSE_FILE=${BENCH_COMPOSE_FILE:-$ROOT/examples/recommendation-stack/docker-compose.yml}
SERVICE=${BENCH_SERVICE:-recommendation-service}
DB_SERVICE=${BENCH_DB_SERVICE:-postgres}
DB_NAME=${BENCH_DB_NAME:-recommendation_db}
DB_PORT=${BENCH_DB_PORT:-5432}
REDIS_SERVICE=${BENCH_REDIS_SERVICE:-redis}
REDIS_PORT=${BENCH_REDIS_PORT:-6379}
mkdir -p "$WORK/logs"
cd "$WORK" || exit 1
docker-compose() { command docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }

echo "=== P0 Incident Diagnostics ==="
echo ""

echo "[1] Service Status"
docker-compose ps

echo "[2] Recent Logs (last 200 lines)"
docker-compose logs --tail=200 "$SERVICE" > logs/service.log
tail -50 logs/service.log

echo "[3] Database Status"
docker-compose exec -T "$DB_SERVICE" psql -p "$DB_PORT" -U postgres -d "$DB_NAME" -c "
  SELECT datname, numbackends, xact_commit, xact_rollback 
  FROM pg_stat_database WHERE datname = '$DB_NAME';" > logs/db_status.log
cat logs/db_status.log

echo "[4] Redis Status"
docker-compose exec -T "$REDIS_SERVICE" redis-cli -p "$REDIS_PORT" INFO server memory clients > logs/redis_status.log
cat logs/redis_status.log

echo "[5] System Resources"
docker stats --no-stream > logs/docker_stats.log
cat logs/docker_stats.log

echo "[6] Disk Space"
df -h > logs/disk_space.log
cat logs/disk_space.log

echo "[7] Recent Errors"
docker-compose logs "$SERVICE" | grep -i "error\|fatal\|panic" > logs/errors.log
tail -20 logs/errors.log

echo "Diagnostics complete. Results saved to logs/"

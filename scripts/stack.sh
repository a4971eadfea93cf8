#!/usr/bin/env bash
# The reference stack (examples/recommendation-stack), compose project "recsys" by default.
#   stack.sh up      build the images and start the stack, wait until every service is healthy
#   stack.sh down    stop and remove the containers; volumes (data) are kept
#   stack.sh wait    wait (bounded) until every service of the project is healthy
set -euo pipefail
cd "${RECSYS_STACK_DIR:-$(dirname "$0")/../examples/recommendation-stack}"
PROJECT=${RECSYS_PROJECT:-recsys}
TIMEOUT=${RECSYS_WAIT_TIMEOUT:-120}
# services behind a compose profile: not started by `up`, so not waited for
OPTIONAL=${RECSYS_OPTIONAL_SERVICES:-recommendation-service-standby}

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml "$@"; }

wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT)) pending
  while :; do
    pending=$(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
      --format '{{.Label "com.docker.compose.service"}} {{.Names}} {{.Status}}' \
      | grep -v '(healthy)' | grep -vwE "^(${OPTIONAL// /|})" || true)
    if [ -z "$pending" ] && [ -n "$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")" ]; then
      echo "stack $PROJECT healthy"; return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "stack $PROJECT not healthy after ${TIMEOUT}s:" >&2; echo "$pending" >&2; return 1
    fi
    sleep 0.5
  done
}

settled() {  # no running container of the project is still starting or unhealthy
  ! docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Status}}' \
    | grep -qE '\((health: starting|unhealthy)\)'
}

up() {
  # compose v1 gives up when a dependency is "unhealthy" at the moment it checks (PostgreSQL
  # seeding its database on a loaded machine): wait (bounded, polling) until the health checks
  # settle, then bring the rest up.
  local deadline=$((SECONDS + TIMEOUT))
  until compose up -d --remove-orphans; do
    echo "compose up stopped at a dependency's health check; waiting for it to settle" >&2
    until settled; do
      [ $SECONDS -lt $deadline ] || { echo "stack $PROJECT: health checks did not settle in ${TIMEOUT}s" >&2; return 1; }
      sleep 0.5
    done
    [ $SECONDS -lt $deadline ] || return 1
  done
}

case "${1:-}" in
  up)
    compose build -q 2>/dev/null || compose build
    up
    wait_healthy ;;
  down) compose down --remove-orphans ;;
  wait) wait_healthy ;;
  *) echo "usage: $0 up|down|wait" >&2; exit 2 ;;
esac

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

case "${1:-}" in
  up)
    compose build -q 2>/dev/null || compose build
    compose up -d --remove-orphans
    wait_healthy ;;
  down) compose down --remove-orphans ;;
  wait) wait_healthy ;;
  *) echo "usage: $0 up|down|wait" >&2; exit 2 ;;
esac

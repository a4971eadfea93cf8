#!/usr/bin/env bash
# An example stack: the reference stack (examples/recommendation-stack, compose project "recsys")
# or, with STACK=shop, the second example (examples/shop-stack, project "shop").
#   stack.sh up      build the images and start the stack, wait until every service is healthy
#   stack.sh down    stop and remove the containers; volumes (data) are kept
#   stack.sh wait    wait (bounded) until every service of the project is healthy
# RECSYS_STACK_DIR, RECSYS_PROJECT and RECSYS_OPTIONAL_SERVICES override the stack's directory,
# project name and the services not started by `up` (so not waited for).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
case "${STACK:-recsys}" in
  recsys) dir=$here/examples/recommendation-stack project=recsys optional=recommendation-service-standby ;;
  shop) dir=$here/examples/shop-stack project=shop optional= ;;
  *) echo "STACK must be recsys or shop, not '$STACK'" >&2; exit 2 ;;
esac
cd "${RECSYS_STACK_DIR:-$dir}"
PROJECT=${RECSYS_PROJECT:-$project}
TIMEOUT=${RECSYS_WAIT_TIMEOUT:-120}
# services behind a compose profile: not started by `up`, so not waited for
OPTIONAL=${RECSYS_OPTIONAL_SERVICES-$optional}

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml "$@"; }

wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT)) pending
  while :; do
    pending=$(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
      --format '{{.Label "com.docker.compose.service"}} {{.Names}} {{.Status}}' \
      | grep -v '(healthy)' | { if [ -n "$OPTIONAL" ]; then grep -vwE "^(${OPTIONAL// /|})"; else cat; fi; } || true)
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

# npm packages of a Node.js service (a package-lock.json beside its Dockerfile) are installed on
# this host and copied into the image: `npm ci` when node_modules is missing or older than the lock.
npm_install() {
  local lock dir want
  for lock in */package-lock.json; do
    [ -f "$lock" ] || continue
    dir=$(dirname "$lock")
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    [ "$(cat "$dir/node_modules/.lock.sha256" 2>/dev/null)" = "$want" ] && continue
    command -v npm >/dev/null 2>&1 || { echo "npm is missing (scripts/setup.sh installs nodejs and npm)" >&2; return 1; }
    echo "npm ci in $PWD/$dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$dir/node_modules/.lock.sha256"
  done
}

case "${1:-}" in
  up)
    npm_install
    compose build -q 2>/dev/null || compose build
    up
    wait_healthy ;;
  down) compose down --remove-orphans ;;
  wait) wait_healthy ;;
  *) echo "usage: $0 up|down|wait" >&2; exit 2 ;;
esac

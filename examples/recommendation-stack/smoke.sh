#!/usr/bin/env bash
# Smoke test for the running recommendation stack.
#
#   ./smoke.sh                      # project recsys, ports 3000 / 8080
#   RECSYS_APP_PORT=13000 RECSYS_EDGE_PORT=18080 ./smoke.sh      # a copy on other ports
#
# Checks: /health 200; user-1..user-5 each get more than 5 recommendations;
# clear-cache works; /metrics answers; the edge proxies /health and the
# recommendations. Polls (short intervals) instead of sleeping; exits non-zero
# on the first failure.
set -euo pipefail

APP=${RECSYS_APP_URL:-http://127.0.0.1:${RECSYS_APP_PORT:-3000}}
EDGE=${RECSYS_EDGE_URL:-http://127.0.0.1:${RECSYS_EDGE_PORT:-8080}}
TIMEOUT=${SMOKE_TIMEOUT:-60}
TMP=$(mktemp -d)

pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*" >&2; exit 1; }

cleanup() {
  rm -rf "$TMP"
}
trap cleanup EXIT

# http METHOD URL -> prints the status code, body in $TMP/body
http() {
  curl -s -m 10 -o "$TMP/body" -w '%{http_code}' -X "$1" "$2" || echo 000
}
# json EXPR -> evaluates a Python expression over the last body (bound to d)
json() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/body" "$1"
}
# wait_for DESCRIPTION COMMAND... -> polls every 0.5 s until COMMAND succeeds
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "$what (not within ${TIMEOUT}s)"
    sleep 0.5
  done
}

# 1. Health
health_ok() { [ "$(http GET "$APP/health")" = 200 ]; }
wait_for "GET $APP/health -> 200" health_ok
[ "$(json 'd["postgres"] + "," + d["redis"]')" = "up,up" ] || fail "/health body: $(cat "$TMP/body")"
pass "GET /health -> 200 (postgres up, redis up)"

# 2. Recommendations for user-1 .. user-5
for u in user-1 user-2 user-3 user-4 user-5; do
  code=$(http GET "$APP/api/recommendations/$u?limit=10")
  [ "$code" = 200 ] || fail "GET /api/recommendations/$u -> $code: $(cat "$TMP/body")"
  n=$(json 'len(d["recommendations"])')
  [ "$n" -gt 5 ] || fail "$u got only $n recommendations"
  pass "GET /api/recommendations/$u -> $n recommendations (source $(json 'd["source"]'))"
done

# 3. Clear cache: user-1 is cached now, so at least one key goes away and the
#    next answer comes from the database again.
code=$(http GET "$APP/api/recommendations/user-1?limit=10")
[ "$(json 'd["source"]')" = cache ] || fail "second request for user-1 not served from cache"
code=$(http POST "$APP/api/recommendations/clear-cache")
[ "$code" = 200 ] || fail "POST clear-cache -> $code: $(cat "$TMP/body")"
cleared=$(json 'd["cleared"]')
[ "$cleared" -ge 1 ] || fail "clear-cache cleared $cleared keys"
http GET "$APP/api/recommendations/user-1?limit=10" >/dev/null
[ "$(json 'd["source"]')" = database ] || fail "user-1 still cached after clear-cache"
pass "POST /api/recommendations/clear-cache -> cleared $cleared"

# 4. Metrics
code=$(http GET "$APP/metrics")
if ! { [ "$code" = 200 ] && grep -q '^http_requests_total{' "$TMP/body" \
  && grep -q '^http_request_duration_seconds_bucket{' "$TMP/body"; }; then fail "/metrics -> $code"; fi
pass "GET /metrics -> 200 (Prometheus text)"

# 5. Edge proxies to the service
edge_ok() { [ "$(http GET "$EDGE/health")" = 200 ]; }
wait_for "GET $EDGE/health -> 200" edge_ok
code=$(http GET "$EDGE/api/recommendations/user-2?limit=10")
if ! { [ "$code" = 200 ] && [ "$(json 'd["count"]')" -gt 5 ]; }; then fail "edge recommendations -> $code"; fi
pass "edge: /health and /api/recommendations/user-2 proxied (200)"

echo "smoke: all checks passed"

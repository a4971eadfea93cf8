#!/usr/bin/env bash
# Smoke test of the running shop stack.
#
#   ./smoke.sh                       # project shop, ports 3100 (recs-api) / 8180 (web)
#   SHOP_PROJECT=shop2 SHOP_API_PORT=13100 SHOP_WEB_PORT=18180 ./smoke.sh
#
# Checks: /health 200 with both dependencies up; c-1001..c-1005 each get more than 5
# recommendations; the second answer comes from the cache, clear-cache empties it; web proxies
# and writes one JSON access-log line per request; recs-api appends its log file; bad input is
# refused with 400. Polls (bounded) instead of sleeping; exits non-zero on the first failure.
set -euo pipefail

PROJECT=${SHOP_PROJECT:-shop}
API=${SHOP_API_URL:-http://127.0.0.1:${SHOP_API_PORT:-3100}}
WEB=${SHOP_WEB_URL:-http://127.0.0.1:${SHOP_WEB_PORT:-8180}}
TIMEOUT=${SMOKE_TIMEOUT:-60}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*" >&2; exit 1; }
http() { curl -s -m 10 -o "$TMP/body" -w '%{http_code}' -X "$1" "$2" || echo 000; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/body" "$1"; }
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "$what (not within ${TIMEOUT}s)"
    sleep 0.5
  done
}
container() {
  docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n1
}

# 1. health
health_ok() { [ "$(http GET "$API/health")" = 200 ]; }
wait_for "GET $API/health -> 200" health_ok
deps=$(json 'd["dependencies"]["postgres"]["status"] + "," + d["dependencies"]["redis"]["status"]')
[ "$deps" = "up,up" ] || fail "/health body: $(cat "$TMP/body")"
pass "GET /health -> 200 (postgres up, redis up)"

# 2. recommendations for five customers
for u in c-1001 c-1002 c-1003 c-1004 c-1005; do
  code=$(http GET "$API/api/recommendations/$u?limit=10")
  [ "$code" = 200 ] || fail "GET /api/recommendations/$u -> $code: $(cat "$TMP/body")"
  n=$(json 'len(d["recommendations"])')
  if [ "$n" -le 5 ] || [ "$(json 'd["count"]')" != "$n" ]; then fail "$u: count $(json 'd["count"]'), $n recommendations"; fi
  pass "GET /api/recommendations/$u -> $n recommendations (source $(json 'd["source"]'))"
done

# 3. cache, then clear-cache
http GET "$API/api/recommendations/c-1001?limit=10" >/dev/null
[ "$(json 'd["source"]')" = cache ] || fail "second request for c-1001 not served from the cache"
code=$(http POST "$API/api/recommendations/clear-cache")
if [ "$code" != 200 ] || [ "$(json 'd["cleared"]')" -lt 1 ]; then fail "POST clear-cache -> $code: $(cat "$TMP/body")"; fi
cleared=$(json 'd["cleared"]')
http GET "$API/api/recommendations/c-1001?limit=10" >/dev/null
[ "$(json 'd["source"]')" = db ] || fail "c-1001 still cached after clear-cache"
pass "POST /api/recommendations/clear-cache -> cleared $cleared"

# 4. bad input
[ "$(http GET "$API/api/recommendations/c-1001?limit=0")" = 400 ] || fail "limit=0 not refused"
pass "GET /api/recommendations/c-1001?limit=0 -> 400"

# 5. through web, with a JSON access-log line
web_ok() { [ "$(http GET "$WEB/health")" = 200 ]; }
wait_for "GET $WEB/health -> 200" web_ok
code=$(http GET "$WEB/api/recommendations/c-1002?limit=10")
if [ "$code" != 200 ] || [ "$(json 'd["count"]')" -le 5 ]; then fail "web: recommendations -> $code"; fi
WEB_CTR=$(container web)
[ -n "$WEB_CTR" ] || fail "no running web container in project $PROJECT"
logged() {
  docker logs --since 60s "$WEB_CTR" 2>/dev/null | grep -F '"uri":"/api/recommendations/c-1002?limit=10"' | tail -n1 > "$TMP/body"
  [ -s "$TMP/body" ]
}
wait_for "web access log line for c-1002" logged
[ "$(json 'd["status"]')" = 200 ] || fail "web access log: $(cat "$TMP/body")"
pass "web: /health and /api/recommendations/c-1002 proxied, JSON access log written"

# 6. recs-api's log file
API_CTR=$(container recs-api)
[ -n "$API_CTR" ] || fail "no running recs-api container in project $PROJECT"
in_file() { docker exec "$API_CTR" grep -q '"path":"/api/recommendations/c-1002?limit=10"' /var/log/recs-api/recs-api.log; }
wait_for "recs-api log file has the c-1002 request" in_file
pass "recs-api: request logged to /var/log/recs-api/recs-api.log"

echo "smoke: all checks passed"

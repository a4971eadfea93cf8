#!/usr/bin/env bash
# make demo: break the local reference stack for real and let p0_recover.yml fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG=$PWD/ansible.cfg PATH=$PWD/.venv/bin:$PATH
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
health() { curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:3000/health || true; }

say "The stack is up: GET /health -> $(health)"
container=$(docker ps -aq --filter label=com.docker.compose.project=recsys \
  --filter label=com.docker.compose.service=recommendation-service | head -n1)
say "Breaking it: docker kill recommendation-service"
docker kill "$container" >/dev/null
printf 'GET /health -> %s (nothing answers)\n' "$(health)"

# The demo's ladder runs are counted apart from real incidents (incident_purpose=demo), and the demo
# closes its own circuit breaker first (a recorded reset), so it can be run again and again while a
# real incident's breaker never sees these runs.
ansible-playbook playbooks/ops.yml -i inventories/local --tags breaker_reset -e incident_purpose=demo \
  -e "reason='make demo: a demonstration, not an incident'" -e by=make-demo >/dev/null

say "Running: ansible-playbook playbooks/p0_recover.yml -i inventories/local"
start=$(date +%s%N)
ansible-playbook playbooks/p0_recover.yml -i inventories/local -e incident_dir="$PWD/incidents" -e incident_purpose=demo
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
record=$(find "$PWD/incidents" -mindepth 1 -maxdepth 1 -type d -name 'INC-*' -printf '%T@ %p/\n' | sort -n | tail -n1 | cut -d' ' -f2-)

say "Recovered in ${took_ms} ms: GET /health -> $(health)"
curl -s -m 2 http://127.0.0.1:3000/health; echo
curl -s -m 2 'http://127.0.0.1:3000/api/recommendations/user-1?limit=3'; echo
say "The incident record: ${record}events.jsonl"
python3 - "$record/events.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["type"] == "stage":
        continue
    print(f"  {e['ts'][11:19]}  {e.get('stage') or '':<9} {e.get('text', '')[:110]}")
PY
say "Write its postmortem: ansible-playbook playbooks/postmortem.yml -e incident_id=$(basename "$record")"
say "The stack stays up: http://127.0.0.1:3000 (service), http://127.0.0.1:8080 (edge). 'make stack-down' stops it and keeps its data."

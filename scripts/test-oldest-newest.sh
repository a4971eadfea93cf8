#!/usr/bin/env bash
# Test sre.incident on the oldest and the newest ansible-core this machine can run:
#   oldest: Python 3.11 (python3) + ansible-core 2.19.x, the oldest supported (requires_ansible >=2.19.0:
#           the unit tests use ansible.module_utils.testing, new in 2.19); `make test`'s .venv is this one
#   newest: Python 3.12 (/root/.pyenv/versions/3.12.1/bin/python3.12) + the newest ansible-core
# Each gets its own venv (.venv-oldest/, .venv-newest/; reused when present), runs the unit tests
# and one real playbook (diagnose.yml) against the stack named by the SRE_TEST_* variables
# (default: inventories/local, the reference stack).
#   bash scripts/test-oldest-newest.sh                 # newest (the oldest is what make test runs)
#   bash scripts/test-oldest-newest.sh oldest newest   # both
set -euo pipefail
cd "$(dirname "$0")/.."

PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
INVENTORY=${SRE_TEST_INVENTORY:-inventories/local}
which=("${@:-newest}")
read -r -a which <<< "${which[*]}"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

run_one() {
  local name=$1 python=$2 core=$3 venv=.venv-$1
  local start=$SECONDS
  if [ ! -x "$venv/bin/ansible-playbook" ]; then
    log "$name: creating $venv with $("$python" --version) and $core"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$core" 'docker>=7.0' 'requests>=2.31' 'jmespath>=1.0' 'pytest>=8.0' 'hypothesis>=6.100' 'pyyaml'
  fi
  log "$name: $("$venv/bin/ansible" --version | sed -n 1p) on $("$venv/bin/python" --version)"
  "$venv/bin/pytest" -q -p no:randomly -p no:cacheprovider tests/unit
  local incidents
  incidents=$(mktemp -d)
  ANSIBLE_CONFIG=$PWD/ansible.cfg PATH="$PWD/$venv/bin:$PATH" ANSIBLE_NOCOLOR=1 \
    "$venv/bin/ansible-playbook" playbooks/diagnose.yml -i "$INVENTORY" \
    -e "incident_dir=$incidents" -e diagnose_label=compat
  rm -rf "$incidents"
  log "$name: passed in $((SECONDS - start)) s"
}

for w in "${which[@]}"; do
  case $w in
    oldest) run_one oldest python3 'ansible-core>=2.19,<2.20' ;;
    newest) run_one newest "$PY312" 'ansible-core' ;;
    *) echo "unknown: $w (oldest, newest)" >&2; exit 2 ;;
  esac
done

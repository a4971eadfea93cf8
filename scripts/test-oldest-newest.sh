#!/usr/bin/env bash
# Test sre.incident on the oldest and the newest ansible-core this machine can run:
#   oldest: Python 3.11 (python3) + ansible-core 2.19.x, the oldest supported (requires_ansible >=2.19.0:
#           the unit tests use ansible.module_utils.testing, new in 2.19). `make test`'s own .venv is
#           this pair, so `oldest` uses .venv when it matches and makes .venv-oldest/ only when not.
#   newest: Python 3.12 (/root/.pyenv/versions/3.12.1/bin/python3.12) + the newest ansible-core, in .venv-newest/
# Each venv is reused while the hash of what it was made from (scripts/requirements-compat.txt, the
# ansible-core spec, the Python version) is unchanged, as scripts/setup.sh does for .venv: delete it
# (or change the file) to pick up a newer ansible-core release.
# What runs: the unit tests that go through ansible-core's APIs (modules' main() via AnsibleModule,
# the filter and callback plugins; COMPAT_TESTS overrides), `ansible-doc` of every module, and one
# real playbook (diagnose.yml) against the stack named by SRE_TEST_INVENTORY (default:
# inventories/local, the reference stack).
#   bash scripts/test-oldest-newest.sh                 # newest (`make compat`; the oldest is what make test runs)
#   bash scripts/test-oldest-newest.sh oldest newest   # both
set -euo pipefail
cd "$(dirname "$0")/.."

PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
INVENTORY=${SRE_TEST_INVENTORY:-inventories/local}
REQS=scripts/requirements-compat.txt
read -r -a TESTS <<< "${COMPAT_TESTS:-tests/unit/plugins/modules tests/unit/plugins/callback tests/unit/plugins/filter}"
which=("${@:-newest}")
read -r -a which <<< "${which[*]}"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# the venv for python $2 and ansible-core spec $3, (re)made only when its inputs changed
venv_for() {
  local name=$1 python=$2 core=$3 venv=.venv-$1 want
  want=$({ cat "$REQS"; echo "$core"; "$python" --version; } | sha256sum | cut -d' ' -f1)
  if [ ! -x "$venv/bin/ansible-playbook" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    log "$name: creating $venv with $("$python" --version) and $core" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q "$core" -r "$REQS" >&2
    echo "$want" > "$venv/.requirements.sha256"
  fi
  echo "$venv"
}

# .venv when it is the oldest pair already (Python 3.11, ansible-core 2.19.x), else its own venv
oldest_venv() {
  if [ -x .venv/bin/python ] && .venv/bin/python - <<'EOF'
import sys
import ansible.release
sys.exit(0 if sys.version_info[:2] == (3, 11) and ansible.release.__version__.startswith("2.19.") else 1)
EOF
  then echo .venv; else venv_for oldest python3 'ansible-core>=2.19,<2.20'; fi
}

run_one() {
  local name=$1 venv=$2 start=$SECONDS incidents modules listed
  log "$name: $("$venv/bin/ansible" --version | sed -n 1p) on $("$venv/bin/python" --version) ($venv)"
  "$venv/bin/python" -m pytest -q -p no:randomly -p no:cacheprovider "${TESTS[@]}"
  # every module's documentation parses with this ansible-core
  modules=$(find plugins/modules -name '*.py' ! -name '__init__.py' | wc -l)
  listed=$(ANSIBLE_CONFIG=$PWD/ansible.cfg "$venv/bin/ansible-doc" -t module -l sre.incident | grep -c '^sre\.incident\.')
  [ "$listed" -eq "$modules" ] || { echo "ansible-doc lists $listed of $modules modules" >&2; return 1; }
  incidents=$(mktemp -d)
  ANSIBLE_CONFIG=$PWD/ansible.cfg PATH="$PWD/$venv/bin:$PATH" ANSIBLE_NOCOLOR=1 \
    "$venv/bin/ansible-playbook" playbooks/diagnose.yml -i "$INVENTORY" \
    -e "incident_dir=$incidents" -e diagnose_label=compat
  rm -rf "$incidents"
  log "$name: passed in $((SECONDS - start)) s"
}

for w in "${which[@]}"; do
  case $w in
    oldest) run_one oldest "$(oldest_venv)" ;;
    newest) run_one newest "$(venv_for newest "$PY312" 'ansible-core')" ;;
    *) echo "unknown: $w (oldest, newest)" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# ansible-test needs the collection at a path ending in ansible_collections/<ns>/<name>:
# copy the tracked files there and run ansible-test in its own venvs.
#   scripts/ansible-test.sh sanity    the sanity tests (SANITY_ARGS: e.g. "--test pylint")
#   scripts/ansible-test.sh units     the unit tests (tests/unit, with tests/unit/requirements.txt)
set -euo pipefail
command=${1:-sanity}
case "$command" in sanity|units) ;; *) echo "usage: $0 sanity|units" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
root=$(pwd)
dest=${SANITY_ROOT:-/tmp/sre-incident-sanity}/ansible_collections/sre/incident
rm -rf "$dest"; mkdir -p "$dest"
# tracked + new (not ignored) files, so a fresh clone and a working tree behave the same
git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' \
  | rsync -a --from0 --files-from=- ./ "$dest/"
# ansible-test bootstraps pip in its venvs with a script it downloads from a host that is not
# reachable here; give it a stand-in (scripts/get-pip-standin.py) in the cache it reads.
pip_ver=$(grep -oP "pip='\K[0-9.]+" "$root"/.venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -n1)
mkdir -p ~/.ansible/test/cache
cp scripts/get-pip-standin.py ~/.ansible/test/cache/"get_pip_${pip_ver//./_}.py"
cd "$dest"
git init -q . && git add -A >/dev/null   # ansible-test reads the file list from git
py=$("$root/.venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
# shellcheck disable=SC2086 # SANITY_ARGS and UNITS_ARGS hold several words on purpose
if [ "$command" = units ]; then
  "$root/.venv/bin/ansible-test" units --venv --requirements --python "$py" --color no ${UNITS_ARGS:-}
else
  "$root/.venv/bin/ansible-test" sanity --venv --requirements --python "$py" --color no ${SANITY_ARGS:-}
fi

#!/usr/bin/env bash
# The Molecule scenarios of the roles (molecule/<role>/, docs/testing.md), all against one managed
# host (created once by the default scenario) and one copy of the stack (made here, removed after).
#   molecule.sh                   every scenario: molecule test --all
#   molecule.sh detect recover    only these (the default scenario still creates and destroys the host)
# Environment: SRE_MOLECULE_STACK (molroles), SRE_MOLECULE_APP_PORT (3660), SRE_MOLECULE_EDGE_PORT (8660),
# SRE_MOLECULE_SSH_PORT (2260), SRE_MOLECULE_KEEP=1 keeps the stack copy afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
export PATH="$here/.venv/bin:$PATH"
name=${SRE_MOLECULE_STACK:-molroles}
app=${SRE_MOLECULE_APP_PORT:-3660}
edge=${SRE_MOLECULE_EDGE_PORT:-8660}
export SRE_MOLECULE_SSH_PORT=${SRE_MOLECULE_SSH_PORT:-2260}

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/sre-molecule.XXXXXX")
cleanup() {
  local rc=$?
  if [ "${SRE_MOLECULE_KEEP:-0}" != 1 ]; then bash scripts/stack-copy.sh "$name" --down || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "molecule: failed; incident records and results kept in $work" >&2; fi
  log "molecule: $((SECONDS - start)) s"
}
trap cleanup EXIT

log "molecule: stack copy $name (127.0.0.1:$app, edge $edge)"
# from a clean slate: no volumes, bundles, snapshots, lease or ladder history of an earlier run
bash scripts/stack-copy.sh "$name" --down
# a first start seeds the database; on a busy machine compose v1 may give up on the postgres
# healthcheck during the seed, so a second (bounded) try finishes the start (as scripts/staging.sh)
bash scripts/stack-copy.sh "$name" "$app" "$edge" >/dev/null 2>&1 || bash scripts/stack-copy.sh "$name" "$app" "$edge" >/dev/null
export SRE_MOLECULE_INVENTORY=${STACK_COPY_ROOT:-/var/lib/sre-incident/stacks}/$name-inventory
# a fresh directory per run: Molecule's state (shared by the scenarios) and the SSH key in molecule/,
# the incident records and what the converges keep for verify next to it (Molecule prunes its own)
export SRE_MOLECULE_WORK_DIR=$work MOLECULE_EPHEMERAL_DIRECTORY=$work/molecule
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

if [ $# -eq 0 ]; then
  molecule test --all
else
  args=()
  for s in "$@"; do args+=(-s "$s"); done
  molecule test "${args[@]}"
fi

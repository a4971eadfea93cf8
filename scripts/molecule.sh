#!/usr/bin/env bash
# The Molecule scenarios of the roles (molecule/<role>/, docs/testing.md).
#   molecule.sh                   every scenario, in two lanes side by side (below)
#   molecule.sh detect recover    only these, in one lane
#
# A lane is one `molecule test` run with its own copy of the stack (made here, removed after), its own
# managed host (created once by the default scenario, destroyed after its last scenario) and its own
# working directory. Scenarios break their stack on purpose, so two scenarios never share a stack at
# the same time; the two lanes only share the engine and the CPUs, which halves the wall time of a
# run that mostly waits (ansible-playbook start-up, SSH, containers restarting).
# Environment: SRE_MOLECULE_LANES=1 runs everything in one lane; SRE_MOLECULE_KEEP=1 keeps the stack
# copies; SRE_MOLECULE_STACK (molroles) names them <name>1, <name>2.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
export PATH="$here/.venv/bin:$PATH"
stack=${SRE_MOLECULE_STACK:-molroles}
root=${STACK_COPY_ROOT:-/var/lib/sre-incident/stacks}

# lane: stack copy app port, edge port, sshd port of the host, webhook receiver port (+1 stays closed)
lane_ports=("" "3660 8660 2260 8661" "3670 8670 2270 8671")
# the longest scenarios split so that both lanes take about as long
lane_scenarios=("" "default verify degrade detect" "default recover drill diagnose notify postmortem")
if [ $# -gt 0 ] || [ "${SRE_MOLECULE_LANES:-2}" = 1 ]; then
  lanes=(1)
  if [ $# -gt 0 ]; then lane_scenarios[1]="$*"; else lane_scenarios[1]=""; fi
else
  lanes=(1 2)
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/sre-molecule.XXXXXX")
cleanup() {
  local rc=$? n
  if [ "${SRE_MOLECULE_KEEP:-0}" != 1 ]; then
    for n in "${lanes[@]}"; do bash scripts/stack-copy.sh "$stack$n" --down || true; done
  fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "molecule: failed; logs, incident records and results kept in $work" >&2; fi
  log "molecule: $((SECONDS - start)) s"
}
trap cleanup EXIT

# the stack copies, side by side, from a clean slate (no volumes, bundles, snapshots, lease or
# ladder history of an earlier run). A slow first seed of the database is waited for by scripts/stack.sh.
pids=()
for n in "${lanes[@]}"; do
  read -r app edge _ _ <<< "${lane_ports[$n]}"
  log "molecule: lane $n, stack copy $stack$n (127.0.0.1:$app, edge $edge)"
  { bash scripts/stack-copy.sh "$stack$n" --down
    bash scripts/stack-copy.sh "$stack$n" "$app" "$edge" >/dev/null; } & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

run_lane() {
  local n=$1 args=() s app edge ssh webhook t0=$SECONDS
  read -r app edge ssh webhook <<< "${lane_ports[$n]}"
  for s in ${lane_scenarios[$n]}; do args+=(-s "$s"); done
  [ ${#args[@]} -gt 0 ] || args=(--all)
  mkdir -p "$work/lane$n"
  # Molecule's state (shared by the lane's scenarios) and the SSH key in molecule/; the incident
  # records and what the converges keep for verify next to it (Molecule prunes its own directory)
  SRE_MOLECULE_INVENTORY=$root/$stack$n-inventory SRE_MOLECULE_SSH_PORT=$ssh SRE_MOLECULE_WEBHOOK_PORT=$webhook \
  SRE_MOLECULE_CONTAINER=sre-molecule-host-$ssh SRE_MOLECULE_WORK_DIR=$work/lane$n \
  MOLECULE_EPHEMERAL_DIRECTORY=$work/lane$n/molecule ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 \
    molecule test "${args[@]}"
  log "molecule: lane $n passed in $((SECONDS - t0)) s"
}

if [ ${#lanes[@]} -eq 1 ]; then
  run_lane 1
  exit 0
fi
# both lanes at once, each into its own log, printed whole once both are done
pids=()
for n in "${lanes[@]}"; do run_lane "$n" > "$work/lane$n.log" 2>&1 & pids+=($!); done
failed=()
for i in "${!lanes[@]}"; do wait "${pids[$i]}" || failed+=("${lanes[$i]}"); done
for n in "${lanes[@]}"; do
  log "molecule: lane $n (${lane_scenarios[$n]})"
  cat "$work/lane$n.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: lane(s) ${failed[*]} failed" >&2
  exit 1
fi
log "molecule: both lanes passed"

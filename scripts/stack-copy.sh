#!/usr/bin/env bash
# Another copy of the reference stack, side by side with the local one, for parallel test runs
# and drills: its own compose project, ports, state directory and inventory.
#   stack-copy.sh NAME APP_PORT EDGE_PORT      create (or refresh) and start it, print its test env
#                                              (RECSYS_IMAGE_PREFIX=P: with its own images P/*:latest)
#   stack-copy.sh NAME --down                  stop it and remove its volumes and files
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
name=${1:?usage: stack-copy.sh NAME APP_PORT EDGE_PORT | NAME --down}
root=${STACK_COPY_ROOT:-/var/lib/sre-incident/stacks}
dir=$root/$name
inv=$root/$name-inventory
if [ "${2:-}" = "--down" ]; then
  if [ -d "$dir" ]; then
    (cd "$dir" && { docker-compose -p "$name" down -v --remove-orphans >/dev/null 2>&1 || true; })
  fi
  rm -rf "$dir" "$inv" "/var/lib/sre-incident/$name"
  exit 0
fi
app=${2:?APP_PORT}; edge=${3:?EDGE_PORT}
mkdir -p "$dir" "$inv/group_vars/recsys"
cp -r "$here"/examples/recommendation-stack/. "$dir"/
printf 'RECSYS_APP_PORT=%s\nRECSYS_EDGE_PORT=%s\n' "$app" "$edge" >> "$dir/.env"
# RECSYS_IMAGE_PREFIX=NAME: this copy builds and runs its own images (NAME/recommendation-service:latest ...),
# e.g. to try a change of the app beside the shared recsys/* images; kept in .env for every later compose run
if [ -n "${RECSYS_IMAGE_PREFIX:-}" ]; then printf 'RECSYS_IMAGE_PREFIX=%s\n' "$RECSYS_IMAGE_PREFIX" >> "$dir/.env"; fi
cp "$here/inventories/local/hosts.yml" "$inv/hosts.yml"
cp "$here/inventories/local/group_vars/recsys/incident.yml" "$inv/group_vars/recsys/incident.yml"
sed -e "s#^  name: recsys#  name: $name#" -e "s#^  project_dir: .*#  project_dir: $dir#" \
    -e "s#127.0.0.1:3000#127.0.0.1:$app#; s#127.0.0.1:8080#127.0.0.1:$edge#" \
    -e "s#/var/lib/sre-incident/recsys#/var/lib/sre-incident/$name#" \
    "$here/inventories/local/group_vars/recsys/stack.yml" > "$inv/group_vars/recsys/stack.yml"
RECSYS_PROJECT=$name RECSYS_STACK_DIR=$dir bash "$here/scripts/stack.sh" up >/dev/null
cat <<EOT
export SRE_TEST_PROJECT=$name SRE_TEST_INVENTORY=$inv SRE_TEST_STACK_DIR=$dir SRE_TEST_BASE_URL=http://127.0.0.1:$app SRE_TEST_EDGE_URL=http://127.0.0.1:$edge SRE_TEST_STATE_DIR=/var/lib/sre-incident/$name
EOT

#!/usr/bin/env bash
# Another copy of an example stack, side by side with the local one, for parallel test runs
# and drills: its own compose project, ports, state directory and inventory.
#   stack-copy.sh NAME APP_PORT EDGE_PORT      create (or refresh) and start it, print its test env
#                                              (RECSYS_IMAGE_PREFIX=P: the reference stack with its own images P/*:latest)
#   stack-copy.sh NAME --down                  stop it and remove its volumes and files
# STACK=shop copies the second example stack (examples/shop-stack, inventories/local-shop)
# instead of the reference stack (examples/recommendation-stack, inventories/local).
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
case "${STACK:-recsys}" in
  recsys) src=recommendation-stack invsrc=local project=recsys app0=3000 edge0=8080
          ports=("RECSYS_APP_PORT=$app" "RECSYS_EDGE_PORT=$edge") ;;
  shop) src=shop-stack invsrc=local-shop project=shop app0=3100 edge0=8180
        ports=("SHOP_API_PORT=$app" "SHOP_WEB_PORT=$edge") ;;
  *) echo "STACK must be recsys or shop, not '$STACK'" >&2; exit 2 ;;
esac
mkdir -p "$dir" "$inv/group_vars/recsys"
cp -r "$here/examples/$src/." "$dir"/
# the copy is its own project, also for a docker-compose run by hand in its directory
sed -i "/^COMPOSE_PROJECT_NAME=/d" "$dir/.env"
printf 'COMPOSE_PROJECT_NAME=%s\n' "$name" >> "$dir/.env"
printf '%s\n' "${ports[@]}" >> "$dir/.env"
# RECSYS_IMAGE_PREFIX=NAME (the reference stack): this copy builds and runs its own images
# (NAME/recommendation-service:latest ...), e.g. to try a change of the app beside the shared images;
# kept in .env for every later compose run
if [ "${STACK:-recsys}" = recsys ] && [ -n "${RECSYS_IMAGE_PREFIX:-}" ]; then
  printf 'RECSYS_IMAGE_PREFIX=%s\n' "$RECSYS_IMAGE_PREFIX" >> "$dir/.env"
fi
cp "$here/inventories/$invsrc/hosts.yml" "$inv/hosts.yml"
cp "$here/inventories/$invsrc/group_vars/recsys/incident.yml" "$inv/group_vars/recsys/incident.yml"
sed -e "s#^  name: $project\$#  name: $name#" -e "s#^  project_dir: .*#  project_dir: $dir#" \
    -e "s#127.0.0.1:$app0\\b#127.0.0.1:$app#; s#127.0.0.1:$edge0\\b#127.0.0.1:$edge#" \
    -e "s#/var/lib/sre-incident/$project\$#/var/lib/sre-incident/$name#" \
    "$here/inventories/$invsrc/group_vars/recsys/stack.yml" > "$inv/group_vars/recsys/stack.yml"
STACK=${STACK:-recsys} RECSYS_PROJECT=$name RECSYS_STACK_DIR=$dir bash "$here/scripts/stack.sh" up >/dev/null
# the variables tests/integration/conftest.py reads for this stack (SRE_TEST_SHOP_* for the second stack)
v=SRE_TEST_; [ "${STACK:-recsys}" = shop ] && v=SRE_TEST_SHOP_
cat <<EOT
export ${v}PROJECT=$name ${v}INVENTORY=$inv ${v}STACK_DIR=$dir ${v}BASE_URL=http://127.0.0.1:$app ${v}EDGE_URL=http://127.0.0.1:$edge ${v}STATE_DIR=/var/lib/sre-incident/$name
EOT

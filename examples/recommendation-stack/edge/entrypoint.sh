#!/bin/sh
# Start nginx in the mode named by EDGE_MODE (normal|standby|offline, default
# normal). A container restart therefore returns to EDGE_MODE; runtime
# switches are made with `edge-mode <mode>`.
set -eu
mode=${EDGE_MODE:-normal}
edge-mode --apply "$mode" || { echo "edge-entrypoint: invalid EDGE_MODE=$mode" >&2; exit 2; }
echo "edge-entrypoint: starting nginx in mode $mode" >&2
exec nginx -g 'daemon off;'

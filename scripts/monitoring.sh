#!/usr/bin/env bash
# The monitoring example (examples/monitoring) on this machine: Prometheus, Alertmanager and the
# blackbox exporter from Debian's packages (scripts/setup.sh installs them without starting their
# system services), each started here on a loopback port with its own configuration and storage.
#   monitoring.sh up       render the configuration, start the three daemons, wait until ready
#   monitoring.sh down     stop the daemons this script started (by their pid files)
#   monitoring.sh status   say which are running, and where
# Environment (all optional):
#   SRE_MON_DIR               configuration, storage, logs and pid files (default /var/lib/sre-incident/monitoring)
#   SRE_MON_TARGETS           the stacks and timings (default examples/monitoring/targets.yml)
#   SRE_MON_EDA_URL           where Alertmanager posts (default: eda_url of the targets file)
#   SRE_MON_PROMETHEUS_PORT   default 19090
#   SRE_MON_ALERTMANAGER_PORT default 19093
#   SRE_MON_BLACKBOX_PORT     default 19115
#   SRE_MON_WAIT              seconds to wait for each daemon to be ready (default 60)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${SRE_MON_DIR:-/var/lib/sre-incident/monitoring}
targets=${SRE_MON_TARGETS:-$here/examples/monitoring/targets.yml}
prom_port=${SRE_MON_PROMETHEUS_PORT:-19090}
am_port=${SRE_MON_ALERTMANAGER_PORT:-19093}
bb_port=${SRE_MON_BLACKBOX_PORT:-19115}
wait_s=${SRE_MON_WAIT:-60}
python=${PYTHON:-$here/.venv/bin/python}
[ -x "$python" ] || python=python3
DAEMONS=(blackbox alertmanager prometheus)

log() { printf '==> %s\n' "$*"; }

pid_of() {  # the pid in the daemon's pid file, if that process is still the daemon we started
  local f=$dir/run/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q "$dir" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

ready_url() {
  case $1 in
    blackbox) echo "http://127.0.0.1:$bb_port/-/healthy" ;;
    alertmanager) echo "http://127.0.0.1:$am_port/-/ready" ;;
    prometheus) echo "http://127.0.0.1:$prom_port/-/ready" ;;
  esac
}

alive() {  # the process runs (not gone, not a zombie); its command line may still be ours before its exec
  [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

wait_ready() {  # poll the daemon's readiness endpoint, bounded; $2: the pid just started
  local name=$1 pid=$2 deadline=$((SECONDS + wait_s))
  until curl -fsS -o /dev/null "$(ready_url "$name")" 2>/dev/null; do
    if ! alive "$pid"; then
      echo "$name exited; its log ($dir/logs/$name.log):" >&2; tail -20 "$dir/logs/$name.log" >&2; return 1
    fi
    [ $SECONDS -lt $deadline ] || { echo "$name not ready after ${wait_s}s" >&2; return 1; }
    sleep 0.2
  done
}

start() {
  local name=$1; shift
  if pid_of "$name" >/dev/null; then
    log "$name already running (pid $(pid_of "$name"))"; return 0
  fi
  setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/run/$name.pid"
  wait_ready "$name" $!
  log "$name ready: $(ready_url "$name" | sed 's#/-/.*##')"
}

up() {
  for bin in prometheus prometheus-alertmanager prometheus-blackbox-exporter; do
    command -v "$bin" >/dev/null || { echo "$bin is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
  done
  mkdir -p "$dir/config" "$dir/prometheus" "$dir/alertmanager" "$dir/logs" "$dir/run"
  "$python" "$here/examples/monitoring/render.py" "$targets" "$dir/config" \
    --alertmanager "127.0.0.1:$am_port" --blackbox "127.0.0.1:$bb_port" ${SRE_MON_EDA_URL:+--eda-url "$SRE_MON_EDA_URL"} >/dev/null
  promtool check config "$dir/config/prometheus.yml" >/dev/null
  amtool check-config "$dir/config/alertmanager.yml" >/dev/null
  trap 'down >&2' EXIT   # a daemon that does not come up: stop the ones started, leave nothing running
  start blackbox prometheus-blackbox-exporter --config.file="$dir/config/blackbox.yml" \
    --web.listen-address="127.0.0.1:$bb_port"
  # --cluster.listen-address= turns the gossip cluster off (its default port 9094 is shared)
  start alertmanager prometheus-alertmanager --config.file="$dir/config/alertmanager.yml" \
    --storage.path="$dir/alertmanager" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address=
  start prometheus prometheus --config.file="$dir/config/prometheus.yml" --storage.tsdb.path="$dir/prometheus" \
    --web.listen-address="127.0.0.1:$prom_port" --web.enable-lifecycle
  trap - EXIT
}

down() {
  local name pid deadline
  for name in prometheus alertmanager blackbox; do
    if pid=$(pid_of "$name"); then
      kill "$pid"
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "$name stopped"
    fi
    rm -f "$dir/run/$name.pid"
  done
}

status() {
  local name rc=0
  for name in "${DAEMONS[@]}"; do
    if pid_of "$name" >/dev/null; then echo "$name running (pid $(pid_of "$name")): $(ready_url "$name" | sed 's#/-/.*##')"
    else echo "$name not running"; rc=3; fi
  done
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

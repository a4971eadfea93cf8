#!/usr/bin/env bash
# Shared first step of `make demo` and `make test`: make this machine able to run the
# collection and its reference stack. Idempotent; installs only what is missing.
#   - Docker engine + compose CLI (Debian packages), debootstrap, rsync, chromium, nodejs + npm,
#     Java 17 (for ansible-rulebook), Prometheus, Alertmanager and the blackbox exporter (no daemon
#     started), if absent
#   - a running dockerd
#   - the base image debian:bookworm-slim (scripts/base-image.sh)
#   - the controller virtualenv .venv/ from requirements-dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
# the drills' latency fault runs nsenter (util-linux), tc, ip (iproute2) and iptables on the managed host, this
# machine included
{ command -v tc && command -v ip; } >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
command -v nsenter >/dev/null 2>&1 || need_pkgs+=(util-linux)
# the drills reach their staging hosts over SSH (scripts/staging.sh, tests/integration/test_drills.py)
{ command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || need_pkgs+=(openssh-client)
# headless Chromium renders the postmortem's HTML in the tests
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
# the second example stack's Node.js service: its npm packages are installed on this host
command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
# ansible-test's shellcheck sanity test needs it (it is skipped, not passed, without it)
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
# ansible-rulebook (the EDA rulebook, run by `make test`) needs a Java 17 runtime; a fresh Debian has none
command -v java >/dev/null 2>&1 || need_pkgs+=(openjdk-17-jre-headless)
# the monitoring example (examples/monitoring, scripts/monitoring.sh starts them on loopback ports)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_pkgs+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need_pkgs+=(prometheus-blackbox-exporter)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # no package may start its system service (prometheus & co. would take the default ports):
  # policy-rc.d says no, and is removed afterwards only if this script created it
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  if trap -p EXIT | grep -q policy-rc.d; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /var/log/dockerd.log" >&2; exit 1; }
fi

bash scripts/base-image.sh

PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/ansible-playbook ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
log "setup done: ansible-core $(.venv/bin/python -c 'import ansible.release as r; print(r.__version__)')"

#!/bin/sh
# Start sshd in the foreground on ${SSH_LISTEN:-127.0.0.1}:${SSH_PORT:-22} with the key in
# /staging/authorized_keys (mounted read-only by scripts/staging.sh).
set -eu
install -m 0600 /staging/authorized_keys /root/.ssh/authorized_keys
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
# Marks a managed host as production for the drill refusal (see docs/drills.md).
if [ "${SRE_INCIDENT_ENVIRONMENT:-}" = production ]; then : > /etc/sre-incident/production; fi
exec /usr/sbin/sshd -D -e -p "${SSH_PORT:-22}" -o "ListenAddress=${SSH_LISTEN:-127.0.0.1}"

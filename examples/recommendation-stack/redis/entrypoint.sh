#!/bin/sh
# redis-server as user redis, data (RDB snapshots) in /data.
# Default arguments (Dockerfile CMD / compose command):
#   --save 60 1 --dir /data --appendonly no
set -eu
mkdir -p /data
chown redis:redis /data
exec setpriv --reuid=redis --regid=redis --init-groups \
  redis-server --bind 0.0.0.0 --protected-mode no --port 6379 \
    --maxmemory "${REDIS_MAXMEMORY:-128mb}" --maxmemory-policy allkeys-lru \
    --dbfilename dump.rdb --logfile '' "$@"

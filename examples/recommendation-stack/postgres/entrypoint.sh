#!/usr/bin/env bash
# PostgreSQL 15 entrypoint for the recommendation stack.
#
# On the first start with an empty data volume: initdb (superuser "postgres",
# password POSTGRES_PASSWORD, scram-sha-256 for host connections, trust for the
# local Unix socket so `docker exec ... psql -U postgres` works), create the
# app role and database recommendation_db, load seed.sql. Then exec the server
# as user postgres (PID 1, so docker stop's signal reaches it directly).
#
# Env: POSTGRES_PASSWORD (required), POSTGRES_DB (recommendation_db),
#      POSTGRES_APP_USER (recsys), POSTGRES_MAX_CONNECTIONS (50).
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
DB=${POSTGRES_DB:-recommendation_db}
APP_USER=${POSTGRES_APP_USER:-recsys}
MAX_CONN=${POSTGRES_MAX_CONNECTIONS:-50}
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"

log() { printf '%s postgres-entrypoint: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  log "empty data directory: initialising $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  # initdb only allows localhost over TCP; the app connects over the network.
  printf '%s\n' '# recsys: any address, password (scram) required' \
    'host all all 0.0.0.0/0 scram-sha-256' 'host all all ::/0 scram-sha-256' >> "$PGDATA/pg_hba.conf"

  # Temporary server on the Unix socket only, so nothing (not even the
  # healthcheck, which uses TCP) sees the database before it is seeded.
  as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -q -U postgres)
  # The password goes through a psql variable (:'pw' quotes it), never argv.
  "${psql[@]}" -v app_user="$APP_USER" -v pw="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'pw';
SQL
  "${psql[@]}" -c "CREATE DATABASE \"$DB\" OWNER \"$APP_USER\""
  "${psql[@]}" -d "$DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
  # Load the seed as the app role so the app owns its schema.
  "${psql[@]}" -d "$DB" -c "SET ROLE \"$APP_USER\"" -f /usr/local/share/recsys/seed.sql >/dev/null
  as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "database $DB created and seeded"
fi

log "starting PostgreSQL (max_connections=$MAX_CONN)"
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  postgres -D "$PGDATA" \
    -c listen_addresses='*' \
    -c max_connections="$MAX_CONN" \
    -c password_encryption=scram-sha-256 \
    -c shared_preload_libraries=pg_stat_statements \
    -c log_min_duration_statement=200 \
    -c log_connections=off \
    -c log_line_prefix='%m [%p] %q%u@%d ' \
    "$@"

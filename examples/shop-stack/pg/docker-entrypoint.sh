#!/bin/sh
# First start: initdb into the (empty) data directory, create the application role and the
# database, load /docker-entrypoint-initdb.d/*.sql as that role. Then run the server in the
# foreground as PID 1.
#   SHOP_APP_PASSWORD  password of the application role (required on the first start)
#   SHOP_DB / SHOP_APP_USER  database and role (shop, shop_app)
set -eu
PGDATA=/var/lib/postgresql/15/main
CONF=/etc/postgresql/15/main/postgresql.conf
DB=${SHOP_DB:-shop}
APP_USER=${SHOP_APP_USER:-shop_app}
PORT=$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$CONF")

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${SHOP_APP_PASSWORD:?SHOP_APP_PASSWORD must be set for the first start}"
  echo "initialising $PGDATA" >&2
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  # the cluster's configuration lives in /etc/postgresql/15/main (Debian layout)
  rm -f "$PGDATA/postgresql.conf" "$PGDATA/pg_hba.conf" "$PGDATA/pg_ident.conf"
  pg_ctl -D "$PGDATA" -o "-c config_file=$CONF -c listen_addresses=''" -w -t 120 start >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -U postgres -d postgres \
    -v app_user="$APP_USER" -v pw="$SHOP_APP_PASSWORD" -v db="$DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app_user";
SQL
  for f in /docker-entrypoint-initdb.d/*.sql; do
    echo "loading $f" >&2
    psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -U postgres -d "$DB" -c "SET ROLE \"$APP_USER\"" -f "$f" >/dev/null
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "database $DB ready" >&2
fi

exec postgres -D "$PGDATA" -c config_file="$CONF" "$@"

#!/bin/sh
# Start PostgreSQL on $PGDATA, creating the cluster on the first start: superuser POSTGRES_USER (default postgres)
# with POSTGRES_PASSWORD (password logins only, SCRAM), and the databases in POSTGRES_DATABASES (space-separated).
# Listens on POSTGRES_LISTEN_ADDRESSES (default *) port POSTGRES_PORT (default 5432); arguments go to postgres.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
bin=/usr/lib/postgresql/15/bin
user="${POSTGRES_USER:-postgres}"
port="${POSTGRES_PORT:-5432}"

umask 077
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  # Clients on other hosts log in with a password too (initdb only lets in the loopback addresses).
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -p $port" -w start >/dev/null
  for database in ${POSTGRES_DATABASES:-}; do
    case "$database" in
      *[!a-z0-9_]* | [!a-z_]*) echo "POSTGRES_DATABASES: $database is not a lower-case identifier" >&2; exit 2 ;;
    esac
    PGPASSWORD="$POSTGRES_PASSWORD" "$bin/psql" -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$port" \
      -U "$user" -d postgres -c "CREATE DATABASE $database"
  done
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "created the cluster in $PGDATA with databases: ${POSTGRES_DATABASES:-none}"
fi

exec "$bin/postgres" -D "$PGDATA" -c listen_addresses="${POSTGRES_LISTEN_ADDRESSES:-*}" -p "$port" "$@"

#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, on loopback.
#
#   scripts/postgres.sh start   # prints: export ACCOUNTS_TEST_POSTGRES_URL=...
#   scripts/postgres.sh stop
#   scripts/postgres.sh url
#
# PostgreSQL refuses to run as root, so as root the server runs as `nobody`, with
# its data in a fresh directory under /tmp that `nobody` owns. Durability is off
# (fsync, synchronous_commit): the data is disposable and the tests run faster.
set -euo pipefail

port="${ACCOUNTS_PG_PORT:-54329}"
data="${TMPDIR:-/tmp}/accounts-pg-${port}"
pg_bin="${PG_BIN:-$(dirname "$(command -v pg_ctl 2>/dev/null || echo /usr/local/bin/pg_ctl)")}"
url="postgresql+asyncpg://postgres@127.0.0.1:${port}/postgres"

as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    [ -x "$pg_bin/pg_ctl" ] || { echo "postgres.sh: pg_ctl not found (set PG_BIN)" >&2; exit 1; }
    if as_db_user "$pg_bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "export ACCOUNTS_TEST_POSTGRES_URL=$url"
      exit 0
    fi
    rm -rf "$data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown nobody:nogroup "$data"
    chmod 700 "$data"
    as_db_user "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    as_db_user "$pg_bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o \
      "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 \
       -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    echo "export ACCOUNTS_TEST_POSTGRES_URL=$url"
    ;;
  stop)
    if [ -d "$data" ]; then
      as_db_user "$pg_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
      rm -rf "$data"
    fi
    ;;
  url)
    echo "$url"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Run the test suite against every configured database.
#
# ACCOUNTS_TEST_DATABASES picks the backends (default: sqlite,postgresql).
# PostgreSQL tests use ACCOUNTS_TEST_POSTGRES_URL and Redis tests
# ACCOUNTS_TEST_REDIS_URL; when one is unset and the server's binaries are
# installed, a throwaway server is started here and stopped afterwards. Without
# either, those tests skip with the reason (and under CI=true a skip fails).
set -euo pipefail
cd "$(dirname "$0")/.."

started_pg=""
started_redis=""
cleanup() {
  [ -n "$started_pg" ] && scripts/postgres.sh stop
  [ -n "$started_redis" ] && scripts/redis.sh stop
  true
}
trap cleanup EXIT

backends="${ACCOUNTS_TEST_DATABASES:-sqlite,postgresql}"
if [[ "$backends" == *postgresql* && -z "${ACCOUNTS_TEST_POSTGRES_URL:-}" ]]; then
  if command -v pg_ctl >/dev/null 2>&1 || [ -x /usr/local/bin/pg_ctl ]; then
    eval "$(scripts/postgres.sh start)"
    export ACCOUNTS_TEST_POSTGRES_URL
    started_pg=1
  fi
fi

if [ -z "${ACCOUNTS_TEST_REDIS_URL:-}" ] && command -v redis-server >/dev/null 2>&1; then
  eval "$(scripts/redis.sh start)"
  export ACCOUNTS_TEST_REDIS_URL
  started_redis=1
fi

# Two processes by default: the suite is mostly argon2 and database round trips,
# and this machine has two cores. ACCOUNTS_TEST_WORKERS=0 runs in one process.
workers="${ACCOUNTS_TEST_WORKERS:-2}"
xdist=()
[ "$workers" != "0" ] && xdist=(-n "$workers")

set +e
.venv/bin/python -m pytest "${xdist[@]}" "$@"
status=$?
set -e
# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
if [ "$status" -eq 5 ]; then
  echo "test.sh: no tests were collected" >&2
  exit 1
fi
exit "$status"

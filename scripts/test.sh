#!/usr/bin/env bash
# Run the test suite against every configured database.
#
# ACCOUNTS_TEST_DATABASES picks the backends (default: sqlite,postgresql).
# PostgreSQL tests use ACCOUNTS_TEST_POSTGRES_URL; when it is unset and the
# PostgreSQL binaries are installed, a throwaway server is started here and
# stopped afterwards. Without either, PostgreSQL tests skip with the reason (and
# under CI=true a skip fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."

started_pg=""
cleanup() { [ -n "$started_pg" ] && scripts/postgres.sh stop; true; }
trap cleanup EXIT

backends="${ACCOUNTS_TEST_DATABASES:-sqlite,postgresql}"
if [[ "$backends" == *postgresql* && -z "${ACCOUNTS_TEST_POSTGRES_URL:-}" ]]; then
  if command -v pg_ctl >/dev/null 2>&1 || [ -x /usr/local/bin/pg_ctl ]; then
    eval "$(scripts/postgres.sh start)"
    export ACCOUNTS_TEST_POSTGRES_URL
    started_pg=1
  fi
fi

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
if [ "$status" -eq 5 ]; then
  echo "test.sh: no tests were collected" >&2
  exit 1
fi
exit "$status"

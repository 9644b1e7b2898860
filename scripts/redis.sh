#!/usr/bin/env bash
# A throwaway Redis server for tests, on loopback, with no persistence.
#
#   scripts/redis.sh start   # prints: export ACCOUNTS_TEST_REDIS_URL=...
#   scripts/redis.sh stop
#   scripts/redis.sh url
set -euo pipefail

port="${ACCOUNTS_REDIS_PORT:-63799}"
dir="${TMPDIR:-/tmp}/accounts-redis-${port}"
url="redis://127.0.0.1:${port}/0"

case "${1:-start}" in
  start)
    command -v redis-server >/dev/null 2>&1 || { echo "redis.sh: redis-server not found" >&2; exit 1; }
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
      echo "export ACCOUNTS_TEST_REDIS_URL=$url"
      exit 0
    fi
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 1 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    redis-cli -p "$port" ping >/dev/null
    echo "export ACCOUNTS_TEST_REDIS_URL=$url"
    ;;
  stop)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  url)
    echo "$url"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac

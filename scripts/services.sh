#!/usr/bin/env bash
# PostgreSQL and Redis on localhost for the second test stage.
#   services.sh check   exit 0 when both answer, else print why and exit 1
#   services.sh start   start whichever is down (the machine's own start commands), then check
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

wait_for() {
    local name="$1" probe="$2" tries=30
    until "$probe"; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "$name did not answer on 127.0.0.1 within 30 s." >&2
            return 1
        fi
        sleep 1
    done
}

check() {
    local ok=0
    if ! command -v pg_isready >/dev/null 2>&1; then
        echo "PostgreSQL client tools (pg_isready) are not installed." >&2
        ok=1
    elif ! pg_up; then
        echo "PostgreSQL is not answering on 127.0.0.1:5432 (pg_isready -h 127.0.0.1)." >&2
        ok=1
    fi
    if ! command -v redis-cli >/dev/null 2>&1; then
        echo "redis-cli is not installed." >&2
        ok=1
    elif ! redis_up; then
        echo "Redis is not answering on 127.0.0.1:6379 (redis-cli -h 127.0.0.1 ping)." >&2
        ok=1
    fi
    return $ok
}

start() {
    if command -v pg_isready >/dev/null 2>&1 && ! pg_up && [ -d /etc/postgresql ]; then
        echo "Starting PostgreSQL"
        # shellcheck disable=SC2046  # one cluster version directory, as the machine image has it
        pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start || true
        wait_for PostgreSQL pg_up || true
    fi
    if command -v redis-server >/dev/null 2>&1 && ! redis_up; then
        echo "Starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
        wait_for Redis redis_up || true
    fi
    check
}

case "${1:-check}" in
    check) check ;;
    start) start ;;
    *)
        echo "usage: $0 check|start" >&2
        exit 2
        ;;
esac

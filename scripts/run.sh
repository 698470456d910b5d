#!/usr/bin/env bash
# `make run`: install if needed, migrate, collect static files if they changed, seed the demo data,
# then run one Celery worker and the gunicorn web server until Ctrl-C / SIGTERM stops both.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${PORT:-8000}"
export SYNTHGATE_ENV="${SYNTHGATE_ENV:-development}"

bash "$ROOT/scripts/bootstrap.sh"

# Fail early, with the fix, rather than after gunicorn's five bind retries.
if ! "$PY" -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1])))' "$PORT" 2>/dev/null; then
    die "Port $PORT is already in use (another make run?). Stop that, or choose another port: PORT=$((PORT + 1)) make run"
fi

log "Applying database migrations"
"$PY" manage.py migrate --noinput

# collectstatic only when the static sources, the installed packages or the environment changed
# since the last collection (development serves from the finders anyway; production needs it).
static_fingerprint() {
    {
        install_hash
        printf '%s\n' "$SYNTHGATE_ENV"
        find static -type f -printf '%P %s %T@\n' 2>/dev/null | sort
    } | sha256sum | cut -d' ' -f1
}
static_root="$("$PY" manage.py shell --verbosity 0 -c 'from django.conf import settings; print(settings.STATIC_ROOT)' | tail -n 1)"
fingerprint="$(static_fingerprint)"
if [ "$(cat "$static_root/.synthgate-collected" 2>/dev/null)" != "$fingerprint" ]; then
    log "Collecting static files into $static_root"
    "$PY" manage.py collectstatic --noinput --verbosity 0
    printf '%s\n' "$fingerprint" >"$static_root/.synthgate-collected"
fi

logins=""
if [ "$SYNTHGATE_ENV" = production ]; then
    log "SYNTHGATE_ENV=production: no demo users or data are created"
else
    log "Seeding demo users and the demo dataset"
    seeded="$("$PY" manage.py seed_demo)"
    printf '%s\n' "$seeded"
    logins="$(printf '%s\n' "$seeded" | sed -n '/^Demo logins/,$p')"
fi

# Each child gets its own process group (job control on), so a Ctrl-C reaches only this script,
# which then shuts both down in order instead of both receiving the signal at once.
set -m
worker_pid=""
web_pid=""

# shellcheck disable=SC2329  # invoked from the traps below
stop_all() {
    trap - INT TERM EXIT
    # Keep going if our output pipe is gone (`make run | tee log` interrupted with Ctrl-C).
    trap '' PIPE
    set +e
    log "Stopping the web server and the worker"
    for pid in $web_pid $worker_pid; do kill -TERM "$pid" 2>/dev/null; done
    # Celery's warm shutdown lets the running task step finish; after 15 s stop it cold
    # (tasks are acks_late, so an interrupted job is redelivered, and the database has its state).
    local deadline=$((SECONDS + 15))
    while [ "$SECONDS" -lt "$deadline" ] && { kill -0 "$worker_pid" || kill -0 "$web_pid"; } 2>/dev/null; do
        sleep 0.5
    done
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        echo "The worker is still busy after 15 s; stopping it now (an unfinished job is retried later)."
        kill -QUIT "$worker_pid" 2>/dev/null && sleep 2
    fi
    for pid in $web_pid $worker_pid; do kill -KILL -- "-$pid" 2>/dev/null; done
    wait 2>/dev/null
    echo "Stopped."
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# One machine: the worker also runs beat (-B), which sends the job reconciler every minute.
# At scale, run exactly one `make beat` and any number of `make worker` (docs/deploy.md).
mapfile -t worker < <(worker_command; printf '%s\n' -B --schedule "${SYNTHGATE_VAR_DIR:-$ROOT/var}/celerybeat-schedule")
log "Starting the Celery worker (queues synthesis, validation, housekeeping) with the periodic schedule (beat)"
"${worker[@]}" &
worker_pid=$!

log "Starting gunicorn on 0.0.0.0:$PORT"
"$VENV/bin/gunicorn" portal.wsgi:application --config "$ROOT/gunicorn.conf.py" \
    --bind "0.0.0.0:$PORT" --workers 1 --threads 4 --keep-alive 15 --timeout 120 --graceful-timeout 10 --no-control-socket \
    --access-logfile - &
web_pid=$!

# Print the banner once the site answers, so it is not lost among the startup logs.
if "$PY" - "$PORT" "$web_pid" <<'PY'; then
import os
import sys
import time
import urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY
    cat <<BANNER

------------------------------------------------------------------------------
 SynthGate is running: http://127.0.0.1:$PORT/   (listening on 0.0.0.0:$PORT)
${logins:+$logins
}
 Press Ctrl-C to stop the web server and the worker.
------------------------------------------------------------------------------

BANNER
else
    echo "WARNING: http://127.0.0.1:$PORT/healthz did not answer; see the log above." >&2
fi

# Return when either process exits (a crash, or the port already in use); the EXIT trap stops the other.
status=0
wait -n "$worker_pid" "$web_pid" || status=$?
echo "A server process exited (status $status); shutting down." >&2
exit "$status"

#!/usr/bin/env bash
# `make test`: lint, migrations check, mypy on the checked packages, the whole suite on SQLite + the
# filesystem broker, then the integration/services tests again on PostgreSQL + Redis. Every stage
# runs; the summary at the end lists what failed and the exit status is non-zero if anything did.
#
# Under CI=true PostgreSQL and Redis are started if they are down and the second stage is required;
# elsewhere it is skipped, with the reason, when they are not reachable.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

IN_CI=false
[ "${CI:-}" = true ] && IN_CI=true

bash "$ROOT/scripts/bootstrap.sh"
export PATH="$VENV/bin:$PATH"

# Tests never touch the development database, broker folders or stored files.
export SYNTHGATE_ENV=test
export SYNTHGATE_VAR_DIR="${SYNTHGATE_TEST_VAR_DIR:-$ROOT/var/test}"
unset DATABASE_URL CELERY_BROKER_URL SYNTHGATE_STORAGE_DIR SYNTHGATE_BROKER_DIR DJANGO_STATIC_ROOT
rm -rf "$SYNTHGATE_VAR_DIR"
mkdir -p "$SYNTHGATE_VAR_DIR"

# The mypy stage checks these paths (config: [tool.mypy] in pyproject.toml); widen the list as
# modules come clean. tests/test_actor_type.py reads it from here: keep one word per path. Catalog
# and approvals/services are listed by module until the rest is clean (catalog views, api, cards;
# approvals/services/overrides.py); then list them as packages.
MYPY_CHECKED=(
    core audit
    catalog/models.py catalog/services.py catalog/pipeline.py catalog/selectors.py catalog/tasks.py
    catalog/reports.py catalog/downloads.py catalog/privacy.py
    approvals/services approvals/bakeoff.py approvals/models.py approvals/selectors.py approvals/rules.py
    generation/services generation/models.py generation/policies.py generation/selectors.py
    generation/synthesizers/__init__.py
    portal/services portal/models.py portal/auth_tokens.py validation/services.py
    tests/test_actor_type.py
)

failed=()
results=()
stage() {
    local name="$1"
    shift
    local started=$SECONDS status=0
    log "$name"
    "$@" || status=$?
    results+=("$(printf '%-52s %s (%d s)' "$name" "$([ $status -eq 0 ] && echo ok || echo "FAILED, exit $status")" $((SECONDS - started)))")
    [ $status -eq 0 ] || failed+=("$name")
}

# pytest exit 5 means no test was collected: always a failure for the full suite.
# The SQLite stage runs in SYNTHGATE_TEST_PROCESSES pytest-xdist processes (default 2, CI's cores;
# 0 runs in this process): each has its own test database and var folder (portal/settings.py), so
# their worker processes, broker folders and stored files never meet. Halves the stage on 2 cores
# (2,641 tests: about 1,100 s in one process, 606 s in two, measured 2026-12-04).
pytest_all() {
    local processes="${SYNTHGATE_TEST_PROCESSES:-2}"
    if [ "$processes" -gt 0 ]; then
        pytest -p no:cacheprovider -n "$processes" "$@"
    else
        pytest -p no:cacheprovider "$@"
    fi
}

# The PostgreSQL/Redis stage, in one process (its tests share Redis db 15). Exit 5 (nothing marked `integration or services`) means the marker
# selection is broken: a failure under CI, a warning elsewhere.
pytest_services() {
    local status=0
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/synthgate" \
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15" \
        pytest -p no:cacheprovider -m "integration or services" "$@" || status=$?
    if [ $status -eq 5 ]; then
        echo "No test is marked 'integration or services', so nothing ran against PostgreSQL/Redis." >&2
        $IN_CI && return 5
        return 0
    fi
    return $status
}

# Redis keeps nothing on disk, but a run that was killed can leave tasks in db 15: start empty.
flush_test_broker() {
    python -c 'import redis; redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()'
}

total_started=$SECONDS
stage "ruff check" ruff check .
stage "ruff format --check" ruff format --check .
stage "makemigrations --check" python manage.py makemigrations --check --dry-run
stage "mypy (core, audit, catalog, services)" mypy "${MYPY_CHECKED[@]}"
stage "pytest: whole suite (SQLite, filesystem broker)" pytest_all "$@"

services_stage="pytest: integration or services (PostgreSQL, Redis)"
if $IN_CI; then
    log "PostgreSQL and Redis (required under CI)"
    if bash "$ROOT/scripts/services.sh" start; then
        flush_test_broker || echo "WARNING: could not empty Redis db 15" >&2
        stage "$services_stage" pytest_services "$@"
    else
        results+=("$(printf '%-52s %s' "$services_stage" "FAILED, PostgreSQL/Redis unreachable")")
        failed+=("$services_stage (PostgreSQL/Redis unreachable)")
    fi
elif reason="$(bash "$ROOT/scripts/services.sh" check 2>&1)"; then
    flush_test_broker || echo "WARNING: could not empty Redis db 15" >&2
    stage "$services_stage" pytest_services "$@"
else
    results+=("$(printf '%-52s %s' "$services_stage" "SKIPPED")")
    echo
    echo "SKIPPED the PostgreSQL/Redis stage: $(echo "$reason" | tr '\n' ' ')"
    echo "(It is required under CI=true, where the services are started first; see docs/deploy.md.)"
fi

log "Summary ($((SECONDS - total_started)) s)"
printf '  %s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "All test stages passed."

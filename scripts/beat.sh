#!/usr/bin/env bash
# `make beat`: the single Celery beat process of a scaled-out deployment. It only sends the
# periodic job reconciler; run exactly one (two would double the ticks, which is harmless but
# wasteful: the reconciler itself is safe to run concurrently).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/bootstrap.sh"
log "Starting Celery beat (job reconciler every ${SYNTHGATE_RECONCILE_SECONDS:-60} s)"
exec "$VENV/bin/celery" -A portal beat --loglevel=INFO --schedule "${SYNTHGATE_VAR_DIR:-$ROOT/var}/celerybeat-schedule"

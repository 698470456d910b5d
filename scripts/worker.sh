#!/usr/bin/env bash
# `make worker`: one Celery worker (every queue, or those in SYNTHGATE_WORKER_QUEUES), for extra machines.
# It needs the same DATABASE_URL, CELERY_BROKER_URL, SYNTHGATE_STORAGE_DIR and secrets as the web
# server (see docs/deploy.md); the web machine runs the migrations, so this script does not.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/bootstrap.sh"
mapfile -t worker < <(worker_command)
log "Starting the Celery worker: ${worker[*]#"$VENV/bin/"}"
exec "${worker[@]}"

#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the pinned dependencies, unless the install stamp shows
# this exact pyproject.toml + constraints.txt is already installed. Safe to run every time.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_venv

# `make run` and `make test` started together must not install into one venv at the same time.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV/.synthgate-install.lock"
    flock 9
fi

wanted="$(install_hash)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    exit 0
fi

started=$SECONDS
log "Installing dependencies into $VENV (the first time takes a few minutes)"
rm -f "$STAMP"
install_torch
mapfile -t requirements < <(pyproject_requirements)
log "Installing the pinned dependencies from pyproject.toml with constraints.txt"
"$PY" -m pip install --quiet --progress-bar off -c constraints.txt "${requirements[@]}"
"$PY" -m pip check
warn_if_cuda_torch
printf '%s\n' "$wanted" >"$STAMP"
log "Dependencies installed in $((SECONDS - started)) s"

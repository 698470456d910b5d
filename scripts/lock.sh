#!/usr/bin/env bash
# `make lock`: regenerate constraints.txt from what is installed in .venv.
# The direct pins in pyproject.toml are installed first without the old constraints, so an edited
# pin takes effect; transitive packages that still fit stay at their current versions.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_venv
install_torch
mapfile -t requirements < <(pyproject_requirements)
log "Installing the direct pins from pyproject.toml"
"$PY" -m pip install --quiet --progress-bar off "${requirements[@]}"
"$PY" -m pip check

log "Writing constraints.txt"
tmp="$(mktemp)"
{
    echo "# Every transitive dependency, pinned as resolved and verified together (pip check clean)."
    echo "# Regenerate: make lock. torch is installed first, from its CPU wheel, by the Makefile."
    "$PY" -m pip freeze --exclude-editable \
        --exclude torch --exclude pip --exclude setuptools --exclude wheel
} >"$tmp"
mv "$tmp" constraints.txt
chmod 644 constraints.txt
# The venv now matches the new lock exactly; record that so the next `make run` does not reinstall.
install_hash >"$STAMP"
git --no-pager diff --stat -- constraints.txt 2>/dev/null || true

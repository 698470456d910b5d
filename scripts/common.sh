# Sourced by the other scripts: paths, environment and the virtualenv helpers. Not run directly.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# shellcheck disable=SC2034  # used by the scripts that source this file
STAMP="$VENV/.synthgate-install-stamp"

# SDV writes a logger config under $XDG_DATA_HOME/sdv at import; keep it inside the checkout
# instead of the user's home (and out of CI's home directory).
export XDG_DATA_HOME="$ROOT/var/xdg"
mkdir -p "$XDG_DATA_HOME"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# The interpreter to build .venv with: $PYTHON if set, else python3.11, else a python3 that is 3.11.
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    if [ -x "$PY" ] && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        return 0
    fi
    local base
    base="$(find_python)" || die "Python 3.11 not found (tried \$PYTHON, python3.11, python3); install it or set PYTHON=/path/to/python3.11."
    if [ -e "$VENV" ]; then
        log "Rebuilding $VENV: its interpreter is missing or is not Python 3.11"
        "$base" -m venv --clear "$VENV"
    else
        log "Creating $VENV with $base"
        "$base" -m venv "$VENV"
    fi
}

# Requirements from pyproject.toml, one per line: the runtime dependencies, then the dev extra.
# pyproject.toml is the single source of the direct pins; nothing here repeats them.
pyproject_requirements() {
    "$PY" - <<'PY'
import tomllib

with open("pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(requirement)
PY
}

# torch goes in first and on its own: pinned to the CPU wheel that pip's configuration finds on
# this disk. Installed as a dependency of SDV/ctgan instead, pip could pick a multi-GB CUDA build.
install_torch() {
    local torch_requirement
    torch_requirement="$(pyproject_requirements | grep -E '^torch([=<>!~ ]|$)')" \
        || die "pyproject.toml does not pin torch"
    log "Installing $torch_requirement (CPU build)"
    "$PY" -m pip install --quiet --progress-bar off -c constraints.txt "$torch_requirement"
}

warn_if_cuda_torch() {
    local cuda
    cuda="$("$PY" -W ignore -c 'import torch; print(torch.version.cuda or "")')"
    if [ -n "$cuda" ]; then
        printf 'WARNING: the installed torch is a CUDA %s build, not the CPU build; see docs/deploy.md.\n' "$cuda" >&2
    fi
}

install_hash() {
    cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1
}

# The Celery worker command, shared by `make run` and `make worker`. It consumes every queue unless
# SYNTHGATE_WORKER_QUEUES names some (a scale-out process group, docs/deploy.md).
# It runs at a lower CPU priority (nice 10, SYNTHGATE_WORKER_NICE; 0 for none): where the web server
# shares the cores (`make run`, one machine), a page is answered before a synthesis step gets the
# CPU, and jobs take what is left; on a machine of its own the worker loses nothing.
worker_command() {
    local nice="${SYNTHGATE_WORKER_NICE:-10}"
    [ "$nice" != 0 ] && printf '%s\n' nice -n "$nice"
    printf '%s\n' "$VENV/bin/celery" -A portal worker -Q "${SYNTHGATE_WORKER_QUEUES:-synthesis,validation,housekeeping}" \
        -c "${SYNTHGATE_WORKER_CONCURRENCY:-2}" --loglevel=INFO
}

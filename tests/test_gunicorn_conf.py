"""gunicorn.conf.py (read by scripts/run.sh, the benchmarks through bench/_seed.py and docs/deploy.md's command):
each web worker, once it has loaded the application, has its URLconf imported, what it loaded
frozen out of the garbage collector's scans, and a higher collection threshold (issue 16)."""

from __future__ import annotations

import gc
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_worker_freezes_what_it_loaded_and_raises_the_gc_threshold() -> None:
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    thresholds = gc.get_threshold()
    try:
        gc.unfreeze()
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() > 10_000  # Django, the apps and the URLconf's views
        assert gc.get_threshold() == conf["GC_THRESHOLDS"]
        assert conf["GC_THRESHOLDS"][0] > thresholds[0]
        assert "approvals.api.views" in sys.modules  # the URLconf was imported
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_every_gunicorn_start_in_the_repository_passes_the_config() -> None:
    for path in ("scripts/run.sh", "bench/_seed.py", "docs/deploy.md"):
        assert "gunicorn.conf.py" in (ROOT / path).read_text(), path
    # The benchmarks start gunicorn through bench/_seed.py's gunicorn_argv only.
    for path in ("bench/api_throughput.py", "bench/load.py"):
        text = (ROOT / path).read_text()
        assert "gunicorn_argv(" in text and '"portal.wsgi:application"' not in text, path

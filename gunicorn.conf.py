"""gunicorn settings for SynthGate's web processes, read by every gunicorn start: scripts/run.sh
and bench/api_throughput.py pass it with --config, and gunicorn reads ./gunicorn.conf.py by itself
when started from the repository root (docs/deploy.md). Command-line flags set the rest (bind,
workers, threads, keep-alive, timeouts).

Garbage collection (issue 16, docs/benchmarks.md "GET /api/v1/requests/ over HTTP"): a page of the
request list makes hundreds of model instances and thousands of small dicts and lists, which set
off CPython's youngest-generation collection every 700 allocations, and each full collection walks
every object Django and the apps loaded at start-up. So each worker, once it has loaded the
application and its URLconf (every view module), moves what exists then into the permanent
generation (gc.freeze(): never scanned again) and raises the youngest generation's threshold.
Objects still die as soon as their reference count drops; only reference cycles wait longer for
the collector, and a request's garbage is a few MB at most.
"""

from __future__ import annotations

import gc
from typing import Any

# (youngest generation's allocations, then how many younger collections trigger each older one).
GC_THRESHOLDS = (50_000, 20, 100)


def post_worker_init(worker: Any) -> None:
    """In each worker, after it loaded the WSGI application: import the URLconf (and with it every
    view module) now rather than on the first request, then freeze everything loaded so far."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (loads the URLconf)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

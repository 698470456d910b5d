"""Intra-op thread caps for worker processes, so processes sharing the cores do not oversubscribe them.

torch, OpenBLAS/MKL (numpy, scipy), OpenMP (torch, scikit-learn) and numba each start as many
threads as the machine has cores. Two worker processes on two cores then run eight or more busy
threads on two cores and spend the difference switching between them. A worker process is capped
at its share of the cores instead (portal.celery calls `cap_native_threads` in each pool process
before its warm-up and its first job):

- environment variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMEXPR_NUM_THREADS,
  NUMBA_NUM_THREADS), which a library imported later reads when it loads;
- threadpoolctl for the BLAS and OpenMP libraries already loaded (a prefork child inherits the
  parent's);
- torch.set_num_threads and numba.set_num_threads when those are already imported (neither is
  imported here: a worker that never needs torch does not pay for it).

The cap is SYNTHGATE_WORKER_THREADS when set (> 0), else the cores this process may run on divided
by the worker's concurrency (at least 1). Several `celery worker -c 1` on one machine each see
concurrency 1: set SYNTHGATE_WORKER_THREADS=1 there (docs/deploy.md).
"""

from __future__ import annotations

import os
import sys

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_process(configured: int, concurrency: int | None, cpus: int | None = None) -> int:
    """`configured` when > 0, else the process's share of the cores at `concurrency` processes."""
    if configured > 0:
        return configured
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, concurrency or 1))


def cap_native_threads(threads: int) -> int:
    """Cap every intra-op thread pool of this process at `threads`; returns the cap applied."""
    threads = max(1, int(threads))
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    # Called, not used as a context manager: the limits stay for the life of the process.
    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    numba = sys.modules.get("numba")
    if numba is not None:
        # numba sizes its pool from NUMBA_NUM_THREADS once, at import, and cannot go above it. Its
        # compiler re-reads the environment for every function it compiles and refuses a different
        # NUMBA_NUM_THREADS once the pool runs ("Cannot set NUMBA_NUM_THREADS to a different value
        # once the threads have been launched"): a prefork child of a parent that imported numba
        # then failed every kernel not yet in numba's cache (a fresh install's first jobs). Keep the
        # imported size in the environment; the cap is the threads numba uses.
        os.environ["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads

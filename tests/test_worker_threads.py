"""Worker processes cap their intra-op threads at their share of the cores (issue 16, item 4):
torch, BLAS, OpenMP and numba would otherwise each run a thread per core in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.threads import THREAD_ENV, available_cpus, threads_per_process

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("configured", "concurrency", "cpus", "expected"),
    [
        (0, 1, 2, 2),  # one process: every core
        (0, 2, 2, 1),  # -c 2 on 2 cores: one each
        (0, 4, 2, 1),  # more processes than cores: still at least one
        (0, 3, 8, 2),
        (0, None, 4, 4),  # outside a worker
        (1, 1, 8, 1),  # SYNTHGATE_WORKER_THREADS wins (several -c 1 workers on one machine)
        (3, 2, 2, 3),
    ],
)
def test_threads_per_process(configured: int, concurrency: int | None, cpus: int, expected: int) -> None:
    assert threads_per_process(configured, concurrency, cpus) == expected


CHILD = """
import json, os, sys
import numpy, scipy.linalg, sklearn.ensemble, torch
from threadpoolctl import threadpool_info
before = {"pools": sorted({p["num_threads"] for p in threadpool_info()}), "torch": torch.get_num_threads()}
from core.threads import cap_native_threads
cap_native_threads(1)
after = {"pools": sorted({p["num_threads"] for p in threadpool_info()}), "torch": torch.get_num_threads()}
env = {k: os.environ.get(k) for k in json.loads(sys.argv[1])}
print(json.dumps({"before": before, "after": after, "env": env, "apis": sorted({p["user_api"] for p in threadpool_info()})}))
"""


def test_cap_native_threads_caps_every_loaded_pool_and_later_imports() -> None:
    """In a fresh process that already loaded numpy, scipy, scikit-learn and torch (as a prefork
    child inherits them): BLAS, OpenMP and torch drop to the cap, and the variables that a library
    imported later reads are set."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(THREAD_ENV)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"blas", "openmp"} <= set(seen["apis"])
    if available_cpus() > 1:
        assert seen["before"]["torch"] > 1  # the default this guards against
    assert seen["after"] == {"pools": [1], "torch": 1}
    assert seen["env"] == {name: "1" for name in THREAD_ENV}


NUMBA_CHILD = """
import numba
from core.threads import cap_native_threads
cap_native_threads(1)


@numba.njit(cache=False)
def kernel(n):
    return n + 1


print(numba.get_num_threads(), kernel(1))
"""


def test_a_kernel_compiled_after_the_cap_in_a_process_that_imported_numba_first() -> None:
    """A prefork child inherits numba imported at the parent's size; capping it must not make the
    next compilation fail (numba re-reads NUMBA_NUM_THREADS when it compiles). Before the fix this
    child died with "Cannot set NUMBA_NUM_THREADS to a different value once the threads have been
    launched", which on a fresh install failed the inference check of every job."""
    out = subprocess.run(
        [sys.executable, "-c", NUMBA_CHILD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NUMBA_NUM_THREADS": "2"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "2"]


def _wait_for(log_path: Path, needle: str, proc: Any, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (text := log_path.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.3)
    return text


def test_a_real_worker_caps_each_pool_process_at_its_share_of_the_cores(celery_workers: Any) -> None:
    cpus = available_cpus()
    proc = celery_workers.start(args=["-c", "2"], env={"SYNTHGATE_WORKER_THREADS": ""})
    text = _wait_for(proc.log_path, "worker process threads capped", proc)
    share = max(1, cpus // 2)
    needle = f"worker process threads capped at {share} (auto; concurrency 2, {cpus} cores)"
    deadline = time.monotonic() + 60
    while text.count(needle) < 2:  # both pool processes
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.3)
        text = proc.log_path.read_text()


def test_synthgate_worker_threads_sets_the_cap_of_a_single_process_worker(celery_workers: Any) -> None:
    proc = celery_workers.start(env={"SYNTHGATE_WORKER_THREADS": "1"})
    _wait_for(
        proc.log_path,
        f"worker process threads capped at 1 (SYNTHGATE_WORKER_THREADS; concurrency 1, {available_cpus()} cores)",
        proc,
    )

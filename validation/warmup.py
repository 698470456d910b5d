"""Worker warm-up: pay the one-off costs of a worker process before it takes its first job.

A new worker process spends tens of seconds on its first job that later jobs do not: importing
SDV, torch, sklearn and anonymeter, and numba compiling anonymeter's distance kernels (about 7 s,
less when numba's on-disk cache has them). With several processes each paying it on a real job,
two workers finished a small batch slower than one (issue 16). `warm_up` runs the same code a job
runs (a Gaussian copula fit and sample, then the whole validation suite) on a 50-row table made up
here from a fixed seed, so no source data is read, nothing touches the database (it runs right
after the pool forks the process), and the log line carries only the time taken.

Called from portal.celery on worker_process_init when SYNTHGATE_WORKER_WARMUP is on. It lives in
validation because it drives both the synthesizer (generation) and the suite (validation).
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd

from generation.synthesizers import ColumnSpec, synthesizer_for
from validation.metrics.columns import ColumnInfo
from validation.suite import run_suite

logger = logging.getLogger(__name__)

ROWS = 50


def warmup_table(rows: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, list[ColumnSpec], list[ColumnInfo]]:
    """A made-up table with each column kind the kernels specialise on (floats, integers, labels,
    a 0/1 outcome), declared as a steward would: quasi-identifiers and a sensitive column, so every
    anonymeter attack and the train-on-synthetic check run."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype("int64"),
            "sex": rng.choice(["F", "M"], rows),
            "stage": rng.choice(["I", "II", "III", "IV"], rows),
            "score": np.round(rng.normal(50.0, 10.0, rows), 1),
            "outcome": rng.choice(["0", "1"], rows),
        }
    )
    columns = [
        ColumnSpec("age", "numeric", lower=18, upper=90, integer=True, nullable=False),
        ColumnSpec("sex", "categorical", categories=("F", "M"), nullable=False),
        ColumnSpec("stage", "categorical", categories=("I", "II", "III", "IV"), nullable=False),
        ColumnSpec("score", "numeric", lower=0, upper=100, decimals=1, nullable=False),
        ColumnSpec("outcome", "boolean", categories=("0", "1"), nullable=False, outcome=True),
    ]
    infos = [
        ColumnInfo("age", "numeric", "quasi_identifier", lower=18, upper=90, integer=True),
        ColumnInfo("sex", "categorical", "quasi_identifier", categories=("F", "M")),
        ColumnInfo("stage", "categorical", "sensitive", categories=("I", "II", "III", "IV")),
        ColumnInfo("score", "numeric", "other", lower=0, upper=100),
        ColumnInfo("outcome", "boolean", "sensitive", categories=("0", "1"), outcome=True),
    ]
    return frame, columns, infos


def warm_up() -> float:
    """Import, fit, sample and validate once on the made-up table; the seconds it took.

    Never raises: a failed warm-up only means the first job pays the cost, as before. The log
    says which exception type stopped it, not its message.
    """
    started = time.perf_counter()
    try:
        import anonymeter.evaluators  # noqa: F401  (imports numba and the kernels' module)
        import torch  # noqa: F401  (CTGAN/TVAE's import cost, paid here rather than in a job)

        frame, columns, infos = warmup_table()
        training, holdout = frame.iloc[: ROWS * 4 // 5], frame.iloc[ROWS * 4 // 5 :]
        with warnings.catch_warnings():
            # anonymeter warns that 50 rows are too few to trust its risks: true, and beside the point.
            warnings.simplefilter("ignore")
            synthesizer = synthesizer_for("gaussian_copula")
            synthetic = synthesizer.fit_sample(
                training, columns=columns, rows=len(training), seed=0, progress=lambda _f, _s: None
            )
            run_suite(training=training, synthetic=synthetic, holdout=holdout, infos=infos, seed=0)
    except Exception as exc:  # noqa: BLE001 - an optimisation must never stop a worker starting
        seconds = time.perf_counter() - started
        logger.warning("worker warm-up stopped after %.1f s: %s", seconds, type(exc).__name__)
        return seconds
    seconds = time.perf_counter() - started
    logger.info("worker warm-up done in %.1f s (imports, kernel compilation, a 50-row run)", seconds)
    return seconds

"""anonymeter's inference attack for every secret in one pass over the record pairs (issue 12).

anonymeter's `InferenceEvaluator` guesses a secret from the release's nearest record in every other
column, with its Gower-like distance (`anonymeter.neighbors.mixed_types_kneighbors`): per column,
|a - b| / range for numbers (range over the release and the attacked rows together), 0 or 1 for
categories, 1 where both cells are missing and no distance at all (NaN, never nearest) where only
one is. Its own search runs once per secret and per side, a full sort of every candidate for each
attacked row, one joblib task per row: on a 5,000-row, 47-column release with seven secrets and
1,821 attacked rows a side that was 15.9 s, most of the validation suite.

The distance over "every column but the secret" is the distance over every column minus the
secret column's own term, so one pass over the pairs serves every secret: `NearestRecords` computes
each attacked row's nearest release record for all secrets at once and hands anonymeter one
`InferencePredictor` per secret (anonymeter's documented extension point, `inference_model`), so
anonymeter still draws the targets, runs the naive baseline, counts the successes and gives the
results. Only the search is replaced; the attack is the same. Ties between equally near records
are broken by the lowest index here and arbitrarily by anonymeter's quicksort, and the subtraction
can move a distance in its last bit, so on ties the two may name different (equally near) records;
validation/tests/test_nearest_records.py checks that they agree wherever the nearest is unique.
"""

from __future__ import annotations

import hashlib
import logging
from math import fabs, isnan
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

logger = logging.getLogger(__name__)


@njit(nogil=True)
def _nearest_per_secret(
    q_num: np.ndarray,
    s_num: np.ndarray,
    q_cat: np.ndarray,
    s_cat: np.ndarray,
    secret_is_num: np.ndarray,
    secret_pos: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled; its Python twin is checked in the tests
    """For each query row and each secret, the index of the nearest candidate over every column
    except that secret's (lowest index among ties; -1 when no candidate has a distance)."""
    n_queries = q_num.shape[0]
    n_candidates = s_num.shape[0]
    n_num = q_num.shape[1]
    n_cat = q_cat.shape[1]
    n_secrets = secret_pos.shape[0]
    nearest = np.full((n_queries, n_secrets), -1, dtype=np.int64)
    best = np.empty(n_secrets, dtype=np.float64)
    for i in range(n_queries):
        for k in range(n_secrets):
            best[k] = np.inf
        for j in range(n_candidates):
            total = 0.0
            gaps = 0
            for c in range(n_num):
                a = q_num[i, c]
                b = s_num[j, c]
                a_missing = isnan(a)
                b_missing = isnan(b)
                if a_missing and b_missing:
                    total += 1.0
                elif a_missing or b_missing:
                    gaps += 1
                else:
                    total += fabs(a - b)
            for c in range(n_cat):
                if q_cat[i, c] != s_cat[j, c]:
                    total += 1.0
            for k in range(n_secrets):
                p = secret_pos[k]
                own = 0.0
                own_gap = 0
                if secret_is_num[k]:
                    a = q_num[i, p]
                    b = s_num[j, p]
                    a_missing = isnan(a)
                    b_missing = isnan(b)
                    if a_missing and b_missing:
                        own = 1.0
                    elif a_missing or b_missing:
                        own_gap = 1
                    else:
                        own = fabs(a - b)
                elif q_cat[i, p] != s_cat[j, p]:
                    own = 1.0
                if gaps - own_gap > 0:
                    continue
                distance = total - own
                if distance < best[k]:
                    best[k] = distance
                    nearest[i, k] = j
    return nearest


@njit(nogil=True)
def _first_of_missing(n: int) -> int:  # pragma: no cover - compiled
    """Where every candidate is at no distance (NaN), anonymeter's search takes the first index of
    numba's argsort of n NaNs: the same call, for the same record."""
    return int(np.full(n, np.nan).argsort()[0])


def keep_compiled(kernels: tuple[Any, ...], label: str) -> None:
    """Keep numba kernels compiled on disk (numba's own cache, keyed by the source file and numba
    version), so a new worker process does not compile them again; where no cache folder is
    writable numba refuses, and they compile in memory as before."""
    try:
        for kernel in kernels:
            if getattr(kernel, "_cache", None) is None or type(kernel._cache).__name__ == "NullCache":
                kernel.enable_caching()
    except Exception as exc:  # noqa: BLE001 - caching is an optimisation; never fail a run on it
        logger.info("%s not cached: %s", label, type(exc).__name__)


def cache_compiled_kernel() -> None:
    """This module's kernels, kept compiled like anonymeter's (validation.metrics.risks)."""
    keep_compiled((_nearest_per_secret, _first_of_missing), "nearest-record kernels")


def scaled_numbers(syn: pd.DataFrame, queries: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns divided by their range over both frames, exactly as anonymeter's
    `_scale_numerical` does it (including its NaN and zero-range rules)."""
    syn_min, syn_max = syn.min(), syn.max()
    q_min, q_max = queries.min(), queries.max()
    mins = syn_min.where(syn_min < q_min, q_min)
    maxs = syn_max.where(syn_max > q_max, q_max)
    ranges = maxs - mins
    ranges[ranges == 0] = 1
    scale = ranges.to_numpy(dtype=np.float64)
    return (
        np.ascontiguousarray(syn.to_numpy(dtype=np.float64) / scale),
        np.ascontiguousarray(queries.to_numpy(dtype=np.float64) / scale),
    )


def category_codes(syn: pd.DataFrame, queries: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Categorical columns as integer codes shared by both frames (equal labels, equal codes)."""
    n_syn = len(syn)
    syn_codes = np.zeros((n_syn, syn.shape[1]), dtype=np.int64)
    q_codes = np.zeros((len(queries), syn.shape[1]), dtype=np.int64)
    for c, name in enumerate(syn.columns):
        codes, _ = pd.factorize(
            pd.concat([syn[name], queries[name]], ignore_index=True), use_na_sentinel=False
        )
        syn_codes[:, c] = codes[:n_syn]
        q_codes[:, c] = codes[n_syn:]
    return syn_codes, q_codes


class NearestRecords:
    """The release's nearest record to each attacked row, for every secret, from one pass.

    `continuous` says which columns are numbers (the rest are category labels), as
    validation.metrics.risks prepares them for anonymeter."""

    def __init__(self, syn: pd.DataFrame, continuous: dict[str, bool], secrets: list[str]) -> None:
        self._syn = syn.reset_index(drop=True)
        self._num = [name for name in syn.columns if continuous[name]]
        self._cat = [name for name in syn.columns if not continuous[name]]
        self._secrets = list(secrets)
        self._is_num = np.array([continuous[s] for s in self._secrets], dtype=np.bool_)
        self._pos = np.array(
            [self._num.index(s) if continuous[s] else self._cat.index(s) for s in self._secrets],
            dtype=np.int64,
        )
        # Attacked rows (by content) -> nearest release row for each secret.
        self._found: dict[bytes, np.ndarray] = {}

    def predictor(self, secret: str) -> SecretPredictor:
        return SecretPredictor(self, secret)

    def nearest(self, queries: pd.DataFrame) -> np.ndarray:
        """(rows of `queries`) x (secrets): indexes into the release."""
        key = hashlib.sha256(
            pd.util.hash_pandas_object(queries[list(self._syn.columns)], index=True).to_numpy().tobytes()
        )
        digest = key.digest()
        if digest not in self._found:
            s_num, q_num = scaled_numbers(self._syn[self._num], queries[self._num])
            s_cat, q_cat = category_codes(self._syn[self._cat], queries[self._cat])
            found = _nearest_per_secret(q_num, s_num, q_cat, s_cat, self._is_num, self._pos)
            found[found < 0] = _first_of_missing(len(self._syn))
            self._found[digest] = found
        return self._found[digest]

    def guesses(self, queries: pd.DataFrame, secret: str) -> pd.Series:
        rows = self.nearest(queries)[:, self._secrets.index(secret)]
        guesses = self._syn[secret].iloc[rows]
        guesses.index = queries.index
        return guesses


class SecretPredictor:
    """One secret's guesses, as anonymeter's `InferencePredictor` protocol asks (`predict`)."""

    def __init__(self, records: NearestRecords, secret: str) -> None:
        self._records = records
        self._secret = secret

    def predict(self, x: pd.DataFrame) -> pd.Series:
        return self._records.guesses(x, self._secret)

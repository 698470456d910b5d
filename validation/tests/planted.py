"""Planted generators for the positive and negative controls (issue 6, item 6).

Each takes the training table and returns a synthetic table of `rows` rows; none is a real
synthesizer. `smooth_marginals` is the honest baseline: every column drawn independently from its
training distribution (numbers by interpolating the empirical quantile function, so no exact
training value is reused), which leaks nothing about any one person.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = ["age", "kappa", "lambda", "creatinine", "futime"]


def smooth_marginals(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {}
    for name in training.columns:
        column = training[name]
        if name in NUMERIC:
            values = pd.Series(np.quantile(column.dropna().to_numpy(dtype=float), rng.random(rows)))
            values[rng.random(rows) < column.isna().mean()] = np.nan
            out[name] = values
        else:
            out[name] = pd.Series(column.to_numpy()[rng.integers(0, len(column), rows)])
    return pd.DataFrame(out)


def _planted(training: pd.DataFrame, base: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    synthetic = base.copy()
    synthetic.iloc[: len(positions)] = training.iloc[positions].to_numpy()
    return synthetic.sample(frac=1.0, random_state=0).reset_index(drop=True)


def copy_one_percent(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Independent marginals with 1% of the training rows (rounded up) copied in verbatim."""
    count = int(np.ceil(0.01 * len(training)))
    positions = np.random.default_rng(seed + 7).choice(len(training), size=count, replace=False)
    return _planted(training, smooth_marginals(training, rows, seed), positions)


def most_outlying(training: pd.DataFrame, count: int = 5) -> np.ndarray:
    """Positions of the rows farthest from the centre (Mahalanobis distance on the numeric columns)."""
    numbers = training[NUMERIC].astype(float)
    numbers = numbers.fillna(numbers.median())
    z = ((numbers - numbers.mean()) / numbers.std(ddof=0)).to_numpy()
    inverse = np.linalg.pinv(np.cov(z, rowvar=False))
    distance = np.einsum("ij,jk,ik->i", z, inverse, z)
    return np.argsort(distance)[-count:]


def copy_outliers(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Independent marginals plus the 5 most outlying training rows, copied verbatim."""
    return _planted(training, smooth_marginals(training, rows, seed), most_outlying(training))


def perturbed_copy(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Training rows drawn with replacement, every number nudged: scores well on utility, copies
    people (the failure a quality score alone cannot see)."""
    frame = training.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame[NUMERIC] = frame[NUMERIC] + 0.0001
    return frame


def copula_release(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """A file made properly: a Gaussian copula fitted on the training rows. It keeps the outcome's
    relationships, which independent marginals (`smooth_marginals`) do not: those fail TSTR against
    the reference model, as a release without the outcome's signal should."""
    from generation.synthesizers import ColumnSpec, synthesizer_for

    specs = [
        ColumnSpec(
            name, "categorical", categories=tuple(sorted(training[name].dropna().astype(str).unique()))
        )
        if not pd.api.types.is_numeric_dtype(training[name]) or training[name].nunique() <= 2
        else ColumnSpec(name, "numeric")
        for name in training.columns
    ]
    return synthesizer_for("gaussian_copula").fit_sample(
        training, columns=specs, rows=rows, seed=seed, progress=lambda fraction, stage: None
    )

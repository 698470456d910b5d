"""Confidence intervals for the proportions and AUCs the suite reports.

Every estimate from a subsample carries an interval, so a reader can tell a real effect from noise.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm

Z95 = float(norm.ppf(0.975))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: well-behaved near 0 and 1, unlike the normal one."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (conservative) two-sided interval; the DP audit needs a bound that never undercovers."""
    if n <= 0:
        return (0.0, 1.0)
    lower = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    upper = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return (lower, upper)


def auc_interval(auc: float, n_positive: int, n_negative: int, z: float = Z95) -> tuple[float, float]:
    """Hanley-McNeil (1982) standard error of an AUC, as a 95% interval clipped to [0, 1]."""
    if n_positive <= 0 or n_negative <= 0:
        return (0.0, 1.0)
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc) + (n_negative - 1) * (q2 - auc * auc)
    ) / (n_positive * n_negative)
    half = z * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def rank_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney)."""
    from scipy.stats import rankdata

    scores = np.concatenate([positive_scores, negative_scores])
    ranks = rankdata(scores)
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rounded(value: float | None, digits: int = 6) -> float | None:
    """Round for JSON; NaN and infinities become None (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def rounded_pair(pair: tuple[float, float], digits: int = 6) -> list[float | None]:
    return [rounded(pair[0], digits), rounded(pair[1], digits)]

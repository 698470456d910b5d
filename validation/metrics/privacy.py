"""Privacy: copying, replicated uniques, distances to closest record, membership inference, DP audit.

Members are training rows (the generator saw them); non-members are holdout rows (it never did).
Comparisons between the two always use equal-sized random samples, because a larger reference set
is closer to everything by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from validation.metrics.columns import ColumnInfo, as_labels, quasi_identifiers, row_keys
from validation.metrics.distance import Embedding, fit_embedding, nearest_distances
from validation.metrics.stats import (
    auc_interval,
    clopper_pearson,
    rank_auc,
    rounded,
    rounded_pair,
    wilson,
)

SAMPLE_CAP = 5_000  # rows per side for nearest-neighbour work; intervals state the precision
HISTOGRAM_BINS = 30

# --- Exact copies and replicated uniques -----------------------------------------------------


def exact_copies(real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo] | None = None) -> int:
    """Number of synthetic rows identical to some training row on every released column."""
    infos = infos or [ColumnInfo(name=str(c), kind=_kind_of(synthetic[c])) for c in synthetic.columns]
    real_keys = set(row_keys(real, infos).tolist())
    return int(row_keys(synthetic, infos).isin(real_keys).sum())


def _kind_of(series: pd.Series) -> str:
    return "numeric" if pd.api.types.is_numeric_dtype(series) else "categorical"


def replicated_uniques(
    real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo]
) -> dict[str, Any]:
    """Synthetic rows that reproduce, in every released column, a training record no other
    training record shares (synthpop's `replicated.uniques`).

    Copying a common profile ("F, 60, no event") discloses nobody; copying a unique record
    discloses one person, so this check tolerates nothing by default.
    """
    real_keys = row_keys(real, infos)
    counts = real_keys.value_counts()
    uniques = set(counts.index[counts == 1])
    replicated = row_keys(synthetic, infos).isin(uniques)
    return {
        "count": int(replicated.sum()),
        "rate": rounded(replicated.mean()) if len(synthetic) else 0.0,
        "training_uniques": len(uniques),
    }


def _qi_keys(frame: pd.DataFrame, names: list[str]) -> pd.Series:
    labels = pd.DataFrame({n: as_labels(frame[n]) for n in names})
    return pd.util.hash_pandas_object(labels, index=False)


def qi_replicated_uniques(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    infos: list[ColumnInfo],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Share of training records unique on the quasi-identifier combination whose combination is
    also unique in the synthetic table (synthpop's repU), beside the same share for the holdout.

    With coarse quasi-identifiers (age and sex) a fresh sample replicates uniques by chance, so
    the holdout's share on an equal-sized synthetic sample is the yardstick: a warning, not a check.
    """
    names = quasi_identifiers(infos)
    if not names:
        return {"status": "not_applicable", "reason": "No requested column is a quasi-identifier."}
    counts = _qi_keys(real, names).value_counts()
    uniques = set(counts.index[counts == 1])

    def share(frame: pd.DataFrame) -> float | None:
        frame_counts = _qi_keys(frame, names).value_counts()
        unique_here = set(frame_counts.index[frame_counts == 1])
        return rounded(len(uniques & unique_here) / len(uniques)) if uniques else None

    result: dict[str, Any] = {
        "status": "ok",
        "quasi_identifiers": names,
        "training_uniques": len(uniques),
        "synthetic": share(synthetic),
    }
    if holdout is not None and len(holdout):
        n = min(len(holdout), len(synthetic))
        result["synthetic_equal_sample"] = share(_sample(synthetic, n, rng))
        result["holdout"] = share(_sample(holdout, n, rng))
        result["n"] = n
        synthetic_share, holdout_share = result["synthetic_equal_sample"], result["holdout"]
        result["warning"] = bool(
            synthetic_share is not None and holdout_share is not None and synthetic_share > holdout_share
        )
    return result


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))]


# --- Distances to closest record ------------------------------------------------------------


@dataclass
class DistanceSamples:
    """Equal-sized member/non-member samples and every nearest-neighbour distance the suite uses."""

    embedding: Embedding
    n_reference: int
    n_synthetic: int
    synthetic_to_training: np.ndarray
    synthetic_to_holdout: np.ndarray
    training_to_synthetic: np.ndarray  # members' distance to the release (the attack's score)
    holdout_to_synthetic: np.ndarray  # non-members' distance to the release
    random_to_training: np.ndarray  # SDMetrics' random baseline


def distance_samples(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    infos: list[ColumnInfo],
    rng: np.random.Generator,
    cap: int = SAMPLE_CAP,
) -> DistanceSamples:
    n_reference = min(len(training), len(holdout), cap)
    members = _sample(training, n_reference, rng)
    non_members = _sample(holdout, n_reference, rng)
    released = _sample(synthetic, min(len(synthetic), cap), rng)
    embedding = fit_embedding(training, infos)
    columns = embedding.columns
    m, h, s = (embedding.transform(f) for f in (members, non_members, released))
    randoms = embedding.transform(random_like(training, len(released), infos, rng))
    return DistanceSamples(
        embedding=embedding,
        n_reference=n_reference,
        n_synthetic=len(released),
        synthetic_to_training=nearest_distances(s, m, columns),
        synthetic_to_holdout=nearest_distances(s, h, columns),
        training_to_synthetic=nearest_distances(m, s, columns),
        holdout_to_synthetic=nearest_distances(h, s, columns),
        random_to_training=nearest_distances(randoms, m, columns),
    )


def random_like(
    training: pd.DataFrame, rows: int, infos: list[ColumnInfo], rng: np.random.Generator
) -> pd.DataFrame:
    """SDMetrics' random baseline, exactly as DCRBaselineProtection draws it (seeded here): by
    storage type, integers uniform over the training range, floats uniform over it (a 0/1 flag
    stored as float included), datetimes uniform, anything else one of the training values with
    equal probability; then cells blanked at the training missing rate."""
    out = {}
    for info in infos:
        column = training[info.name]
        present = column.dropna()
        if len(present) == 0:
            values: Any = np.full(rows, np.nan)
        elif pd.api.types.is_integer_dtype(column):
            values = rng.integers(int(present.min()), int(present.max()) + 1, size=rows)
        elif pd.api.types.is_float_dtype(column):
            values = rng.uniform(present.min(), present.max(), size=rows)
        elif pd.api.types.is_datetime64_any_dtype(column):
            span = (present.max() - present.min()).total_seconds()
            values = present.min() + pd.to_timedelta(rng.uniform(0, span, size=rows), unit="s")
        else:
            values = rng.choice(present.unique(), size=rows)
        out[info.name] = pd.Series(values).where(rng.random(rows) >= column.isna().mean())
    return pd.DataFrame(out)


def dcr_summary(samples: DistanceSamples) -> dict[str, Any]:
    """Share of synthetic rows closer to training than to holdout (0.5 is ideal), medians, and
    the two SDMetrics scores computed the same way (DCROverfittingProtection and
    DCRBaselineProtection) so the report can be compared with theirs."""
    to_train, to_hold = samples.synthetic_to_training, samples.synthetic_to_holdout
    closer = int((to_train < to_hold).sum())
    ties = int((to_train == to_hold).sum())
    n = len(to_train)
    share = closer / n if n else float("nan")
    interval = wilson(closer, n)
    median_syn, median_random = float(np.median(to_train)), float(np.median(samples.random_to_training))
    return {
        "n_synthetic": samples.n_synthetic,
        "n_reference": samples.n_reference,
        "share_closer_to_training": rounded(share),
        "share_closer_to_training_ci": rounded_pair(interval),
        "share_tied": rounded(ties / n) if n else None,
        # Significantly closer to training than to unseen rows: the generator may be overfitting.
        "warning": bool(interval[0] > 0.5),
        "median_synthetic_to_training": rounded(median_syn),
        "median_synthetic_to_holdout": rounded(float(np.median(to_hold))),
        "median_random_to_training": rounded(median_random),
        "overfitting_protection": rounded(min((1.0 - share) * 2, 1.0)),
        "baseline_protection": rounded(min(median_syn / median_random, 1.0)) if median_random else None,
        "histogram": _histogram(to_train, to_hold),
    }


def _histogram(to_train: np.ndarray, to_hold: np.ndarray) -> dict[str, Any]:
    pooled = np.concatenate([to_train, to_hold])
    top = float(np.quantile(pooled, 0.99)) if len(pooled) else 1.0
    edges = np.linspace(0.0, top if top > 0 else 1.0, HISTOGRAM_BINS + 1)
    # Distances beyond the 99th percentile go in the last bin, so no single far row stands out.
    train_counts, _ = np.histogram(np.clip(to_train, 0, edges[-1]), bins=edges)
    hold_counts, _ = np.histogram(np.clip(to_hold, 0, edges[-1]), bins=edges)
    return {
        "edges": [round(float(e), 6) for e in edges],
        "synthetic_to_training": train_counts.tolist(),
        "synthetic_to_holdout": hold_counts.tolist(),
    }


# --- Membership inference ---------------------------------------------------------------------


def membership_advantage(auc: float) -> float:
    """A membership-inference AUC as an attack advantage on 0..1 (0.5, a coin flip, is 0; a
    perfect attack is 1), so it can be compared with anonymeter's risks."""
    return max(0.0, 2 * (float(auc) - 0.5))


def membership_inference(samples: DistanceSamples) -> dict[str, Any]:
    """The distance-to-closest-synthetic-record attack: guess "member" when a real record has a
    near twin in the release. AUC 0.5 means the release does not tell members from non-members."""
    members, non_members = -samples.training_to_synthetic, -samples.holdout_to_synthetic
    auc = rank_auc(members, non_members)
    interval = auc_interval(auc, len(members), len(non_members))
    return {
        "attack": "distance to closest synthetic record",
        "n_members": len(members),
        "n_non_members": len(non_members),
        "auc": rounded(auc),
        "auc_ci": rounded_pair(interval),
        "advantage": rounded(max(0.0, 2 * auc - 1)),
    }


# --- Empirical DP audit -----------------------------------------------------------------------


def empirical_epsilon(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    rng: np.random.Generator,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """A lower bound on the epsilon the release actually has, from the attack's ROC.

    For an epsilon-DP mechanism every attack threshold satisfies TPR <= e^eps * FPR and
    (1 - FPR) <= e^eps * (1 - TPR) (and the same with members and non-members swapped). The
    threshold is chosen on one half of the records and the bound computed on the other half with
    Clopper-Pearson intervals, so the bound holds with confidence 1 - alpha despite the search.
    """
    first_m, second_m = _halves(member_scores, rng)
    first_n, second_n = _halves(non_member_scores, rng)
    threshold = _best_threshold(first_m, first_n)
    if threshold is None or len(second_m) == 0 or len(second_n) == 0:
        return {"epsilon_lower_bound": 0.0, "n": 0}
    tp, fp = int((second_m >= threshold).sum()), int((second_n >= threshold).sum())
    bound = epsilon_bound(tp, len(second_m), fp, len(second_n), alpha=alpha)
    return {
        "epsilon_lower_bound": rounded(bound),
        "threshold": rounded(threshold),
        "tpr": rounded(tp / len(second_m)),
        "fpr": rounded(fp / len(second_n)),
        "n_members": len(second_m),
        "n_non_members": len(second_n),
        "confidence": 1 - alpha,
    }


def epsilon_bound(tp: int, n_pos: int, fp: int, n_neg: int, *, alpha: float = 0.05) -> float:
    """The largest epsilon the observed rates prove, each rate at its Clopper-Pearson bound."""
    tpr_lo, tpr_hi = clopper_pearson(tp, n_pos, alpha)
    fpr_lo, fpr_hi = clopper_pearson(fp, n_neg, alpha)
    candidates = [
        _log_ratio(tpr_lo, fpr_hi),
        _log_ratio(1 - fpr_hi, 1 - tpr_lo),
        _log_ratio(fpr_lo, tpr_hi),
        _log_ratio(1 - tpr_hi, 1 - fpr_lo),
    ]
    return max(0.0, *candidates)


def _log_ratio(numerator: float, denominator: float) -> float:
    if numerator <= 0:
        return 0.0
    if denominator <= 0:
        return math.inf
    return math.log(numerator / denominator)


def _halves(scores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(scores))
    half = len(scores) // 2
    return scores[order[:half]], scores[order[half:]]


def _best_threshold(members: np.ndarray, non_members: np.ndarray) -> float | None:
    if len(members) == 0 or len(non_members) == 0:
        return None
    candidates = np.unique(np.quantile(np.concatenate([members, non_members]), np.linspace(0, 1, 101)))
    best, best_value = None, -1.0
    for t in candidates:
        tpr, fpr = (members >= t).mean(), (non_members >= t).mean()
        # Point estimates with +1/2 smoothing, only to rank thresholds; the bound uses fresh rows.
        value = max(
            math.log((tpr + 0.5 / len(members)) / (fpr + 0.5 / len(non_members))),
            math.log((1 - fpr + 0.5 / len(non_members)) / (1 - tpr + 0.5 / len(members))),
        )
        if value > best_value:
            best, best_value = float(t), value
    return best

"""Metrics for a released *model* (not a table): utility on the locked holdout and privacy of its outputs.

The inputs are only labels and the model's predicted probabilities: for the training rows (members,
the model saw them) and for the locked holdout (non-members, it never did), plus the holdout
predictions of a non-private baseline trained in the same job on the same rows. Results are
aggregates (AUCs, intervals, rates, binned means with small bins suppressed), never a row.

- Discrimination: ROC AUC with a DeLong (1988) interval, computed with midranks as in Sun & Xu
  (2014); the model's AUC against the baseline's as a ratio whose interval uses DeLong's covariance
  of the two AUCs (they are scored on the same rows) and the delta method.
- Calibration: expected calibration error over equal-width probability bins and the Brier score.
  A perfectly calibrated model still shows an ECE of 0.05-0.10 on 150 rows (each bin's observed
  rate is noisy), so the ECE is tested against its distribution under perfect calibration (labels
  redrawn from the model's own probabilities, Broecker & Smith 2007's consistency resampling with
  the forecasts held fixed): `ece_p_value` says whether the miscalibration is real.
- Membership inference: the loss-threshold attack of Yeom et al. (2018) on the model's outputs
  (a low loss on a record suggests it was trained on), members against an equal number of holdout
  rows, scored by AUC with a DeLong interval; and the empirical epsilon lower bound of Jagielski et
  al. (2020) from the attack's true and false positive rates (`validation.metrics.privacy.empirical_epsilon`:
  threshold chosen on half the records, Clopper-Pearson bounds on the other half).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import brier_score_loss

from validation.metrics.privacy import empirical_epsilon
from validation.metrics.stats import rounded, rounded_pair

# Below these the holdout cannot score the model: the check is not run (and blocks the model gate).
MIN_HOLDOUT_ROWS = 50
MIN_CLASS_ROWS = 10  # events and non-events each (as TSTR's bootstrap floor)
MIN_CALIBRATION_ROWS = 100
MIN_ATTACK_ROWS = 50  # members and non-members each
MAX_ATTACK_ROWS = 50_000  # per side: the AUC's interval is already narrow
SMALL_BIN = 10  # calibration bins with fewer real rows are not released
CALIBRATION_RESAMPLES = 200
EPSILON_CONFIDENCE = 0.95
_CLIP = 1e-12  # probabilities are clipped to [_CLIP, 1 - _CLIP] for the log loss

# Why a part of compute_model_metrics did not run (metrics[part]["reason_code"]).
TOO_FEW_ROWS, ONE_CLASS, TOO_FEW_EVENTS, NO_BASELINE = (
    "too_few_rows",
    "one_class",
    "too_few_events",
    "no_baseline",
)


# --- AUC -------------------------------------------------------------------------------------


def _labels(y_true: Any) -> np.ndarray:
    """Binary labels as 0/1 integers (bool, 0/1 numbers); anything else is an error."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError("labels must be one-dimensional")
    if y.dtype == bool:
        return y.astype(np.int64)
    values = y.astype(np.float64)
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("labels must be binary (0/1 or boolean)")
    return values.astype(np.int64)


def _probabilities(proba: Any) -> np.ndarray:
    """The positive class's probability: a 1-D array, or sklearn's (n, 2) predict_proba output."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise ValueError("probabilities must be one-dimensional (or the two columns of predict_proba)")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return p


def _structural_components(
    positive: np.ndarray, negative: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong's placement values with midranks (Sun & Xu 2014): the AUC, V10 (one per positive)
    and V01 (one per negative); ties count one half."""
    m, n = len(positive), len(negative)
    pooled = rankdata(np.concatenate([positive, negative]))
    within_positive, within_negative = rankdata(positive), rankdata(negative)
    v10 = (pooled[:m] - within_positive) / n
    v01 = 1.0 - (pooled[m:] - within_negative) / m
    auc = float((pooled[:m].sum() - m * (m + 1) / 2) / (m * n))
    return auc, v10, v01


def _split(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(y) != len(score):
        raise ValueError("labels and scores differ in length")
    positive, negative = score[y == 1], score[y == 0]
    if len(positive) < 2 or len(negative) < 2:
        raise ValueError("an AUC interval needs at least two rows of each class")
    return positive, negative


def _normal_interval(value: float, se: float, confidence: float) -> list[float | None]:
    z = float(norm.ppf(0.5 + confidence / 2))
    return rounded_pair((max(0.0, value - z * se), min(1.0, value + z * se)))


def auc_with_interval(y_true: Any, score: Any, *, confidence: float = 0.95) -> dict[str, Any]:
    """ROC AUC of `score` for binary `y_true` with DeLong's interval (normal, clipped to [0, 1]).

    Returns {"value", "ci": [lo, hi], "n", "se", "confidence", "method"}. Raises ValueError when a
    class has fewer than two rows (no interval exists); callers decide earlier whether to run.
    """
    y = _labels(y_true)
    positive, negative = _split(y, np.asarray(score, dtype=np.float64))
    auc, v10, v01 = _structural_components(positive, negative)
    variance = np.var(v10, ddof=1) / len(positive) + np.var(v01, ddof=1) / len(negative)
    se = math.sqrt(max(float(variance), 0.0))
    return {
        "value": rounded(auc),
        "ci": _normal_interval(auc, se, confidence),
        "n": len(y),
        "se": rounded(se),
        "confidence": confidence,
        "method": "DeLong",
    }


def auc_ratio(y_true: Any, score: Any, baseline_score: Any, *, confidence: float = 0.95) -> dict[str, Any]:
    """AUC(score) / AUC(baseline_score) on the same rows, with a delta-method interval from DeLong's
    variances and covariance of the two paired AUCs."""
    y = _labels(y_true)
    pos_a, neg_a = _split(y, np.asarray(score, dtype=np.float64))
    pos_b, neg_b = _split(y, np.asarray(baseline_score, dtype=np.float64))
    a, v10_a, v01_a = _structural_components(pos_a, neg_a)
    b, v10_b, v01_b = _structural_components(pos_b, neg_b)
    if b <= 0:
        return {"value": None, "ci": [None, None], "confidence": confidence}
    m, n = len(pos_a), len(neg_a)
    cov10, cov01 = np.cov(v10_a, v10_b), np.cov(v01_a, v01_b)
    covariance = cov10 / m + cov01 / n  # 2x2: var(a), cov(a, b); cov(a, b), var(b)
    gradient = np.array([1.0 / b, -a / (b * b)])
    variance = float(gradient @ covariance @ gradient)
    ratio = a / b
    z = float(norm.ppf(0.5 + confidence / 2))
    half = z * math.sqrt(max(variance, 0.0))
    return {
        "value": rounded(ratio),
        "ci": rounded_pair((max(0.0, ratio - half), ratio + half)),
        "confidence": confidence,
    }


# --- Calibration -----------------------------------------------------------------------------


def _ece(y: np.ndarray, p: np.ndarray, index: np.ndarray, bins: int) -> np.ndarray:
    """ECE for each row of y (2-D: one label vector per row) with fixed bin assignment."""
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.stack([np.bincount(index, weights=row, minlength=bins) for row in y])
    return np.abs(observed - predicted).sum(axis=1) / counts.sum()


def calibration(
    y_true: Any,
    proba: Any,
    *,
    bins: int = 10,
    seed: int = 0,
    resamples: int = CALIBRATION_RESAMPLES,
) -> dict[str, Any]:
    """Expected calibration error (equal-width bins, each weighted by its share of rows), Brier
    score and the reliability curve.

    Returns {"ece", "brier", "curve": [{"bin", "mean_predicted", "observed", "n"}], "bins",
    "suppressed_bins", "ece_null_95", "ece_p_value", "n"}. Bins holding fewer than 10 rows are left
    out of `curve` (counts of real rows are not released when small) but still count in the ECE.
    `ece_null_95` is the 95th percentile of the ECE a perfectly calibrated model with these
    probabilities would show on this many rows, and `ece_p_value` the Monte Carlo p-value of the
    observed ECE under that null (labels redrawn from the probabilities, `resamples` times).
    """
    y = _labels(y_true)
    p = _probabilities(proba)
    if len(y) != len(p):
        raise ValueError("labels and probabilities differ in length")
    if len(y) == 0:
        raise ValueError("no rows to calibrate on")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)
    ece = float(_ece(y[None, :].astype(np.float64), p, index, bins)[0])
    rng = np.random.default_rng(seed)
    null = _ece((rng.random((resamples, len(p))) < p).astype(np.float64), p, index, bins)
    curve = []
    suppressed = 0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        if count == 0:
            continue
        if count < SMALL_BIN:
            suppressed += 1
            continue
        curve.append(
            {
                "bin": [rounded(edges[b]), rounded(edges[b + 1])],
                "mean_predicted": rounded(float(p[inside].mean())),
                "observed": rounded(float(y[inside].mean())),
                "n": count,
            }
        )
    return {
        "ece": rounded(ece),
        "brier": rounded(float(brier_score_loss(y, p))),
        "curve": curve,
        "bins": bins,
        "suppressed_bins": suppressed,
        "ece_null_95": rounded(float(np.quantile(null, 0.95))),
        "ece_p_value": rounded(float((1 + (null >= ece - 1e-12).sum()) / (1 + resamples))),
        "n": len(y),
    }


# --- Membership inference --------------------------------------------------------------------


def log_loss_per_row(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's cross-entropy loss under the model (probabilities clipped away from 0 and 1)."""
    clipped = np.clip(p, _CLIP, 1 - _CLIP)
    return -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))


def _subsample(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if len(values) <= size:
        return values
    return values[np.sort(rng.choice(len(values), size=size, replace=False))]


def membership_inference(
    *, y_member: Any, p_member: Any, y_nonmember: Any, p_nonmember: Any, seed: int = 0
) -> dict[str, Any]:
    """The loss-threshold attack (Yeom et al. 2018): call a record a training member when the
    model's loss on it is low. Members are training rows, non-members the locked holdout; the
    larger side is subsampled (seeded) to the smaller's size, as a larger side would weigh more.

    Returns {"attack", "auc", "ci": [lo, hi], "n_members", "n_nonmembers", "advantage",
    "empirical_epsilon_lower", "empirical_epsilon_ci_level", "tpr", "fpr"}: AUC 0.5 means the
    model's outputs do not tell members from non-members. `empirical_epsilon_lower` is a lower
    bound, holding with confidence `empirical_epsilon_ci_level`, on the epsilon any DP guarantee
    of this model can have: the largest of log(TPR_lower / FPR_upper) and log((1 - FPR)_lower /
    (1 - TPR)_upper) (and the same with the roles swapped) at the attack threshold chosen on half
    the records, with Clopper-Pearson bounds on the other half (scipy.stats.beta); 0 when the
    attack shows nothing significant. `tpr` and `fpr` are the chosen threshold's rates there.
    """
    y_m, p_m = _labels(y_member), _probabilities(p_member)
    y_n, p_n = _labels(y_nonmember), _probabilities(p_nonmember)
    if len(y_m) != len(p_m) or len(y_n) != len(p_n):
        raise ValueError("labels and probabilities differ in length")
    member_loss, nonmember_loss = log_loss_per_row(y_m, p_m), log_loss_per_row(y_n, p_n)
    rng = np.random.default_rng(seed)
    size = min(len(member_loss), len(nonmember_loss), MAX_ATTACK_ROWS)
    if size < 2:
        raise ValueError("the attack needs at least two members and two non-members")
    members = -_subsample(member_loss, size, rng)  # higher score = more likely a member
    nonmembers = -_subsample(nonmember_loss, size, rng)
    y = np.concatenate([np.ones(size, dtype=np.int64), np.zeros(size, dtype=np.int64)])
    auc = auc_with_interval(y, np.concatenate([members, nonmembers]))
    audit = empirical_epsilon(members, nonmembers, rng=rng, alpha=1 - EPSILON_CONFIDENCE)
    return {
        "attack": "loss threshold (Yeom et al. 2018)",
        "auc": auc["value"],
        "ci": auc["ci"],
        "n_members": size,
        "n_nonmembers": size,
        "advantage": rounded(max(0.0, 2 * float(auc["value"]) - 1)),
        "empirical_epsilon_lower": float(audit.get("epsilon_lower_bound") or 0.0),
        "empirical_epsilon_ci_level": EPSILON_CONFIDENCE,
        "tpr": audit.get("tpr"),
        "fpr": audit.get("fpr"),
    }


# --- Everything the model gate reads ---------------------------------------------------------


def _class_status(y: np.ndarray) -> str | None:
    """Why the holdout cannot score discrimination (None when it can)."""
    if len(y) < MIN_HOLDOUT_ROWS:
        return TOO_FEW_ROWS
    events = int(y.sum())
    if events == 0 or events == len(y):
        return ONE_CLASS
    if min(events, len(y) - events) < MIN_CLASS_ROWS:
        return TOO_FEW_EVENTS
    return None


def _guarded(
    errors: dict[str, str], name: str, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any] | None:
    """Run one part; an exception records its type only (messages can quote values) and the part
    is None, so the checks reading it fail closed."""
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - fail closed on any metric error
        errors[name] = type(exc).__name__
        return None


def compute_model_metrics(
    *,
    y_member: Any,
    p_member: Any,
    y_holdout: Any,
    p_holdout: Any,
    p_holdout_baseline: Any,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the model gate needs, JSON-safe.

    `y_*` are binary labels, `p_*` the positive class's predicted probability (members: the
    training rows the model was fitted on; holdout: the locked holdout); `p_holdout_baseline` the
    holdout probabilities of the non-private baseline trained in the same job (None: no baseline).

    Returns {"auc", "baseline_auc", "auc_ratio", "auc_ratio_ci", "calibration", "membership",
    "n_holdout", "n_members", "status": {part: "ok" | reason code}, "errors": {part: exception type}}.
    A part that cannot run is None with its reason code in `status` (too_few_rows, one_class,
    too_few_events, no_baseline).
    """
    errors: dict[str, str] = {}
    y_hold = _labels(y_holdout)
    p_hold = _probabilities(p_holdout)
    if len(y_hold) != len(p_hold):
        raise ValueError("holdout labels and probabilities differ in length")
    y_mem = _labels(y_member)
    status: dict[str, str] = {}
    result: dict[str, Any] = {
        "n_holdout": len(y_hold),
        "n_members": len(y_mem),
        "auc": None,
        "baseline_auc": None,
        "auc_ratio": None,
        "auc_ratio_ci": None,
        "calibration": None,
        "membership": None,
    }
    discrimination = _class_status(y_hold)
    status["auc"] = discrimination or "ok"
    if discrimination is None:
        result["auc"] = _guarded(errors, "auc", lambda: auc_with_interval(y_hold, p_hold))
    if p_holdout_baseline is None:
        status["baseline"] = NO_BASELINE
    else:
        status["baseline"] = discrimination or "ok"
        if discrimination is None:
            baseline = _probabilities(p_holdout_baseline)
            result["baseline_auc"] = _guarded(errors, "baseline", lambda: auc_with_interval(y_hold, baseline))
            ratio = _guarded(errors, "baseline", lambda: auc_ratio(y_hold, p_hold, baseline))
            if ratio is not None:
                result["auc_ratio"], result["auc_ratio_ci"] = ratio["value"], ratio["ci"]
    status["calibration"] = "ok" if len(y_hold) >= MIN_CALIBRATION_ROWS else TOO_FEW_ROWS
    if status["calibration"] == "ok":
        result["calibration"] = _guarded(
            errors, "calibration", lambda: calibration(y_hold, p_hold, seed=seed)
        )
    enough = min(len(y_mem), len(y_hold)) >= MIN_ATTACK_ROWS
    status["membership"] = "ok" if enough else TOO_FEW_ROWS
    if enough:
        result["membership"] = _guarded(
            errors,
            "membership",
            lambda: membership_inference(
                y_member=y_mem, p_member=p_member, y_nonmember=y_hold, p_nonmember=p_hold, seed=seed
            ),
        )
    result["status"] = status
    result["errors"] = errors
    return result

"""Utility: how closely the synthetic table reproduces the training table's statistics.

Column shapes and pair trends follow SDMetrics' QualityReport definitions (KSComplement,
TVComplement, CorrelationSimilarity, ContingencySimilarity), with two deliberate differences:

- missing values count as a category in TVComplement (a generator that drops them is wrong);
- a continuous column in a mixed pair is binned with the *training* bin edges (outer edges open)
  for both tables, as SDMetrics' maintainers specified (sdv-dev/SDMetrics#368) and as its own
  `ContingencySimilarity(continuous_column_names=...)` does. SDMetrics 0.32's QualityReport bins
  each table on its own range instead, so the bins need not line up: on flchain a GaussianCopula
  release scores 0.32 on (chapter, kappa) there, against 0.83 with aligned bins. Each pair also
  carries `score_sdmetrics`, computed SDMetrics' way, so reports can be compared with theirs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from generation.values import declared_labels
from validation.metrics.columns import MISSING, ColumnInfo, as_labels, as_numbers
from validation.metrics.stats import rounded

RARE_SHARE = 0.05  # a category is "rare" below this share of training rows
PAIR_BINS = 10  # SDMetrics' default number of bins when a continuous column meets a discrete one
# SDMetrics 0.32's QualityReport averages only pairs with a trend in the real data: |Pearson r|
# above 0.5, or Cramér's V above 0.3 (sdv-dev/SDMetrics#815). Pairs without one would score near 1
# whatever the generator does and drown the pairs that matter.
REAL_CORRELATION_THRESHOLD = 0.5
REAL_ASSOCIATION_THRESHOLD = 0.3


# --- Column shapes ---------------------------------------------------------------------------


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - Kolmogorov-Smirnov statistic of the two non-missing samples (1 = same shape)."""
    a = pd.to_numeric(real, errors="coerce").dropna().to_numpy(dtype=float)
    b = pd.to_numeric(synthetic, errors="coerce").dropna().to_numpy(dtype=float)
    if len(a) == 0 or len(b) == 0:
        return 1.0 if len(a) == len(b) else 0.0
    return float(1.0 - ks_2samp(a, b).statistic)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - total variation distance of the category frequencies (missing is a category)."""
    return 1.0 - share_distance(
        as_labels(real).value_counts(normalize=True), as_labels(synthetic).value_counts(normalize=True)
    )


def share_distance(p: pd.Series, q: pd.Series) -> float:
    """Total variation distance between two distributions given as shares by label."""
    support = p.index.union(q.index)
    diff = p.reindex(support, fill_value=0.0) - q.reindex(support, fill_value=0.0)
    return float(0.5 * np.abs(diff.to_numpy()).sum())


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for info in infos:
        if info.continuous:
            scores[info.name] = ks_complement(
                as_numbers(real[info.name], info.kind), as_numbers(synthetic[info.name], info.kind)
            )
        else:
            scores[info.name] = tv_complement(real[info.name], synthetic[info.name])
    return {k: round(v, 6) for k, v in scores.items()}


def mean_score(scores: dict[str, float] | list[float]) -> float | None:
    values = [v for v in (scores.values() if isinstance(scores, dict) else scores) if v is not None]
    return round(float(np.mean(values)), 6) if values else None


# --- Column pair trends ----------------------------------------------------------------------


def _discrete(series: pd.Series, info: ColumnInfo, edges: np.ndarray | None) -> pd.Series:
    """Labels for a contingency table; continuous values binned on the training edges."""
    if edges is None:
        return as_labels(series)
    numbers = as_numbers(series, info.kind)
    bins = pd.Series(np.digitize(numbers.fillna(0.0), edges), index=series.index).astype(str)
    return bins.where(numbers.notna(), MISSING)


def _own_range_bins(series: pd.Series, info: ColumnInfo) -> pd.Series:
    """SDMetrics 0.32 QualityReport binning: 10 bins on this table's own range; missing values
    fall in the top overflow bin (np.digitize of NaN)."""
    numbers = as_numbers(series, info.kind)
    present = numbers.dropna()
    if present.empty:
        return pd.Series("0", index=series.index)
    edges = np.histogram_bin_edges(present.to_numpy(), bins=PAIR_BINS)
    return pd.Series(np.digitize(numbers.to_numpy(), edges), index=series.index).astype(str)


def _training_edges(real: pd.DataFrame, info: ColumnInfo) -> np.ndarray | None:
    if not info.continuous:
        return None
    present = as_numbers(real[info.name], info.kind).dropna()
    if present.empty:
        return np.array([-np.inf, np.inf])
    edges = np.histogram_bin_edges(present.to_numpy(), bins=PAIR_BINS)
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _codes(real: pd.Series, synthetic: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Both tables' labels as integer codes over one shared vocabulary, so joint tables are
    bincounts (one pass per pair instead of a pandas group-by)."""
    codes, vocabulary = pd.factorize(pd.concat([real, synthetic], ignore_index=True), use_na_sentinel=False)
    return codes[: len(real)], codes[len(real) :], max(1, len(vocabulary))


def _joint(a: np.ndarray, b: np.ndarray, width_a: int, width_b: int) -> np.ndarray:
    """The joint frequency table of two coded columns (width_a x width_b counts)."""
    return np.bincount(a * width_b + b, minlength=width_a * width_b).reshape(width_a, width_b)


def _table_tv(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Total variation between two joint tables (as shares of their rows)."""
    p = real / max(1, real.sum())
    q = synthetic / max(1, synthetic.sum())
    return float(0.5 * np.abs(p - q).sum())


def _table_cramers_v(table: np.ndarray, *, bias_corrected: bool = False) -> float:
    """Cramér's V of the categories that occur (pandas' crosstab keeps only those), without
    continuity correction: scipy's association(method="cramer"), vectorised.

    `bias_corrected`: Bergsma's (2013) correction, which removes the chi-square's expectation
    under independence, (r - 1)(k - 1) / (n - 1), from phi^2 and shrinks r and k alike. Plain V of
    two independent columns grows with the table's cells per row: a 361-code diagnosis column
    against a 10-bin lab in 4,000 rows has V about 0.3 with no association at all, so it "showed a
    trend" with every column. The corrected V of that table is about 0."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2 or table.sum() == 0:
        return float("nan")
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    if not bias_corrected:
        return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))
    rows, cols = table.shape
    if n < 2:
        return float("nan")
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    rows_c = rows - (rows - 1) ** 2 / (n - 1)
    cols_c = cols - (cols - 1) ** 2 / (n - 1)
    denominator = min(rows_c - 1, cols_c - 1)
    return float(np.sqrt(phi2 / denominator)) if denominator > 0 else 0.0


def _correlations(frame: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of every pair on the rows where both are present (NaN when either
    is constant there), one vectorised call."""
    return frame.corr(method="pearson", min_periods=2)


def column_pair_trends(
    real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo]
) -> list[dict[str, Any]]:
    """One entry per column pair: the similarity score (1 = same trend), both tables' strength,
    and whether the real data show a trend strong enough for the pair to count.

    Continuous pairs compare Pearson correlations (1 - |r_real - r_syn| / 2); other pairs compare
    the joint frequency tables (1 - total variation). Strength is the correlation for continuous
    pairs and Cramér's V otherwise. Columns are coded once and each pair's tables are bincounts:
    on 40 columns (780 pairs) and 5,000 rows this takes under a second, where pandas crosstabs
    took 12 s.
    """
    continuous = [i.name for i in infos if i.continuous]
    r_real = _correlations(pd.DataFrame({n: as_numbers(real[n], k) for n, k in _kinds(infos, continuous)}))
    r_syn = _correlations(
        pd.DataFrame({n: as_numbers(synthetic[n], k) for n, k in _kinds(infos, continuous)})
    )
    aligned: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    own: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for info in infos:
        edges = _training_edges(real, info)
        aligned[info.name] = _codes(
            _discrete(real[info.name], info, edges), _discrete(synthetic[info.name], info, edges)
        )
        own[info.name] = (
            _codes(_own_range_bins(real[info.name], info), _own_range_bins(synthetic[info.name], info))
            if info.continuous
            else aligned[info.name]
        )
    pairs = []
    for first, second in itertools.combinations(infos, 2):
        a, b = first.name, second.name
        if first.continuous and second.continuous:
            real_r, syn_r = float(r_real.at[a, b]), float(r_syn.at[a, b])
            # A release where either column is constant (or never present with the other) has no
            # correlation to compare: it keeps none of the trend, scored as r = 0. NaN used to drop
            # the pair from the mean, so a lost trend went unjudged (and, as the only pair with a
            # trend, left the check without a value).
            # SDMetrics' own score (the reference) leaves such a pair out, as before.
            score = 1 - abs(real_r - (0.0 if math.isnan(syn_r) else syn_r)) / 2
            reference_score = 1 - abs(real_r - syn_r) / 2
            meets = bool(abs(real_r) > REAL_CORRELATION_THRESHOLD)
            pairs.append(_pair(a, b, "correlation", (score, meets), (reference_score, meets), real_r, syn_r))
            continue
        joint_real, joint_syn = _joint_pair(aligned[a], aligned[b])
        strength_real = _table_cramers_v(joint_real)
        # Whether the real data show a trend is judged on the bias-corrected V: a high-cardinality
        # column's chance association is not a trend a release must reproduce (SDMetrics' own rule,
        # plain V, stays in the reference score below).
        aligned_score = (
            1 - _table_tv(joint_real, joint_syn),
            bool(_table_cramers_v(joint_real, bias_corrected=True) > REAL_ASSOCIATION_THRESHOLD),
        )
        reference = aligned_score
        if first.continuous or second.continuous:
            own_real, own_syn = _joint_pair(own[a], own[b])
            reference = (
                1 - _table_tv(own_real, own_syn),
                bool(_table_cramers_v(own_real) > REAL_ASSOCIATION_THRESHOLD),
            )
        pairs.append(
            _pair(a, b, "contingency", aligned_score, reference, strength_real, _table_cramers_v(joint_syn))
        )
    return pairs


def _kinds(infos: list[ColumnInfo], names: list[str]) -> list[tuple[str, str]]:
    by_name = {i.name: i.kind for i in infos}
    return [(n, by_name[n]) for n in names]


def _joint_pair(
    a: tuple[np.ndarray, np.ndarray, int], b: tuple[np.ndarray, np.ndarray, int]
) -> tuple[np.ndarray, np.ndarray]:
    return _joint(a[0], b[0], a[2], b[2]), _joint(a[1], b[1], a[2], b[2])


def _pair(
    a: str,
    b: str,
    metric: str,
    aligned: tuple[float, bool],
    reference: tuple[float, bool],
    real: float,
    synthetic: float,
) -> dict[str, Any]:
    return {
        "columns": [a, b],
        "metric": metric,
        "score": rounded(aligned[0]),
        "counts": aligned[1],
        "score_sdmetrics": rounded(reference[0]),
        "counts_sdmetrics": reference[1],
        "real": rounded(real),
        "synthetic": rounded(synthetic),
    }


def pair_trend_score(pairs: list[dict[str, Any]], *, sdmetrics: bool = False) -> float | None:
    """Mean score over the pairs whose real data show a trend; None when none does."""
    score, counts = ("score_sdmetrics", "counts_sdmetrics") if sdmetrics else ("score", "counts")
    return mean_score([p[score] for p in pairs if p[counts] and p[score] is not None])


# --- Missingness -----------------------------------------------------------------------------


# With many gappy columns most missingness patterns are held by a handful of rows, and the distance
# between two samples over them measures the samples' size as much as their likeness: on a public
# 9,105-row ICU table with 33 gappy columns (1,651 patterns), 1,000 real rows the generator never saw
# scored 0.48 against the training rows, far under the gate's 0.70, so no release could pass. The
# gated figure is therefore relative: the synthetic rows' similarity divided by that of as many real
# holdout rows (each the mean over PATTERN_DRAWS random subsets when one side is larger), capped at 1.
# On that table: holdout 0.48, the copula release 0.66 (relative 1.0), cells scattered independently
# at the right per-column rates 0.07 (relative 0.14). Tables with a few patterns score as before.
PATTERN_DRAWS = 5
MIN_HOLDOUT_ROWS = 30


def missingness(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    infos: list[ColumnInfo],
    *,
    holdout: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-column missing rates and the similarity of the joint pattern of missing cells.

    The pattern matters: "creatinine is missing exactly when chapter is" is a fact about how the
    data were collected that per-column rates cannot show. `pattern_similarity_raw` is 1 - the total
    variation distance between the training and synthetic distributions of rows' patterns;
    `pattern_similarity` (gated) is that relative to real holdout rows of the same number
    (`holdout_pattern_similarity`), capped at 1, or the raw figure without a usable holdout.
    """
    names = [i.name for i in infos]
    rates = {
        n: {"real": rounded(real[n].isna().mean()), "synthetic": rounded(synthetic[n].isna().mean())}
        for n in names
    }
    with_missing = [n for n in names if real[n].isna().any() or synthetic[n].isna().any()]
    if not with_missing:
        return {
            "columns": rates,
            "pattern_similarity": 1.0,
            "pattern_similarity_raw": 1.0,
            "patterns_compared": 0,
        }
    p = _patterns(real[with_missing]).value_counts(normalize=True)
    synthetic_patterns = _patterns(synthetic[with_missing])
    q = synthetic_patterns.value_counts(normalize=True)
    raw = 1 - share_distance(p, q)
    result = {
        "columns": rates,
        "pattern_similarity": rounded(raw),
        "pattern_similarity_raw": rounded(raw),
        "patterns_compared": len(p.index.union(q.index)),
        "real_patterns": len(p),
    }
    usable = holdout is not None and set(with_missing) <= set(holdout.columns)
    if not usable or len(holdout) < MIN_HOLDOUT_ROWS or len(synthetic) < MIN_HOLDOUT_ROWS:
        return result
    rows = min(len(holdout), len(synthetic))
    rng = np.random.default_rng(seed)
    reference = _mean_similarity(p, _patterns(holdout[with_missing]), rows, rng)
    compared = _mean_similarity(p, synthetic_patterns, rows, rng)
    result.update(
        {
            "pattern_similarity": rounded(min(1.0, compared / reference)) if reference > 0 else rounded(raw),
            "holdout_pattern_similarity": rounded(reference),
            "synthetic_pattern_similarity": rounded(compared),
            "compared_rows": rows,
        }
    )
    return result


def _mean_similarity(p: pd.Series, patterns: pd.Series, rows: int, rng: np.random.Generator) -> float:
    """1 - TV between `p` and the patterns of `rows` rows of `patterns` (the mean over
    PATTERN_DRAWS random subsets when there are more rows than that)."""
    if len(patterns) <= rows:
        return 1 - share_distance(p, patterns.value_counts(normalize=True))
    values = patterns.to_numpy()
    draws = [
        1 - share_distance(p, pd.Series(rng.choice(values, rows, replace=False)).value_counts(normalize=True))
        for _ in range(PATTERN_DRAWS)
    ]
    return float(np.mean(draws))


def _patterns(frame: pd.DataFrame) -> pd.Series:
    """Each row's set of missing columns as one label (a bit string, vectorized)."""
    flags = frame.isna().to_numpy()
    codes = np.full(len(frame), "", dtype=object)
    for position in range(flags.shape[1]):
        codes = codes + np.where(flags[:, position], "1", "0")
    return pd.Series(codes)


# --- Categories and outcome ------------------------------------------------------------------


def category_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo]) -> dict[str, Any]:
    """Share of training categories the synthetic table contains, overall and for rare ones.

    Counts only, never category names: a rare category's name is itself a small cell.
    """
    per_column: dict[str, dict[str, int]] = {}
    totals = {"categories": 0, "covered": 0, "rare": 0, "rare_covered": 0, "new": 0}
    for info in infos:
        if info.continuous:
            continue
        shares = as_labels(real[info.name]).value_counts(normalize=True).drop(MISSING, errors="ignore")
        present = set(as_labels(synthetic[info.name]).unique()) - {MISSING}
        rare = shares[shares < RARE_SHARE].index
        entry = {
            "categories": len(shares),
            "covered": int(sum(c in present for c in shares.index)),
            "rare": len(rare),
            "rare_covered": int(sum(c in present for c in rare)),
            "new": len(present - set(shares.index)),
        }
        per_column[info.name] = entry
        for key in totals:
            totals[key] += entry[key]
    return {
        "columns": per_column,
        **totals,
        "coverage": rounded(totals["covered"] / totals["categories"]) if totals["categories"] else None,
        "rare_coverage": rounded(totals["rare_covered"] / totals["rare"]) if totals["rare"] else None,
    }


def positive_label(labels: pd.Series) -> str:
    """The 'event' class of a binary outcome: 1/true/yes when present, else the rarer class."""
    present = labels[labels != MISSING]
    for candidate in ("1", "true", "True", "yes", "Yes", "Y", "y"):
        if (present == candidate).any():
            return candidate
    return str(present.value_counts().idxmin())


def outcome_prevalence(
    real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, outcome: str
) -> dict[str, Any]:
    labels_real = as_labels(real[outcome])
    positive = positive_label(labels_real)

    def prevalence(frame: pd.DataFrame) -> float | None:
        labels = as_labels(frame[outcome])
        labels = labels[labels != MISSING]
        return rounded((labels == positive).mean()) if len(labels) else None

    real_rate, syn_rate = prevalence(real), prevalence(synthetic)
    difference = abs(real_rate - syn_rate) if real_rate is not None and syn_rate is not None else None
    return {
        "column": outcome,
        "training": real_rate,
        "synthetic": syn_rate,
        "holdout": prevalence(holdout) if holdout is not None else None,
        "difference": rounded(difference),
    }


# --- Declared bounds and rules ---------------------------------------------------------------


def _bound(value: Any, kind: str) -> float | None:
    if value is None or value == "":
        return None
    if kind == "datetime":
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return float(stamp.timestamp())
    return float(value)


def _violations(frame: pd.DataFrame, info: ColumnInfo) -> tuple[pd.Series, pd.Series, list[str]]:
    """Rows of `frame` breaking the column's declared bounds or categories, rows breaking its
    whole-number declaration, and which rules the column has."""
    column = frame[info.name]
    broken = pd.Series(False, index=frame.index)
    fractional = pd.Series(False, index=frame.index)
    rules: list[str] = []
    if info.continuous:
        numbers = as_numbers(column, info.kind)
        lower, upper = _bound(info.lower, info.kind), _bound(info.upper, info.kind)
        broken |= column.notna() & numbers.isna()  # unparseable
        if lower is not None:
            rules.append("lower")
            broken |= numbers < lower - 1e-9
        if upper is not None:
            rules.append("upper")
            broken |= numbers > upper + 1e-9
        if info.integer and info.kind == "numeric":
            rules.append("integer")
            fractional = numbers.notna() & ((numbers - numbers.round()).abs() > 1e-9)
    elif info.categories:
        rules.append("categories")
        allowed = declared_labels(info.categories, info.kind)
        labels = as_labels(column)
        broken |= (labels != MISSING) & ~labels.isin(allowed)
    return broken, fractional, rules


def bound_violations(real: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo]) -> dict[str, Any]:
    """Synthetic values outside the steward's declared bounds or categories (`rate`, gated), and
    fractions in whole-number columns (`integer_rate`, reported, not gated: synthesized output is
    rounded to the declaration before validation, generation.conformance).

    The training table is measured the same way, so a reader can tell a generator that invents
    impossible values from a declaration that never matched the data.
    """
    any_synthetic = pd.Series(False, index=synthetic.index)
    any_real = pd.Series(False, index=real.index)
    any_fractional = pd.Series(False, index=synthetic.index)
    per_column: dict[str, Any] = {}
    for info in infos:
        broken_syn, fractional, rules = _violations(synthetic, info)
        if not rules:
            continue
        broken_real, _, _ = _violations(real, info)
        any_synthetic |= broken_syn
        any_real |= broken_real
        any_fractional |= fractional
        per_column[info.name] = {
            "rules": rules,
            "synthetic_rows": int(broken_syn.sum()),
            "training_rows": int(broken_real.sum()),
            "fractional_rows": int(fractional.sum()),
        }
    return {
        "columns": per_column,
        "rate": rounded(any_synthetic.mean()) if len(synthetic) else 0.0,
        "training_rate": rounded(any_real.mean()) if len(real) else 0.0,
        "integer_rate": rounded(any_fractional.mean()) if len(synthetic) else 0.0,
    }

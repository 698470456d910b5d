"""Joint missingness for the non-DP synthesizers: cells that are missing together stay together.

SDV (like most synthesizers) decides per column whether a cell is missing, independently of the
other columns, so a lab panel missing as a block in the source comes out missing cell by cell at
random: per-column rates are right, the pattern is lost. Here the pattern is modelled as data:

1. Each training row's *missingness pattern* (which of the nullable columns are missing) becomes one
   categorical column. Patterns held by fewer than `MIN_PATTERN_ROWS` rows (and beyond the
   `MAX_PATTERNS` most common) are pooled into their nearest kept pattern (fewest columns differing,
   then the more common one): a rare pattern is itself a small cell that could single a patient out.
2. The missing cells are filled with observed values of the column: numbers by a draw conditional
   on the row's other numbers (`_conditional_numbers`: normal scores, their pairwise correlations,
   the conditional normal given what the row has), other columns by a hot deck (a value drawn at
   random from the column's observed values). Either way the marginal is not distorted by a spike
   at its mean; the conditional draw also keeps the correlations, which random fills diluted.
3. The synthesizer learns the pattern column jointly with the values (the copula through its
   correlation matrix, CTGAN/TVAE as one more discrete column), so patterns co-vary with the values
   and the outcome, as in the source.
4. After sampling, each synthetic row's cells that its synthesized pattern says are missing are
   blanked, and the pattern column is dropped.

A column the steward declares non-nullable is never part of a pattern: it is filled and never
blanked, so no missing value is invented in it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from generation.synthesizers.base import ColumnSpec
from generation.synthesizers.dp_base import recorded_geometric
from generation.synthesizers.dp_budget import PrivacyLedger
from generation.synthesizers.dp_domain import ColumnDomain

PATTERN_COLUMN = "__synthgate_missing_pattern__"
MIN_PATTERN_ROWS = 5
# Every pattern of MIN_PATTERN_ROWS rows or more, up to this many. Was 40: on a public 9,105-row ICU
# table (33 gappy columns, 1,651 patterns, 285 of them held by 5 rows or more) 40 cells held 39% of
# the rows, and the rest were pooled into them; with every pattern of 5 rows or more kept, the
# release's raw pattern similarity rose from 0.38 to 0.65, above 1,000 real holdout rows' 0.61
# (validation/tests/test_many_missing_patterns.py).
MAX_PATTERNS = 300


@dataclass(frozen=True)
class MissingPatterns:
    """The kept patterns: label -> the columns missing in it."""

    columns: tuple[str, ...]  # the nullable columns with missing cells in training
    patterns: dict[str, tuple[str, ...]]

    @property
    def active(self) -> bool:
        return bool(self.columns)

    def blank(self, synthetic: pd.DataFrame) -> pd.DataFrame:
        """Blank each row's cells its pattern says are missing; drop the pattern column."""
        if not self.active:
            return synthetic
        out = synthetic.drop(columns=[PATTERN_COLUMN])
        labels = synthetic[PATTERN_COLUMN].astype(str).to_numpy()
        for column in self.columns:
            missing_in = [label for label, cols in self.patterns.items() if column in cols]
            mask = np.isin(labels, missing_in)
            if mask.any():
                out[column] = out[column].mask(mask)
        return out


def with_pattern_column(
    frame: pd.DataFrame, columns: list[ColumnSpec], *, seed: int
) -> tuple[pd.DataFrame, MissingPatterns]:
    """The training frame with missing cells filled and the pattern column added."""
    gappy = tuple(c.name for c in columns if c.nullable and frame[c.name].isna().any())
    if not gappy:
        return frame, MissingPatterns((), {})
    flags = frame[list(gappy)].isna().to_numpy()
    keys = ["".join("1" if f else "0" for f in row) for row in flags]
    counts = pd.Series(keys).value_counts()
    kept = [k for k, n in counts.items() if n >= MIN_PATTERN_ROWS][:MAX_PATTERNS]
    if not kept:
        kept = [str(counts.index[0])]
    mapping = _nearest_kept(list(counts.index), kept)
    labels = {key: f"p{i}" for i, key in enumerate(kept)}
    out = _hot_deck(frame, columns, seed=seed)
    out = _conditional_numbers(frame, out, columns, seed=seed)
    out[PATTERN_COLUMN] = [labels[mapping[k]] for k in keys]
    patterns = {labels[k]: tuple(c for c, bit in zip(gappy, k, strict=True) if bit == "1") for k in kept}
    return out, MissingPatterns(gappy, patterns)


def _nearest_kept(keys: list[str], kept: list[str]) -> dict[str, str]:
    """Each pattern's nearest kept pattern (itself if kept): fewest columns differing; among
    equals, the most common (kept is in that order, and argmin takes the first)."""
    kept_bits = np.array([[c == "1" for c in k] for k in kept], dtype=bool)
    mapping = {k: k for k in kept}
    others = [k for k in keys if k not in mapping]
    for start in range(0, len(others), 512):  # bounded memory: 512 x kept x columns booleans
        chunk = others[start : start + 512]
        bits = np.array([[c == "1" for c in k] for k in chunk], dtype=bool)
        distance = (bits[:, None, :] != kept_bits[None, :, :]).sum(axis=2)
        for key, best in zip(chunk, distance.argmin(axis=1), strict=True):
            mapping[key] = kept[int(best)]
    return mapping


def _hot_deck(frame: pd.DataFrame, columns: list[ColumnSpec], *, seed: int) -> pd.DataFrame:
    """Missing cells replaced by values drawn from the column's observed values (seeded)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for spec in columns:
        series = out[spec.name]
        missing = series.isna().to_numpy()
        if not missing.any():
            continue
        observed = series[~missing].to_numpy()
        if observed.size == 0:
            continue  # an all-missing column: nothing to draw from; SDV handles it as it is
        filled = (
            series.to_numpy(copy=True).astype(object)
            if series.dtype == object
            else series.to_numpy(copy=True)
        )
        filled[missing] = rng.choice(observed, size=int(missing.sum()))
        out[spec.name] = pd.Series(filled, index=series.index).astype(series.dtype, errors="ignore")
    return out


# Fewest observed values a number needs to take part in the conditional fill (its scores and
# correlations); a sparser column keeps its hot-deck fill.
MIN_OBSERVED_FOR_CONDITIONAL = 20


def _conditional_numbers(
    frame: pd.DataFrame, filled: pd.DataFrame, columns: list[ColumnSpec], *, seed: int
) -> pd.DataFrame:
    """Missing numbers drawn given the row's other numbers, then read back as observed values.

    A random (hot-deck) fill is independent of the row, so a column missing in a quarter of the rows
    had its correlations cut to about three quarters before the synthesizer saw them: on pbc,
    bilirubin with copper (26% missing) 0.50 in the source, 0.36-0.39 in copula releases. Here each
    number becomes the normal score of its mid-rank among the column's observed values; the scores'
    correlations are estimated pairwise over the rows where both are present (projected to a valid
    correlation matrix); each row's missing scores are drawn from the normal conditional on its
    present ones, then mapped through the column's observed quantiles to an observed value. Rows
    are grouped by which numbers they miss, so the regression is solved once per pattern."""
    from scipy.stats import norm

    numeric = [
        c.name
        for c in columns
        if c.kind == "numeric"
        and pd.to_numeric(frame[c.name], errors="coerce").notna().sum() >= MIN_OBSERVED_FOR_CONDITIONAL
    ]
    values = {name: pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float) for name in numeric}
    gappy = [name for name in numeric if np.isnan(values[name]).any()]
    if not gappy or len(numeric) < 2:
        return filled
    scores = np.full((len(frame), len(numeric)), np.nan)
    observed_sorted: dict[str, np.ndarray] = {}
    for j, name in enumerate(numeric):
        x = values[name]
        present = np.sort(x[~np.isnan(x)])
        observed_sorted[name] = present
        scores[:, j] = midrank_normal_scores(present, x)
    standardised = (scores - np.nanmean(scores, axis=0)) / np.where(
        np.nanstd(scores, axis=0) > 0, np.nanstd(scores, axis=0), 1.0
    )
    correlation = pd.DataFrame(standardised).corr(min_periods=MIN_OBSERVED_FOR_CONDITIONAL).to_numpy()
    correlation = np.nan_to_num(correlation, nan=0.0)
    np.fill_diagonal(correlation, 1.0)
    correlation = nearest_correlation_matrix(correlation)
    rng = np.random.default_rng(seed + 1)
    missing = np.isnan(standardised)
    out = filled.copy()
    # Rows grouped by which numbers they miss, the groups in the order of that pattern read as a
    # binary number with the first column lowest (np.unique sorts the reversed rows that way).
    patterns, group = np.unique(missing[:, ::-1], axis=0, return_inverse=True)
    group = group.reshape(-1)
    for index, reversed_pattern in enumerate(patterns):
        if not reversed_pattern.any():
            continue
        rows = np.flatnonzero(group == index)
        gone = missing[rows[0]]
        have = ~gone
        r_mm = correlation[np.ix_(gone, gone)]
        if have.any():
            r_mo = correlation[np.ix_(gone, have)]
            r_oo = correlation[np.ix_(have, have)]
            weights = np.linalg.solve(r_oo, r_mo.T).T
            mean = standardised[np.ix_(rows, np.flatnonzero(have))] @ weights.T
            covariance = r_mm - weights @ r_mo.T
        else:
            mean = np.zeros((len(rows), int(gone.sum())))
            covariance = r_mm
        root = np.linalg.cholesky(nearest_correlation_matrix(covariance, unit_diagonal=False))
        drawn = mean + rng.standard_normal(mean.shape) @ root.T
        for k, j in enumerate(np.flatnonzero(gone)):
            name = numeric[j]
            present = observed_sorted[name]
            position = np.clip(np.floor(norm.cdf(drawn[:, k]) * present.size), 0, present.size - 1).astype(
                int
            )
            column = out[name].to_numpy(copy=True)
            column[rows] = present[position]
            out[name] = pd.Series(column, index=out.index).astype(frame[name].dtype, errors="ignore")
    return out


def midrank_normal_scores(observed_sorted: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each value's normal score: the standard normal quantile of its mid-rank among the sorted
    observed values ((rank + 0.5) / (n + 1), ties sharing their mean rank); NaN stays NaN."""
    from scipy.stats import norm

    low = np.searchsorted(observed_sorted, x, side="left")
    high = np.searchsorted(observed_sorted, x, side="right")
    u = ((low + high) / 2 + 0.5) / (observed_sorted.size + 1)
    return np.where(np.isfinite(x), norm.ppf(u), np.nan)


def nearest_correlation_matrix(
    matrix: np.ndarray, *, unit_diagonal: bool = True, floor: float = 1e-6
) -> np.ndarray:
    """A symmetric positive definite matrix near `matrix` (eigenvalues floored), with a unit
    diagonal again when it is a correlation matrix."""
    symmetric = (matrix + matrix.T) / 2
    eigenvalues, vectors = np.linalg.eigh(symmetric)
    repaired = vectors @ np.diag(np.maximum(eigenvalues, floor)) @ vectors.T
    if unit_diagonal:
        scale = np.sqrt(np.diag(repaired))
        repaired = repaired / np.outer(scale, scale)
    return (repaired + repaired.T) / 2


# --- Joint missingness for the DP synthesizers ---------------------------------------------------
#
# A DP synthesizer may not learn which patterns occur (that is read from the data), so its pattern
# domain is every pattern the DECLARATIONS allow: each subset of the declared-nullable columns. With
# k of them that is 2^k cells; k above MAX_GROUP_COLUMNS is cut, in declared order, into near-equal
# groups of at most that many columns, each its own pattern variable (2^g cells). Which group a
# column falls in depends on the declarations only, never on the data. Within a group, cells are
# ordered by how many columns are missing (then by the bit pattern), so "more missing" is "higher"
# when a copula orders the cells.

MAX_GROUP_COLUMNS = 20  # 2^20 (about a million) declared patterns per group at most
SPURIOUS_CELLS = 0.05  # expected number of empty pattern cells whose noise survives the threshold


@dataclass(frozen=True)
class PatternGroup:
    """Declared-nullable columns whose missingness is modelled jointly, as one categorical variable."""

    columns: tuple[str, ...]

    @property
    def cells(self) -> int:
        return 2 ** len(self.columns)

    def bits(self) -> np.ndarray:
        """Cell -> which of the group's columns are missing (cells x columns, bool)."""
        return _ordered_bits(len(self.columns))

    def cell_codes(self, missing: np.ndarray) -> np.ndarray:
        """Each record's pattern cell from its missing flags (rows x columns, bool), record by record."""
        width = len(self.columns)
        weights = 1 << np.arange(width - 1, -1, -1)
        value = missing.astype(np.int64) @ weights
        return _cell_of_value(width)[value]


def declared_pattern_groups(nullable: list[str]) -> list[PatternGroup]:
    """The pattern variables for these declared-nullable columns (in declared order). None for fewer
    than two: one column's missing rate is already its marginal's missing cell."""
    if len(nullable) < 2:
        return []
    count = -(-len(nullable) // MAX_GROUP_COLUMNS)
    return [PatternGroup(tuple(str(n) for n in part)) for part in np.array_split(np.array(nullable), count)]


def _ordered_bits(width: int) -> np.ndarray:
    return _pattern_order(width)[0]


def _cell_of_value(width: int) -> np.ndarray:
    return _pattern_order(width)[1]


@functools.cache
def _pattern_order(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell -> missing flags, bit pattern as a number -> cell), cells by popcount then bits; cached
    and read-only (2^20 patterns take 20 MB of flags)."""
    values = np.arange(2**width, dtype=np.uint32)
    flags = ((values[:, None] >> np.arange(width - 1, -1, -1, dtype=np.uint32)) & 1).astype(bool)
    order = np.lexsort((values, flags.sum(axis=1)))  # by how many are missing, then by bits
    bits = flags[order]
    cell = np.empty(2**width, dtype=np.int64)
    cell[order] = np.arange(2**width)
    bits.setflags(write=False)
    cell.setflags(write=False)
    return bits, cell


def thresholded_distribution(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """Post-processing of a noisy pattern histogram: a distribution over the declared patterns.

    Most of the 2^g declared patterns are empty, and on a small table each empty cell's positive
    noise, summed over thousands of cells, would outweigh the real patterns (norm-sub still leaves a
    few spurious cells with the mass of a whole real pattern). So only cells at or above a threshold
    set by the noise and the number of cells (public: declarations, epsilon; `laplace_threshold`,
    `gaussian_threshold`) are kept, so that fewer than SPURIOUS_CELLS empty cells are expected to
    pass. Patterns rarer than the threshold are lost; that costs their (small) share.
    """
    counts = np.asarray(noisy, dtype=float)
    kept = np.where(counts >= threshold, counts, 0.0)
    if kept.sum() <= 0:  # nothing stands out of the noise: the most common noisy pattern only
        kept = np.zeros(len(counts))
        kept[int(np.argmax(counts))] = 1.0
    return kept / kept.sum()


@dataclass(frozen=True)
class ReleasedPatterns:
    """The post-processed pattern histograms: per group, the cells `thresholded_distribution` kept and
    their probabilities. This, not the 2^g raw noisy counts, is what a released state saves (and no
    count: a noisy count can equal the row count by chance, which a saved state must not show)."""

    groups: list[PatternGroup]
    kept: list[dict[int, float]]

    @classmethod
    def from_noisy(
        cls, groups: list[PatternGroup], noisy: list[np.ndarray], threshold: Callable[[int], float]
    ) -> ReleasedPatterns:
        kept = []
        for counts in noisy:
            p = thresholded_distribution(counts, threshold(len(counts)))
            kept.append({int(c): float(p[c]) for c in np.flatnonzero(p)})
        return cls(groups, kept)

    def distributions(self) -> list[np.ndarray]:
        out = []
        for group, kept in zip(self.groups, self.kept, strict=True):
            p = np.zeros(group.cells)
            p[list(kept)] = list(kept.values())
            out.append(p / p.sum())
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [list(g.columns) for g in self.groups],
            "kept": [[[cell, p] for cell, p in sorted(kept.items())] for kept in self.kept],
        }

    @classmethod
    def from_json(cls, saved: dict[str, Any], nullable: set[str]) -> ReleasedPatterns:
        groups = [PatternGroup(tuple(str(n) for n in names)) for names in saved["groups"]]
        kept = [{int(cell): float(p) for cell, p in items} for items in saved["kept"]]
        if (
            len(kept) != len(groups)
            or any(not set(g.columns) <= nullable for g in groups)
            or any(
                not k or not all(0 <= c < g.cells and p > 0 for c, p in k.items())
                for g, k in zip(groups, kept, strict=False)
            )
        ):
            raise ValueError("The saved DP state's missingness patterns do not match its declared domain.")
        return cls(groups, kept)


def laplace_threshold(scale: float, cells: int) -> float:
    """Two-sided geometric noise of scale b (sensitivity / epsilon): P(noise >= t) <= exp(-t / b)."""
    return scale * float(np.log(max(cells, 2) / SPURIOUS_CELLS))


def gaussian_threshold(sigma: float, cells: int) -> float:
    """(Discrete) Gaussian noise of scale sigma: P(noise >= t) <= exp(-t^2 / (2 sigma^2))."""
    return sigma * float(np.sqrt(2 * np.log(max(cells, 2) / SPURIOUS_CELLS)))


def missing_flags(codes: np.ndarray, domains: list[ColumnDomain], group: PatternGroup) -> np.ndarray:
    """rows x group columns: is the record's cell its column's declared missing cell (record alone)."""
    index = {d.name: j for j, d in enumerate(domains)}
    return np.column_stack(
        [codes[:, index[name]] == domains[index[name]].missing_cell for name in group.columns]
    )


def noisy_pattern_counts(
    groups: list[PatternGroup],
    cells: np.ndarray,
    epsilon: Decimal,
    ledger: PrivacyLedger,
    *,
    k: int = 1,
) -> list[np.ndarray]:
    """Discrete (geometric) noise on every declared pattern cell of every group.

    `cells` is rows x groups, each record's pattern cell in each group. One record falls in exactly
    one cell of each group, so one unit (k rows) moves the concatenated histograms by at most
    groups x k in L1: coordinate-wise geometric noise at that sensitivity is epsilon-DP for all of them.
    """
    mechanism = recorded_geometric(
        ledger,
        "missingness patterns",
        f"Geometric (two-sided geometric, integer counts), {sum(g.cells for g in groups)} declared patterns",
        epsilon,
        len(groups) * k,
    )
    released = []
    for g, group in enumerate(groups):
        counts = np.bincount(cells[:, g], minlength=group.cells)
        released.append(np.array([mechanism.randomise(int(c)) for c in counts], dtype=np.int64))
    return released

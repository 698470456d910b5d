"""Joint missingness for the non-DP synthesizers: cells that are missing together stay together.

SDV (like most synthesizers) decides per column whether a cell is missing, independently of the
other columns, so a lab panel missing as a block in the source comes out missing cell by cell at
random: per-column rates are right, the pattern is lost. Here the pattern is modelled as data:

1. Each training row's *missingness pattern* (which of the nullable columns are missing) becomes one
   categorical column. Patterns held by fewer than `MIN_PATTERN_ROWS` rows (and beyond the
   `MAX_PATTERNS` most common) are pooled into their nearest kept pattern (fewest columns differing,
   then the more common one): a rare pattern is itself a small cell that could single a patient out.
2. The missing cells are filled by a hot deck: a value drawn at random from the column's observed
   values, so the column's marginal is not distorted by a spike at its mean.
3. The synthesizer learns the pattern column jointly with the values (the copula through its
   correlation matrix, CTGAN/TVAE as one more discrete column), so patterns co-vary with the values
   and the outcome, as in the source.
4. After sampling, each synthetic row's cells that its synthesized pattern says are missing are
   blanked, and the pattern column is dropped.

A column the steward declares non-nullable is never part of a pattern: it is filled and never
blanked, so no missing value is invented in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from generation.synthesizers.base import ColumnSpec

PATTERN_COLUMN = "__synthgate_missing_pattern__"
MIN_PATTERN_ROWS = 5
MAX_PATTERNS = 40


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
    mapping = {key: _nearest(key, kept, counts) for key in counts.index}
    labels = {key: f"p{i}" for i, key in enumerate(kept)}
    out = _hot_deck(frame, columns, seed=seed)
    out[PATTERN_COLUMN] = [labels[mapping[k]] for k in keys]
    patterns = {labels[k]: tuple(c for c, bit in zip(gappy, k, strict=True) if bit == "1") for k in kept}
    return out, MissingPatterns(gappy, patterns)


def _nearest(key: str, kept: list[str], counts: pd.Series) -> str:
    if key in kept:
        return key
    # Fewest columns differing; among equals, the most common pattern (kept is in that order).
    return min(kept, key=lambda k: sum(a != b for a, b in zip(k, key, strict=True)))


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

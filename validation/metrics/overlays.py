"""Per-column distribution summaries for the report's overlay charts, with small cells suppressed.

The training side is an aggregate of real records, so a bin or category holding fewer than k
training rows is not shown (it could single out one patient, such as the only 101-year-old).
The synthetic side is the release itself and is shown in full.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from validation.metrics.columns import MISSING, ColumnInfo, as_labels, as_numbers

BINS = 20
TOP_CATEGORIES = 20
SUPPRESSED = "other (small counts)"


def distribution_overlays(
    training: pd.DataFrame, synthetic: pd.DataFrame, infos: list[ColumnInfo], *, k: int = 5
) -> dict[str, Any]:
    return {
        info.name: (
            _continuous(training, synthetic, info, k)
            if info.continuous
            else _discrete(training, synthetic, info, k)
        )
        for info in infos
    }


def _continuous(training: pd.DataFrame, synthetic: pd.DataFrame, info: ColumnInfo, k: int) -> dict[str, Any]:
    real = as_numbers(training[info.name], info.kind).dropna().to_numpy()
    syn = as_numbers(synthetic[info.name], info.kind).dropna().to_numpy()
    if len(real) == 0:
        return {"type": "histogram", "edges": [], "training": [], "synthetic": []}
    # Inner quantiles, not min/max: the extreme edges would publish the most outlying values.
    low, high = np.quantile(real, [0.01, 0.99])
    if high <= low:
        low, high = float(real.min()), float(real.max()) + 1.0
    edges = np.linspace(low, high, BINS + 1)
    real_counts, _ = np.histogram(np.clip(real, low, high), bins=edges)
    syn_counts, _ = np.histogram(np.clip(syn, low, high), bins=edges)
    shown = real_counts >= k
    return {
        "type": "histogram",
        "unit": "epoch seconds" if info.kind == "datetime" else "",
        "edges": [float(e) for e in np.round(edges, 6)],
        "training": [
            round(c / len(real), 6) if keep else None for c, keep in zip(real_counts, shown, strict=True)
        ],
        "synthetic": [round(c / len(syn), 6) if len(syn) else 0.0 for c in syn_counts],
        "suppressed_bins": int((~shown & (real_counts > 0)).sum()),
    }


def _discrete(training: pd.DataFrame, synthetic: pd.DataFrame, info: ColumnInfo, k: int) -> dict[str, Any]:
    real_counts = as_labels(training[info.name]).value_counts()
    syn_shares = as_labels(synthetic[info.name]).value_counts(normalize=True)
    shown = [c for c in real_counts.index if real_counts[c] >= k][:TOP_CATEGORIES]
    labels = ["(missing)" if c == MISSING else c for c in shown]
    real_shares = real_counts / max(1, real_counts.sum())
    rest_real = float(1.0 - real_shares[shown].sum()) if len(real_shares) else 0.0
    rest_syn = float(1.0 - syn_shares.reindex(shown, fill_value=0.0).sum())
    training_shares = [round(float(real_shares[c]), 6) for c in shown]
    synthetic_shares = [round(float(syn_shares.get(c, 0.0)), 6) for c in shown]
    # One bar for everything hidden or unseen, only when there is something in it.
    if rest_real > 1e-9 or rest_syn > 1e-9:
        labels, training_shares, synthetic_shares = (
            [*labels, SUPPRESSED],
            [*training_shares, round(max(rest_real, 0.0), 6)],
            [*synthetic_shares, round(max(rest_syn, 0.0), 6)],
        )
    return {"type": "bar", "categories": labels, "training": training_shares, "synthetic": synthetic_shares}

"""Utility and privacy metrics on a training table, a synthetic table and the locked holdout.

Pure functions of DataFrames; results are aggregates (scores, counts, rates, histograms), never
rows of any table. `validation.suite` runs them guarded and turns them into gate checks.
"""

from validation.metrics.columns import ColumnInfo, column_infos
from validation.metrics.privacy import exact_copies, replicated_uniques
from validation.metrics.utility import column_pair_trends, column_shapes, ks_complement, tv_complement

__all__ = [
    "ColumnInfo",
    "column_infos",
    "column_pair_trends",
    "column_shapes",
    "exact_copies",
    "ks_complement",
    "replicated_uniques",
    "tv_complement",
]

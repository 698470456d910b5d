"""Each column's DECLARED domain as a finite list of cells, and the map of records into it.

A DP synthesizer may use only what the steward declared (ColumnSpec.lower/upper/categories,
nullable) plus request options; nothing here reads a bound, a category or a dtype from the data.
So the set of cells, the released dtypes and the category set are the same for any two
neighbouring datasets, and every record maps to at most one cell per column by a rule that looks
at that record alone (which is what the sensitivity arguments in dp_copula rely on).

Cells, in order:
- numeric / date-time: `bins` equal-width bins over [lower, upper] (date-times as epoch seconds);
  values are clipped into the bounds first, so an extreme value lands in the end bin. Integer
  columns (option `integer_columns`) get bins on whole-number boundaries, one per value when the
  range is small.
- categorical / boolean: the declared categories, in declared order. A value outside them goes to
  the declared catch-all (option `other_category`) when there is one; otherwise it counts nowhere.
- then, for a nullable column, one "missing" cell. In a non-nullable column a missing value, like an
  undeclared category, counts nowhere: it cannot create a cell the steward did not declare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from generation.choices import ColumnKind
from generation.synthesizers.base import ColumnSpec

NOWHERE = -1  # code of a value that counts in no cell of its column
NUMERIC_KINDS = (ColumnKind.NUMERIC, ColumnKind.DATETIME)
CATEGORICAL_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)


def _refuse(spec: ColumnSpec, what: str) -> ValueError:
    return ValueError(
        f"Column {spec.name!r} has no declared {what}. A differentially private synthesizer uses only "
        "metadata the data steward declared, never values read from the data: ask the steward to "
        f"declare its {what}, or leave the column out of the request."
    )


@dataclass(frozen=True)
class ColumnDomain:
    spec: ColumnSpec
    edges: np.ndarray | None  # numeric: bin edges, len = bins + 1
    labels: tuple[str, ...]  # categorical: declared categories
    other: int | None  # categorical: cell of the declared catch-all
    integer: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    @property
    def value_cells(self) -> int:
        return len(self.edges) - 1 if self.edges is not None else len(self.labels)

    @property
    def cells(self) -> int:
        return self.value_cells + (1 if self.spec.nullable else 0)

    @property
    def missing_cell(self) -> int | None:
        return self.value_cells if self.spec.nullable else None

    def encode(self, values: pd.Series) -> np.ndarray:
        """One cell index per record (or NOWHERE), each from that record's value alone."""
        codes = self._encode_numeric(values) if self.numeric else self._encode_categorical(values)
        missing = self.missing_cell
        return np.where(codes == _MISSING, NOWHERE if missing is None else missing, codes)

    def _encode_numeric(self, values: pd.Series) -> np.ndarray:
        assert self.edges is not None
        x = _as_epoch_seconds(values) if self.spec.kind == ColumnKind.DATETIME else _as_float(values)
        lower, upper = self.edges[0], self.edges[-1]
        clipped = np.clip(x, lower, upper)  # NaN stays NaN; +/-inf land on a bound
        bins = len(self.edges) - 1
        cell = np.floor((clipped - lower) / (upper - lower) * bins)
        cell = np.clip(np.nan_to_num(cell, nan=0.0), 0, bins - 1).astype(np.int64)
        return np.where(np.isnan(x), _MISSING, cell)

    def _encode_categorical(self, values: pd.Series) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        fallback = NOWHERE if self.other is None else self.other
        codes = [_MISSING if _is_missing(v) else index.get(_category_key(v), fallback) for v in values]
        return np.asarray(codes, dtype=np.int64)

    def decode(self, cells: np.ndarray, within: np.ndarray) -> pd.Series:
        """Released values: `within` in [0, 1) places a value inside its numeric bin."""
        return self._decode_numeric(cells, within) if self.numeric else self._decode_categorical(cells)

    def _decode_numeric(self, cells: np.ndarray, within: np.ndarray) -> pd.Series:
        assert self.edges is not None
        missing = cells == self.missing_cell
        safe = np.where(missing, 0, cells)
        lo, hi = self.edges[safe], self.edges[safe + 1]
        values = np.clip(lo + within * (hi - lo), self.edges[0], self.edges[-1])
        if self.spec.kind == ColumnKind.DATETIME:
            seconds = np.where(missing, np.nan, np.round(values))
            return pd.Series(pd.to_datetime(seconds, unit="s"), name=self.name)
        if self.integer:
            whole = np.clip(np.round(values), math.ceil(self.spec.lower), math.floor(self.spec.upper))  # type: ignore[arg-type]
            dtype = "Int64" if self.spec.nullable else "int64"  # from the declaration, not the sample
            series = pd.Series(whole.astype(np.int64), name=self.name).astype(dtype)
            return series.mask(missing) if self.spec.nullable else series
        return pd.Series(np.where(missing, np.nan, values), name=self.name, dtype="float64")

    def _decode_categorical(self, cells: np.ndarray) -> pd.Series:
        labels = np.asarray(self.labels + (None,), dtype=object)
        index = np.where(cells == self.missing_cell, len(self.labels), cells)
        return pd.Series(labels[index], name=self.name, dtype=object)


_MISSING = -2  # internal marker, resolved by ColumnDomain.encode


def _is_missing(value: Any) -> bool:
    return (
        value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))
    )


def _category_key(value: Any) -> str:
    """How a cell value is compared with the declared (string) categories. A whole float prints as
    an int, so 1.0 matches a declared "1" (pandas turns int columns with gaps into floats)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _as_epoch_seconds(values: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.to_numpy(dtype=float)


def column_domain(spec: ColumnSpec, *, bins: int, integer: bool, other: str | None) -> ColumnDomain:
    """The declared domain of one column, or a ValueError naming what the steward must declare."""
    if spec.kind in NUMERIC_KINDS:
        return _numeric_domain(spec, bins=bins, integer=integer)
    if spec.kind in CATEGORICAL_KINDS:
        return _categorical_domain(spec, other=other)
    raise ValueError(
        f"Column {spec.name!r} is {spec.kind} and cannot be synthesized with differential privacy; "
        "leave it out of the request."
    )


def _numeric_domain(spec: ColumnSpec, *, bins: int, integer: bool) -> ColumnDomain:
    lower, upper = spec.lower, spec.upper
    if lower is None or upper is None:
        raise _refuse(spec, "bounds (lower and upper)")
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"Column {spec.name!r} has declared bounds that are not finite with lower < upper.")
    if integer:
        first, last = math.ceil(lower), math.floor(upper)
        if first > last:
            raise ValueError(f"Column {spec.name!r} is declared integer but its bounds hold no whole number.")
        count = min(bins, last - first + 1)
        # Edges on half-integers: each bin holds whole values only, one each when the range is small.
        edges = first - 0.5 + (last - first + 1) * np.arange(count + 1) / count
    else:
        edges = np.linspace(lower, upper, bins + 1)
    return ColumnDomain(spec, edges=edges, labels=(), other=None, integer=integer)


def _categorical_domain(spec: ColumnSpec, *, other: str | None) -> ColumnDomain:
    labels = tuple(spec.categories or ())
    if not labels:
        raise _refuse(spec, "categories")
    if len(set(labels)) != len(labels):
        raise ValueError(f"Column {spec.name!r} declares the same category twice.")
    if other is not None and other not in labels:
        raise ValueError(
            f"Option 'other_category' for column {spec.name!r} must be one of its declared categories."
        )
    return ColumnDomain(
        spec, edges=None, labels=labels, other=None if other is None else labels.index(other), integer=False
    )


def table_domain(
    columns: list[ColumnSpec], *, bins: int, integer_columns: list[str], other_category: Mapping[str, str]
) -> list[ColumnDomain]:
    names = {c.name for c in columns}
    for option, referenced in (
        ("integer_columns", integer_columns),
        ("other_category", list(other_category)),
    ):
        unknown = sorted(set(referenced) - names)
        if unknown:
            raise ValueError(f"Option {option!r} names column(s) not in the request: {', '.join(unknown)}.")
    for spec in columns:
        if spec.name in integer_columns and spec.kind != ColumnKind.NUMERIC:
            raise ValueError(f"Option 'integer_columns' may name numeric columns only, not {spec.name!r}.")
    return [
        column_domain(c, bins=bins, integer=c.name in integer_columns, other=other_category.get(c.name))
        for c in columns
    ]

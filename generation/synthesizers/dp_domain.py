"""Each column's DECLARED domain as a finite list of cells, and the map of records into it.

A DP synthesizer may use only what the steward declared (ColumnSpec.lower/upper/categories,
nullable) plus request options; nothing here reads a bound, a category or a dtype from the data.
So the set of cells, the released dtypes and the category set are the same for any two
neighbouring datasets, and every record maps to at most one cell per column by a rule that looks
at that record alone (which is what the sensitivity arguments in dp_copula rely on): values are
read one at a time (typed reading, below), never by parsing a whole column at once.

Cells, in order:
- numeric / date-time: `bins` equal-width bins over [lower, upper] (date-times as epoch seconds);
  values are clipped into the bounds first, so an extreme value lands in the end bin. Integer
  columns (`ColumnSpec.integer`, or the older option `integer_columns`) get bins on whole-number
  boundaries, one per value when the range is small, and are released as int64 (Int64 when
  nullable) whatever the data holds.
- categorical / boolean: the declared categories, in declared order. A value outside them goes to
  the declared catch-all (option `other_category`) when there is one; otherwise it counts nowhere.
- then, for a nullable column, one "missing" cell. In a non-nullable column a missing value, like an
  undeclared category, counts nowhere: it cannot create a cell the steward did not declare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
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
    text_index: Mapping[str, int] = field(default_factory=dict)  # categorical: label -> cell
    number_index: Mapping[float, int] = field(default_factory=dict)  # numeric labels -> cell
    points: np.ndarray | None = None  # numeric with declared allowed values: one cell per value

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
        if self.points is not None:
            # The nearest declared value: a cell per value, edges at the midpoints (one record alone).
            cell = np.searchsorted(self.edges[1:-1], np.nan_to_num(clipped, nan=lower), side="left")
            return np.where(np.isnan(x), _MISSING, cell.astype(np.int64))
        cell = np.floor((clipped - lower) / (upper - lower) * bins)
        cell = np.clip(np.nan_to_num(cell, nan=0.0), 0, bins - 1).astype(np.int64)
        return np.where(np.isnan(x), _MISSING, cell)

    def _encode_categorical(self, values: pd.Series) -> np.ndarray:
        fallback = NOWHERE if self.other is None else self.other
        memo: dict[tuple[type, Any], int] = {}  # keyed by type too: 1, 1.0 and True are read apart
        codes = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values.tolist()):
            try:
                key = (type(value), value)
                if key not in memo:
                    memo[key] = self._category_cell(value, fallback)
                codes[i] = memo[key]
            except TypeError:  # unhashable
                codes[i] = self._category_cell(value, fallback)
        return codes

    def _category_cell(self, value: Any, fallback: int) -> int:
        """The declared category one value belongs to, read against the declaration: text matches
        text; a number (or numeric text, or a boolean) matches a label that stands for that number."""
        if _is_missing(value):
            return _MISSING
        boolean = self.spec.kind == ColumnKind.BOOLEAN
        if isinstance(value, str):
            text = value.strip()
            if text in self.text_index:
                return self.text_index[text]
            number = _label_number(text, boolean=boolean)
        elif isinstance(value, bool | np.bool_):
            if str(bool(value)) in self.text_index:
                return self.text_index[str(bool(value))]
            number = float(value)
        elif isinstance(value, bool | np.bool_ | int | float | np.integer | np.floating | Decimal):
            number = float(value)
        else:
            return self.text_index.get(str(value).strip(), fallback)
        if number is not None and number in self.number_index:
            return self.number_index[number]
        return fallback

    def decode(self, cells: np.ndarray, within: np.ndarray) -> pd.Series:
        """Released values: `within` in [0, 1) places a value inside its numeric bin."""
        return self._decode_numeric(cells, within) if self.numeric else self._decode_categorical(cells)

    def _decode_numeric(self, cells: np.ndarray, within: np.ndarray) -> pd.Series:
        assert self.edges is not None
        missing = cells == self.missing_cell
        safe = np.where(missing, 0, cells)
        lo, hi = self.edges[safe], self.edges[safe + 1]
        values = np.clip(lo + within * (hi - lo), self.edges[0], self.edges[-1])
        if self.points is not None:
            values = self.points[safe]
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
_EPOCH = pd.Timestamp(0, tz="UTC")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return isinstance(value, np.datetime64) and np.isnat(value)


# Typed reading. Every function below reads ONE value and looks at nothing else: not its neighbours,
# not the column's dtype, not a format guessed from the first rows. (pd.to_datetime on a whole column
# guesses one format from the first value, so one "2021-06-01 09:30:00" row once sent 999 following
# "YYYY-MM-DD" values to the missing cell.) Results of pure per-value functions may be memoised by
# value without changing that.


def _number(value: Any) -> float:
    """A numeric cell as a float; NaN when missing or not a number."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return math.nan
    return math.nan


def _as_float(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        # Element-wise casts of numbers: the same per-value rule, done by numpy.
        return values.to_numpy(dtype=float, na_value=np.nan)
    memo: dict[str, float] = {}
    out = np.empty(len(values), dtype=float)
    for i, value in enumerate(values.tolist()):
        if isinstance(value, str):
            if value not in memo:
                memo[value] = _number(value)
            out[i] = memo[value]
        else:
            out[i] = _number(value)
    return out


def _epoch_seconds(value: Any) -> float:
    """A date-time cell as seconds since 1970-01-01 UTC (naive values read as UTC); NaN when missing
    or unparseable. Numbers are not guessed to be epoch times of some unit: they are unparseable."""
    if _is_missing(value) or isinstance(value, bool | int | float | np.number | Decimal):
        return math.nan
    try:
        stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return math.nan
    if stamp is pd.NaT or pd.isna(stamp):
        return math.nan
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return float((stamp - _EPOCH).total_seconds())


def _as_epoch_seconds(values: pd.Series) -> np.ndarray:
    memo: dict[tuple[type, Any], float] = {}
    out = np.empty(len(values), dtype=float)
    for i, value in enumerate(values.tolist()):
        try:
            key = (type(value), value)
            if key not in memo:
                memo[key] = _epoch_seconds(value)
            out[i] = memo[key]
        except TypeError:  # unhashable
            out[i] = _epoch_seconds(value)
    return out


_BOOLEAN_WORDS = {"true": 1.0, "false": 0.0}


def _label_number(label: str, *, boolean: bool) -> float | None:
    """The number a declared category label stands for, if any ("1" -> 1.0; for a boolean column
    also "True" -> 1.0), so a cell holding 1, 1.0 or True matches it whatever the column's dtype."""
    folded = label.strip().lower()
    if boolean and folded in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[folded]
    try:
        number = float(label.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
    if spec.allowed_values and spec.kind == ColumnKind.NUMERIC:
        return _allowed_values_domain(spec, integer=integer)
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


def _allowed_values_domain(spec: ColumnSpec, *, integer: bool) -> ColumnDomain:
    """A score or code: one cell per declared allowed value; a value maps to the nearest one."""
    assert spec.allowed_values and spec.lower is not None and spec.upper is not None
    points = np.unique(np.asarray(spec.allowed_values, dtype=float))
    if not np.isfinite(points).all() or points[0] < spec.lower or points[-1] > spec.upper:
        raise ValueError(f"Column {spec.name!r} declares allowed values outside its declared bounds.")
    if integer and not all(float(p).is_integer() for p in points):
        raise ValueError(f"Column {spec.name!r} is declared integer but allows a value that is not whole.")
    edges = np.concatenate([[spec.lower], (points[1:] + points[:-1]) / 2, [spec.upper]])
    return ColumnDomain(spec, edges=edges, labels=(), other=None, integer=integer, points=points)


def _categorical_domain(spec: ColumnSpec, *, other: str | None) -> ColumnDomain:
    labels = tuple(spec.categories or ())
    if not labels:
        raise _refuse(spec, "categories")
    if len({label.strip() for label in labels}) != len(labels):
        raise ValueError(f"Column {spec.name!r} declares the same category twice.")
    if other is not None and other not in labels:
        raise ValueError(
            f"Option 'other_category' for column {spec.name!r} must be one of its declared categories."
        )
    numbers: dict[float, int] = {}
    for i, label in enumerate(labels):
        number = _label_number(label, boolean=spec.kind == ColumnKind.BOOLEAN)
        if number is None:
            continue
        if number in numbers:
            raise ValueError(
                f"Column {spec.name!r} declares two categories that stand for the same number "
                f"({labels[numbers[number]]!r} and {label!r}); declare each value once."
            )
        numbers[number] = i
    return ColumnDomain(
        spec,
        edges=None,
        labels=labels,
        other=None if other is None else labels.index(other),
        integer=False,
        text_index={label.strip(): i for i, label in enumerate(labels)},
        number_index=numbers,
    )


def is_integer_column(spec: ColumnSpec, integer_columns: list[str]) -> bool:
    """Declared whole-number column: by the declaration, or (older callers) by option."""
    return spec.integer or spec.name in integer_columns


def table_domain(
    columns: list[ColumnSpec], *, bins: int, integer_columns: list[str], other_category: Mapping[str, str]
) -> list[ColumnDomain]:
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError("A column is named twice in the request.")
    for option, referenced in (
        ("integer_columns", integer_columns),
        ("other_category", list(other_category)),
    ):
        unknown = sorted(set(referenced) - set(names))
        if unknown:
            raise ValueError(f"Option {option!r} names column(s) not in the request: {', '.join(unknown)}.")
    for spec in columns:
        if is_integer_column(spec, integer_columns) and spec.kind != ColumnKind.NUMERIC:
            raise ValueError(
                f"Only numeric columns can be declared integer (whole numbers), not {spec.name!r}."
                if spec.integer
                else f"Option 'integer_columns' may name numeric columns only, not {spec.name!r}."
            )
    return [
        column_domain(
            c, bins=bins, integer=is_integer_column(c, integer_columns), other=other_category.get(c.name)
        )
        for c in columns
    ]


def spec_to_json(spec: ColumnSpec) -> dict[str, Any]:
    """A declaration as JSON (public metadata: the steward's declaration, nothing from the data)."""
    return {
        "name": spec.name,
        "kind": str(getattr(spec.kind, "value", spec.kind)),
        "lower": spec.lower,
        "upper": spec.upper,
        "categories": list(spec.categories) if spec.categories is not None else None,
        "nullable": spec.nullable,
        "integer": spec.integer,
        "decimals": spec.decimals,
        "allowed_values": list(spec.allowed_values) if spec.allowed_values is not None else None,
    }


def spec_from_json(item: Mapping[str, Any]) -> ColumnSpec:
    categories = item.get("categories")
    return ColumnSpec(
        name=str(item["name"]),
        kind=str(item["kind"]),
        lower=item.get("lower"),
        upper=item.get("upper"),
        categories=tuple(categories) if categories is not None else None,
        nullable=bool(item.get("nullable", True)),
        integer=bool(item.get("integer", False)),
        decimals=item.get("decimals"),
        allowed_values=tuple(float(v) for v in allowed) if (allowed := item.get("allowed_values")) else None,
    )


def rows_kept_per_entity(entities: pd.Series, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the rows kept when each entity (patient) may contribute at most k rows.

    Each entity's kept rows are a uniformly random k-subset of ITS rows (all of them when it has at
    most k), drawn independently of every other entity: whether a row is kept depends on that
    entity's rows alone, so adding or removing one patient changes the kept table by at most k rows
    of that patient. A missing id is its own entity (a row nobody else can be linked to). How many
    rows were dropped is never reported.
    """
    codes, _ = pd.factorize(entities.reset_index(drop=True), use_na_sentinel=True)
    codes = codes.astype(np.int64)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    keys = rng.random(len(codes))
    order = np.lexsort((keys, codes))  # by entity, then by a random key within the entity
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < k])

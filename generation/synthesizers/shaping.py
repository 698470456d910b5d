"""Released values that look like the source: declared precision, allowed values, whole numbers.

A synthesizer's raw output is continuous: a lab value recorded to 2 decimals comes out as
3.624741528961639 and a coma score that takes a handful of values comes out on every integer of its
range. Each numeric column is shaped after sampling (post-processing only):

- `allowed_values` (a score or code: the only values the column takes): each value is snapped to
  the nearest allowed value (ties go to the smaller one);
- otherwise `decimals`: values are rounded to that many decimals;
- whole-number columns (`integer`, or 0 decimals) are released as int64 (Int64 when missing values
  remain), so a CSV prints 7, not 7.0.

Where the shape comes from:
- DP synthesizers: the steward's declaration only (`declared_shapes`), never the data.
- Non-DP synthesizers: the declaration first; what is not declared is learnt from the training rows
  (`learned_shapes`): the precision the values are recorded to (at most `MAX_LEARNED_DECIMALS`), and,
  for a column with few distinct values, its observed support. These synthesizers already learn
  everything else from the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from generation.choices import ColumnKind
from generation.synthesizers.base import ColumnSpec

MAX_DECIMALS = 10  # the declaration's cap
# More than this is a computed value (1/3, a model's score), not a precision. Was 6: a public ICU
# table exported from single-precision floats records labs as 0.19998169 (8 decimals), and its
# copula release printed them to 16 (0.09999084 -> 38.57326871934811); 10 is the declaration's cap.
MAX_LEARNED_DECIMALS = MAX_DECIMALS
MAX_LEARNED_SUPPORT = 20  # a numeric column with at most this many distinct values is snapped to them
MAX_ALLOWED_VALUES = 1000


@dataclass(frozen=True)
class ValueShape:
    """How one numeric column's released values are shaped."""

    name: str
    decimals: int | None = None
    support: tuple[float, ...] | None = None
    integer: bool = False

    @property
    def whole(self) -> bool:
        if self.support is not None:
            return all(float(v).is_integer() for v in self.support)
        return self.integer or self.decimals == 0


def declared_shapes(columns: Iterable[ColumnSpec]) -> list[ValueShape]:
    """Shapes from the steward's declaration alone (what a DP synthesizer may use)."""
    return [
        ValueShape(
            spec.name,
            decimals=0 if spec.integer else spec.decimals,
            support=tuple(sorted(float(v) for v in spec.allowed_values)) if spec.allowed_values else None,
            integer=spec.integer,
        )
        for spec in columns
        if spec.kind == ColumnKind.NUMERIC
    ]


def learned_shapes(frame: pd.DataFrame, columns: Iterable[ColumnSpec]) -> list[ValueShape]:
    """The declaration, completed from the training rows where it says nothing (non-DP only)."""
    shapes = []
    for shape in declared_shapes(columns):
        if shape.support is not None or shape.name not in frame.columns:
            shapes.append(shape)
            continue
        values = pd.to_numeric(frame[shape.name], errors="coerce").dropna().to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            shapes.append(shape)
            continue
        observed = np.unique(values)
        support = tuple(float(v) for v in observed) if len(observed) <= MAX_LEARNED_SUPPORT else None
        decimals = shape.decimals if shape.decimals is not None else recorded_decimals(values)
        shapes.append(ValueShape(shape.name, decimals=decimals, support=support, integer=shape.integer))
    return shapes


def recorded_decimals(values: np.ndarray) -> int | None:
    """The fewest decimals that reproduce every value, or None when more than the learned cap."""
    scale = np.maximum(np.abs(values), 1.0)
    for decimals in range(MAX_LEARNED_DECIMALS + 1):
        if np.all(np.abs(np.round(values, decimals) - values) <= 1e-12 * scale):
            return decimals
    return None


def shape_frame(frame: pd.DataFrame, shapes: Iterable[ValueShape]) -> pd.DataFrame:
    """A copy of `frame` with each shaped column snapped, rounded and typed; missing stays missing."""
    shaped = frame.copy()
    for shape in shapes:
        if shape.name in shaped.columns:
            shaped[shape.name] = shape_values(shaped[shape.name], shape)
    return shaped


def shape_values(series: pd.Series, shape: ValueShape) -> pd.Series:
    if shape.support is None and shape.decimals is None and not shape.integer:
        return series  # nothing declared or learnt: left exactly as the synthesizer made it
    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    values = numbers.to_numpy(copy=True)
    present = np.isfinite(values)
    if shape.support is not None:
        values[present] = snap(values[present], np.asarray(shape.support, dtype=float))
    elif shape.decimals is not None:
        values[present] = np.round(values[present], shape.decimals)
    elif shape.integer:
        values[present] = np.round(values[present])
    out = pd.Series(values, index=series.index, name=series.name)
    if shape.whole and not np.isinf(values).any():
        if isinstance(series.dtype, pd.Int64Dtype):
            return out.astype("Int64")  # a DP release's dtype follows the declaration, kept as it is
        return out.astype("Int64") if out.isna().any() else out.astype("int64")
    return out


def snap(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Each value replaced by the nearest point of the (sorted) support."""
    if support.size == 1:
        return np.full_like(values, support[0])
    right = np.clip(np.searchsorted(support, values), 1, support.size - 1)
    left = right - 1
    nearer_left = np.abs(values - support[left]) <= np.abs(support[right] - values)
    return np.where(nearer_left, support[left], support[right])


def check_allowed_values(values: Iterable[float], *, lower: float | None, upper: float | None) -> str:
    """Why a declared list of allowed values is unusable ("" when it is fine)."""
    listed = list(values)
    if not listed:
        return "declare at least one allowed value, or leave the list empty"
    if len(listed) > MAX_ALLOWED_VALUES:
        return f"at most {MAX_ALLOWED_VALUES} allowed values"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in listed):
        return "allowed values must be finite numbers"
    if lower is not None and min(listed) < lower or upper is not None and max(listed) > upper:
        return "allowed values must lie within the declared bounds"
    return ""

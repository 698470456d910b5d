from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pandas as pd

ProgressFn = Callable[[float, str], None]
"""Called with (fraction of this synthesizer's work done, stage label)."""


@dataclass(frozen=True)
class ColumnSpec:
    """A column as the steward declared it. DP synthesizers may use only these fields as public
    metadata: `lower`/`upper` for numeric and datetime columns (datetimes as epoch seconds),
    `categories` for categorical and boolean columns, `integer` for whole-number numeric columns.
    They never look at the data to find them (not even a column's dtype).

    `decimals` (numeric: the precision values are recorded to) and `allowed_values` (numeric scores
    and codes: the only values the column takes) shape released values (generation.synthesizers
    .shaping); `outcome` marks the declared outcome, which the Gaussian copula may stratify on.
    """

    name: str
    kind: str  # generation.choices.ColumnKind
    lower: float | None = None
    upper: float | None = None
    categories: tuple[str, ...] | None = None
    nullable: bool = True
    integer: bool = False  # numeric columns only: released as whole numbers, dtype int64/Int64
    decimals: int | None = None  # numeric columns only: released rounded to this many decimals
    allowed_values: tuple[float, ...] | None = None  # numeric columns only: released on these values
    outcome: bool = False  # the steward's declared outcome (train-on-synthetic predicts it)


class Synthesizer(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]
    is_dp: ClassVar[bool]

    def fit_sample(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        rows: int,
        seed: int,
        progress: ProgressFn,
    ) -> pd.DataFrame: ...

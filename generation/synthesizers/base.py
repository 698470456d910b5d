from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pandas as pd

ProgressFn = Callable[[float, str], None]
"""Called with (fraction of this synthesizer's work done, stage label)."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # generation.choices.ColumnKind


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

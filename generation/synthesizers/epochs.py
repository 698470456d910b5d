"""Per-epoch progress from inside the training loops of ctgan's CTGAN/TVAE and deepecho's PAR.

None of the three models (ctgan==0.12.1, deepecho==0.8.1, as wrapped by sdv==2.0.0) takes a
callback; their only per-epoch signals are a tqdm bar (disabled unless verbose) and the
`loss_values` DataFrame, which every one of them reassigns exactly once at the end of each epoch
with an `Epoch` column holding the 0-based epoch number. `EpochReporting` turns that attribute into
a property whose setter reports `max(Epoch) + 1` epochs done, so progress follows real epochs, not a
timer. The synthesizer tests assert one report per epoch, which catches a library change that
breaks the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EpochFn = Callable[[int], None]
"""Called with the number of epochs completed so far (1..epochs)."""


class EpochReporting:
    """Mixin placed before the library model class: `class _CTGAN(EpochReporting, CTGAN)`."""

    @property
    def loss_values(self) -> Any:
        return self.__dict__.get("_loss_values")

    @loss_values.setter
    def loss_values(self, value: Any) -> None:
        self.__dict__["_loss_values"] = value
        report: EpochFn | None = self.__dict__.get("_on_epoch")
        # The models also assign an empty frame before the first epoch: that is not progress.
        if report is not None and value is not None and len(value):
            report(int(value["Epoch"].max()) + 1)

    def report_epochs_to(self, report: EpochFn | None) -> None:
        self.__dict__["_on_epoch"] = report


def epoch_progress(
    progress: Callable[[float, str], None], *, epochs: int, start: float, end: float
) -> EpochFn:
    """An EpochFn that maps epoch k of `epochs` onto [start, end] of the synthesizer's progress."""

    def report(done: int) -> None:
        progress(start + (end - start) * min(done, epochs) / epochs, f"training epoch {done}/{epochs}")

    return report

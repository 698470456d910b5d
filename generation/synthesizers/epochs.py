"""Per-epoch progress from inside the training loops of ctgan's CTGAN/TVAE and deepecho's PAR.

None of the three models (ctgan==0.12.1, deepecho==0.8.1, as wrapped by sdv==2.0.0) takes a
callback; their only per-epoch signals are a tqdm bar (disabled unless verbose) and the
`loss_values` DataFrame, which every one of them reassigns exactly once at the end of each epoch
with an `Epoch` column holding the 0-based epoch number. `EpochReporting` turns that attribute into
a property whose setter reports `max(Epoch) + 1` epochs done, so progress follows real epochs, not a
timer. The synthesizer tests assert one report per epoch, which catches a library change that
breaks the hook.

Before epoch 1, ctgan fits its `DataTransformer` (a Bayesian Gaussian mixture per continuous
column: on large tables most of the time) and assigns it to `_transformer` (CTGAN) or `transformer`
(TVAE) just before fitting it. The same trick on those attributes wraps the new transformer's
per-column fit and its transform, so a stage callback reports "fitting transformers: column 3/36"
and "encoding the table" instead of no sign of life.

A time budget: an epoch report may raise `StopTraining` (the caller's epoch callback decides); it
is raised after the epoch's weights and losses are stored, so the model is left trained up to that
epoch and the caller catches it and samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EpochFn = Callable[[int], None]
"""Called with the number of epochs completed so far (1..epochs)."""

StageFn = Callable[[float, str], None]
"""Called with (fraction of the transformer fitting done, stage label)."""


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from an epoch report to end training early (the time budget is spent)."""


def _report_stage(owner: Any, fraction: float, label: str) -> None:
    report: StageFn | None = owner.__dict__.get("_on_stage")
    if report is not None:
        report(fraction, label)


def _hook_transformer(owner: Any, transformer: Any) -> None:
    """Wrap one DataTransformer instance's per-column fits and its transform with stage reports."""
    if transformer is None or owner.__dict__.get("_on_stage") is None:
        return
    done = {"columns": 0}

    def per_column(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(data: Any) -> Any:
            total = int(owner.__dict__.get("_stage_columns") or 0)
            column = done["columns"] + 1
            _report_stage(
                owner, (column - 1) / max(total, 1), f"fitting transformers: column {column}/{total}"
            )
            result = method(data)
            done["columns"] = column
            return result

        return wrapped

    for name in ("_fit_continuous", "_fit_discrete"):
        if hasattr(transformer, name):
            setattr(transformer, name, per_column(getattr(transformer, name)))
    fit, transform = transformer.fit, transformer.transform

    def fit_reporting(raw_data: Any, *args: Any, **kwargs: Any) -> Any:
        owner.__dict__["_stage_columns"] = getattr(raw_data, "shape", (0, 0))[1]
        return fit(raw_data, *args, **kwargs)

    def transform_reporting(raw_data: Any, *args: Any, **kwargs: Any) -> Any:
        _report_stage(owner, 1.0, "encoding the table")
        # From 500 rows on, ctgan's DataTransformer encodes its columns in joblib worker processes,
        # pickling itself: its instance must not hold these closures (they reach the torch model,
        # which refuses to pickle mid-fit). Fitting is over by now, so the hooks are done.
        for name in ("fit", "transform", "_fit_continuous", "_fit_discrete"):
            transformer.__dict__.pop(name, None)
        return transform(raw_data, *args, **kwargs)

    transformer.fit, transformer.transform = fit_reporting, transform_reporting


def hooked_attribute(name: str, on_set: Callable[[Any, Any], None]) -> Any:
    """A property for an attribute the library assigns inside `fit` (a transformer, a data sampler):
    the value is kept in the instance's dict and `on_set(instance, value)` runs on each assignment,
    so a hook is attached to the object the moment the library builds it."""
    key = f"{name}_value"

    def get(self: Any) -> Any:
        return self.__dict__.get(key)

    def set_(self: Any, value: Any) -> None:
        self.__dict__[key] = value
        on_set(self, value)

    return property(get, set_)


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

    def report_stages_to(self, report: StageFn | None) -> None:
        self.__dict__["_on_stage"] = report

    # CTGAN keeps its DataTransformer in `_transformer`, TVAE in `transformer`.
    _transformer = hooked_attribute("_transformer", _hook_transformer)
    transformer = hooked_attribute("transformer", _hook_transformer)


def epoch_progress(
    progress: Callable[[float, str], None], *, epochs: int, start: float, end: float
) -> EpochFn:
    """An EpochFn that maps epoch k of `epochs` onto [start, end] of the synthesizer's progress."""

    def report(done: int) -> None:
        progress(start + (end - start) * min(done, epochs) / epochs, f"training epoch {done}/{epochs}")

    return report

"""What every DP synthesizer shares: options, the privacy unit, fit/sample, the released state.

Lifecycle (docs/synthesizers.md, "Fit, released state, sample"):

    synth = synthesizer_for(name, epsilon=..., options=...)
    synth.fit(frame, columns=specs, progress=cb, entities=series_or_None)  # the mechanisms run here
    blob = synth.released_state()          # JSON bytes: DP outputs, declared domain, options, ledger
    synth.sample(rows=..., seed=...)       # post-processing only
    # a retry, without the data:
    synth = REGISTRY[name].from_released_state(blob, epsilon=..., options=...)
    synth.sample(rows=..., seed=...)

The privacy unit. With `entities` (the steward-declared entity column's values, aligned with the
frame's rows), each entity keeps at most k = `max_rows_per_entity` rows, chosen at random by a rule
that looks at that entity's rows only (dp_domain.rows_kept_per_entity), and every sensitivity is
scaled by k: adding or removing one patient changes the kept table by at most k rows. The guarantee
is then per patient. Without entities, the unit is one record (k is 1 whatever the option says).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.dp_budget import PrivacyLedger, Spend, parse_delta, parse_epsilon
from generation.synthesizers.dp_domain import (
    ColumnDomain,
    rows_kept_per_entity,
    spec_from_json,
    spec_to_json,
    table_domain,
)
from generation.synthesizers.options import Options, checked_options, int_option, str_list_option
from generation.synthesizers.shaping import declared_shapes, shape_frame

STATE_FORMAT = "synthgate.dp-released-state"
STATE_VERSION = 1
DEFAULT_DELTA = Decimal("1E-9")
DELTA_RANGE = (Decimal("1E-12"), Decimal("1E-5"))
MAX_ROWS_PER_ENTITY = 100
COMMON_OPTIONS = (
    "bins",
    "integer_columns",
    "other_category",
    "delta",
    "max_rows_per_entity",
    "entity_column",
)


def library_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def recorded_geometric(
    ledger: PrivacyLedger, step: str, description: str, epsilon: Decimal, sensitivity: int
) -> Any:
    """diffprivlib's Geometric mechanism at `epsilon` and L1 `sensitivity` (integers in and out),
    recorded in the ledger as `step` before anything is drawn: the budget is spent once the data
    is touched."""
    from diffprivlib.mechanisms import Geometric

    from generation.synthesizers.dp_budget import mechanism_epsilon

    mechanism = Geometric(epsilon=mechanism_epsilon(epsilon), sensitivity=sensitivity)
    ledger.record(
        step, description, epsilon, sensitivity, library="diffprivlib", version=library_version("diffprivlib")
    )
    return mechanism


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text without trailing zeros or exponent: 50 -> "50", 1E-9 -> "0.000000001"."""
    return format(value.normalize(), "f")


def mapping_option(options: Mapping[str, Any], key: str) -> dict[str, str]:
    value = options.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"Option {key!r} must map column names to one of their declared categories.")
    return dict(value)


def os_seeded_generator() -> np.random.Generator:
    """A generator for mechanism randomness, seeded by the OS, never by the job's (public) seed."""
    return np.random.default_rng(secrets.randbits(128))


class DPSynthesizer:
    """Base class; subclasses implement `_measure` (the mechanisms), `_released_payload`,
    `_restore_payload` (post-processing only) and `_sample`."""

    name: ClassVar[str]
    label: ClassVar[str]
    is_dp: ClassVar[bool] = True
    flavour: ClassVar[str]
    default_bins: ClassVar[int] = 20
    max_bins: ClassVar[int] = 200
    extra_options: ClassVar[tuple[str, ...]] = ()
    min_columns: ClassVar[int] = 1

    def __init__(self, epsilon: float | int | str | Decimal, options: Options | None = None) -> None:
        self.epsilon = parse_epsilon(epsilon)
        given = checked_options(self.name, options, allowed=COMMON_OPTIONS + self.extra_options)
        self.bins = int_option(given, "bins", default=self.default_bins, low=2, high=self.max_bins)
        self.integer_columns = str_list_option(given, "integer_columns")
        self.other_category = mapping_option(given, "other_category")
        self.delta = parse_delta(given.get("delta", DEFAULT_DELTA), low=DELTA_RANGE[0], high=DELTA_RANGE[1])
        self.max_rows_per_entity = int_option(
            given, "max_rows_per_entity", default=1, low=1, high=MAX_ROWS_PER_ENTITY
        )
        entity_column = given.get("entity_column")
        if entity_column is not None and (not isinstance(entity_column, str) or not entity_column):
            raise ValueError("Option 'entity_column' must name the dataset's entity (patient id) column.")
        self.entity_column: str | None = entity_column
        self._read_options(given)
        self.ledger = PrivacyLedger()
        self.unit = "record"
        self.columns: list[ColumnSpec] = []
        self.domains: list[ColumnDomain] = []
        self._ready = False

    # --- options ---------------------------------------------------------------------------

    def _read_options(self, given: dict[str, Any]) -> None:
        """Subclass hook for `extra_options`."""

    def settings(self) -> dict[str, Any]:
        """The parsed options, as JSON: stored in the released state and compared on restore."""
        return {
            "bins": self.bins,
            "integer_columns": sorted(self.integer_columns),
            "other_category": dict(sorted(self.other_category.items())),
            "delta": str(self.delta),
            "max_rows_per_entity": self.max_rows_per_entity,
            "entity_column": self.entity_column,
        }

    @property
    def rows_per_unit(self) -> int:
        """k: how many rows one unit (patient, or record) may contribute; every sensitivity x k."""
        return self.max_rows_per_entity if self.unit == "patient" else 1

    # --- accounting ------------------------------------------------------------------------

    def epsilon_spent(self) -> Decimal:
        """Exactly the epsilon this instance's mechanisms consumed (0 before a fit)."""
        return self.ledger.total()

    def delta_spent(self) -> Decimal:
        """Exactly the delta this instance's mechanisms consumed (0 before a fit; 0 for pure DP)."""
        return self.ledger.total_delta()

    def _unit_text(self) -> str:
        if self.unit == "patient":
            column = self.entity_column or "not named"
            return (
                f"per patient (entity column {column}), at most {self.max_rows_per_entity} rows each; "
                f"rows beyond {self.max_rows_per_entity} were dropped at random; how many were dropped "
                "is not released"
            )
        return "per record (no entity column declared: a patient with several rows is not protected as one)"

    def neighbouring(self) -> str:
        if self.unit == "patient":
            return f"add or remove all rows of one patient (at most {self.max_rows_per_entity})"
        return "add or remove one record"

    @property
    def privacy_statement(self) -> str:
        parts = "; ".join(
            f"{e.step}: {e.mechanism}, epsilon {e.epsilon}"
            + (f", delta {e.delta}" if e.delta else "")
            + f", sensitivity {e.sensitivity:g}"
            for e in self.ledger.entries
        )
        return (
            f"{self.flavour} {self._unit_text()}; neighbouring datasets: {self.neighbouring()}. "
            f"epsilon spent {self.epsilon_spent()} of {self.epsilon} requested, delta "
            f"{self.delta_spent()}, by {parts or 'nothing yet'}. Bounds, categories and integer flags "
            "are the steward's declarations, not read from the data."
        )

    def _mechanism_facts(self) -> list[dict[str, Any]]:
        return [
            {
                "step": e.step,
                "mechanism": e.mechanism,
                "library": e.library,
                "version": e.version,
                "epsilon": decimal_text(e.epsilon),
                "delta": decimal_text(e.delta),
                "sensitivity": f"{e.sensitivity:g}",
            }
            for e in self.ledger.entries
        ]

    def privacy_facts(self) -> dict[str, Any]:
        return {
            "dp": True,
            "unit": self.unit,
            "entity_column": self.entity_column if self.unit == "patient" else None,
            "max_rows_per_entity": self.rows_per_unit,
            "neighbouring": self.neighbouring(),
            "epsilon": decimal_text(self.epsilon_spent()),
            "delta": decimal_text(self.delta_spent()),
            "flavour": self.flavour,
            "mechanisms": self._mechanism_facts(),
        }

    # --- fit ---------------------------------------------------------------------------------

    def fit(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        progress: ProgressFn,
        entities: pd.Series | None = None,
    ) -> None:
        if self.ledger.entries or self._ready:
            raise RuntimeError("This DP synthesizer has already spent its budget; create a new one per job.")
        # Every refusal happens here, before any mechanism sees the data: a refused job spends nothing.
        if len(columns) < self.min_columns:
            raise ValueError(f"Synthesizer {self.name!r} needs at least {self.min_columns} columns.")
        domains = table_domain(
            columns, bins=self.bins, integer_columns=self.integer_columns, other_category=self.other_category
        )
        missing = [d.name for d in domains if d.name not in frame.columns]
        if missing:
            raise ValueError(f"Column(s) {', '.join(missing)} are not in the source table.")
        if entities is None and self.entity_column is not None:
            raise ValueError(
                f"Option 'entity_column' names {self.entity_column!r} but no entity values were given; "
                "a per-patient guarantee cannot be stated without them."
            )
        if entities is not None and len(entities) != len(frame):
            raise ValueError("The entity values must have one entry per row of the table.")
        self._prepare(domains)
        self.columns, self.domains = list(columns), domains
        self.unit = "patient" if entities is not None else "record"
        if entities is not None:
            kept = rows_kept_per_entity(entities, self.max_rows_per_entity, os_seeded_generator())
            frame = frame.iloc[kept]
        progress(0.05, "mapping records into the declared domain")
        codes = np.column_stack([d.encode(frame[d.name]) for d in domains])
        del frame
        self._measure(codes, progress)
        self._ready = True

    def _prepare(self, domains: list[ColumnDomain]) -> None:
        """Subclass hook: further refusals (before any data is read)."""

    def _measure(self, codes: np.ndarray, progress: ProgressFn) -> None:
        raise NotImplementedError

    # --- released state ------------------------------------------------------------------------

    def released_state(self) -> bytes:
        """The DP outputs, the declared domain, the options and the ledger, as JSON bytes.

        Nothing else: no source value, no row count, no dropped-row count. Restoring it with
        `from_released_state` and sampling is post-processing of these outputs only.
        """
        self._require_ready()
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "synthesizer": self.name,
            "epsilon": str(self.epsilon),
            "settings": self.settings(),
            "unit": self.unit,
            "columns": [spec_to_json(c) for c in self.columns],
            "ledger": [e.to_json() for e in self.ledger.entries],
            "released": self._released_payload(),
        }
        return json.dumps(state, sort_keys=True, allow_nan=False).encode("utf-8")

    @classmethod
    def from_released_state(
        cls, state: bytes, *, epsilon: float | int | str | Decimal, options: Options | None
    ) -> DPSynthesizer:
        """A synthesizer that can `sample` from a saved release, never needing the data. Its ledger
        is restored as already spent, so it cannot be fitted again."""
        synth = cls(epsilon=epsilon, options=options)
        try:
            saved = json.loads(state.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("The saved DP state is not readable JSON.") from None
        if saved.get("format") != STATE_FORMAT or saved.get("version") != STATE_VERSION:
            raise ValueError("The saved DP state is not in a format this version can read.")
        if saved.get("synthesizer") != cls.name:
            raise ValueError(
                f"The saved DP state was made by {saved.get('synthesizer')!r}, not {cls.name!r}."
            )
        if Decimal(saved["epsilon"]) != synth.epsilon:
            raise ValueError("The saved DP state was made with a different epsilon than the job's.")
        if saved["settings"] != json.loads(json.dumps(synth.settings())):
            raise ValueError("The saved DP state was made with different options than the job's.")
        synth.columns = [spec_from_json(item) for item in saved["columns"]]
        synth.domains = table_domain(
            synth.columns,
            bins=synth.bins,
            integer_columns=synth.integer_columns,
            other_category=synth.other_category,
        )
        synth.unit = saved["unit"]
        synth.ledger.entries = [Spend.from_json(item) for item in saved["ledger"]]
        synth._restore_payload(saved["released"])
        synth._ready = True
        return synth

    def _released_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore_payload(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- sample ----------------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("Fit the DP synthesizer (or restore its released state) before using it.")

    def sample(self, *, rows: int, seed: int) -> pd.DataFrame:
        """Synthetic rows: post-processing of the released state, seeded by the (public) job seed."""
        self._require_ready()
        if rows < 1:
            raise ValueError("Ask for at least one row.")
        # Declared precision and allowed values only (never learnt from the data): post-processing.
        integers = {d.name for d in self.domains if d.integer}
        specs = [replace(c, integer=c.integer or c.name in integers) for c in self.columns]
        return shape_frame(self._sample(rows=rows, seed=seed), declared_shapes(specs))

    def _sample(self, *, rows: int, seed: int) -> pd.DataFrame:
        raise NotImplementedError

    def fit_sample(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        rows: int,
        seed: int,
        progress: ProgressFn,
        entities: pd.Series | None = None,
    ) -> pd.DataFrame:
        self.fit(frame, columns=columns, progress=progress, entities=entities)
        progress(0.8, "sampling")
        synthetic = self.sample(rows=rows, seed=seed)
        progress(1.0, "sampled")
        return synthetic

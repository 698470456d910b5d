"""Synthesizer options within caps, epochs scaled to the table, a time budget, and progress that
shows life before the first epoch (issue 12, item 3)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from generation.choices import ColumnKind
from generation.synthesizers import ColumnSpec, sdv_deep, synthesizer_for, validate_options
from generation.synthesizers.sdv_deep import MAX_EPOCHS, auto_batch_size, auto_epochs

SPECS = [
    ColumnSpec("x", ColumnKind.NUMERIC),
    ColumnSpec("y", ColumnKind.NUMERIC),
    ColumnSpec("group", ColumnKind.CATEGORICAL),
]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    return pd.DataFrame({"x": x, "y": x + rng.normal(size=120), "group": rng.choice(["a", "b"], 120)})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ctgan", {"epochs": 301}, "between 1 and 300"),
        ("ctgan", {"batch_size": 55}, "multiple of 10"),
        ("tvae", {"time_budget_s": 5}, "between 10 and"),
        ("tvae", {"epoch": 5}, "does not accept option(s) epoch"),
        ("gaussian_copula", {"distribution": "cauchy"}, "must be one of"),
        ("gaussian_copula", {"stratify_outcome": "yes"}, "true or false"),
        ("gaussian_copula", {"epochs": 5}, "does not accept"),
        ("dp_copula", {"epochs": 5}, "does not accept"),
        ("nope", {}, "Unknown synthesizer"),
    ],
)
def test_validate_options_refuses_unknown_keys_and_values_beyond_the_caps(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_options(name, options)


def test_validate_options_accepts_options_within_the_caps() -> None:
    assert validate_options("ctgan", {"epochs": 300, "batch_size": 1000, "time_budget_s": 600}) == {
        "epochs": 300,
        "batch_size": 1000,
        "time_budget_s": 600,
    }
    assert validate_options("gaussian_copula", {"distribution": "beta"}) == {"distribution": "beta"}
    assert validate_options("dp_copula", {"bins": 10}) == {"bins": 10}


def test_epochs_and_batch_size_scale_with_the_table() -> None:
    small_batch = auto_batch_size(400, 10)
    large_batch = auto_batch_size(100_000, 10)

    assert small_batch % 10 == 0 and small_batch < 500
    assert large_batch == 500
    # A 400-row table gets many epochs (each is a few steps); a 100k-row one far fewer.
    assert auto_epochs(400, 20, small_batch) > auto_epochs(100_000, 20, large_batch)
    assert auto_epochs(400, 20, small_batch) <= MAX_EPOCHS
    # Without options the network is no longer a fixed 30 epochs of one batch on a small table.
    epochs, batch = synthesizer_for("ctgan").plan(400, 20)
    assert epochs * (400 // batch) >= 1000


def test_ctgan_reports_transformer_progress_before_its_first_epoch(small: pd.DataFrame) -> None:
    calls: list[tuple[float, str]] = []
    synthesizer_for("ctgan", options={"epochs": 2, "batch_size": 50}).fit_sample(
        small, columns=SPECS, rows=50, seed=1, progress=lambda f, s: calls.append((f, s))
    )
    stages = [s for _, s in calls]
    first_epoch = stages.index("training epoch 1/2")

    before = stages[:first_epoch]
    assert "preparing columns" in before
    assert [s for s in before if s.startswith("fitting transformers: column")] == [
        "fitting transformers: column 1/3",
        "fitting transformers: column 2/3",
        "fitting transformers: column 3/3",
    ]
    assert "encoding the table" in before
    fractions = [f for f, _ in calls]
    assert all(a <= b for a, b in itertools.pairwise(fractions))
    assert fractions[-1] == 1.0


def test_training_stops_at_the_time_budget_and_still_samples(
    small: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = itertools.count(start=0, step=100)  # every reading of the clock is 100 s later
    monkeypatch.setattr(sdv_deep.time, "monotonic", lambda: float(next(clock)))
    synthesizer = synthesizer_for("tvae", options={"epochs": 50, "batch_size": 50, "time_budget_s": 100})
    stages: list[str] = []

    frame = synthesizer.fit_sample(
        small, columns=SPECS, rows=40, seed=1, progress=lambda f, s: stages.append(s)
    )

    assert synthesizer.epochs_run == 1
    assert any(s.startswith("time budget reached after epoch 1/50") for s in stages)
    assert frame.shape == (40, 3)


def test_policy_time_budget_reaches_only_synthesizers_that_take_one() -> None:
    from generation.synthesizers import with_time_budget

    assert with_time_budget("ctgan", {"epochs": 5}, 600) == {"epochs": 5, "time_budget_s": 600}
    assert with_time_budget("tvae", {"time_budget_s": 60}, 600) == {"time_budget_s": 60}
    assert with_time_budget("gaussian_copula", {}, 600) == {}
    assert with_time_budget("dp_copula", {"bins": 5}, 600) == {"bins": 5}
    validate_options("ctgan", with_time_budget("ctgan", None, 600))


@pytest.mark.parametrize("name", ["ctgan", "tvae"])
def test_a_table_of_500_rows_or_more_is_encoded_in_parallel_with_progress_hooks_in_place(name: str) -> None:
    # ctgan's DataTransformer encodes columns in joblib worker processes from 500 rows on, pickling
    # itself; the progress hooks once made every such fit fail with PicklingError (a real 549-row
    # table did), while the suite's small tables stayed on the in-process path.
    rng = np.random.default_rng(1)
    x = rng.normal(size=600)
    frame = pd.DataFrame({"x": x, "y": x + rng.normal(size=600), "group": rng.choice(["a", "b"], 600)})
    stages: list[str] = []

    synthetic = synthesizer_for(name, options={"epochs": 1, "batch_size": 100}).fit_sample(
        frame, columns=SPECS, rows=30, seed=1, progress=lambda f, s: stages.append(s)
    )

    assert len(synthetic) == 30 and "encoding the table" in stages

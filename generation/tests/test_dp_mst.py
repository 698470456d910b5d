"""dp_mst (SmartNoise MST over the declared domain). Skipped where smartnoise-synth is not installed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import data_file
from generation.choices import ColumnKind
from generation.synthesizers import REGISTRY, ColumnSpec, synthesizer_for
from generation.synthesizers.dp_domain import table_domain

pytest.importorskip("snsynth")

from generation.synthesizers.dp_pgm import declared_transformer  # noqa: E402

SPECS = [
    ColumnSpec("age", ColumnKind.NUMERIC, lower=50, upper=105, nullable=False),
    ColumnSpec("sex", ColumnKind.CATEGORICAL, categories=("F", "M"), nullable=False),
    ColumnSpec("kappa", ColumnKind.NUMERIC, lower=0, upper=10, nullable=False),
    ColumnSpec("lambda", ColumnKind.NUMERIC, lower=0, upper=10, nullable=False),
    ColumnSpec("creatinine", ColumnKind.NUMERIC, lower=0, upper=5, nullable=True),
    ColumnSpec("mgus", ColumnKind.CATEGORICAL, categories=("no", "yes"), nullable=False),
    ColumnSpec("death", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False),
]
OPTIONS = {"integer_columns": ["age"], "bins": 8}
ROWS = 1000


@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv")).head(2000)


def release(frame: pd.DataFrame, epsilon: Any) -> tuple[Any, pd.DataFrame]:
    synthesizer = synthesizer_for("dp_mst", epsilon=epsilon, options=OPTIONS)
    out = synthesizer.fit_sample(frame, columns=SPECS, rows=ROWS, seed=4, progress=lambda f, s: None)
    return synthesizer, out


def assert_valid(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [s.name for s in SPECS]
    assert len(frame) == ROWS
    assert str(frame["age"].dtype) == "int64"
    assert frame["age"].between(50, 105).all()
    assert frame[["kappa", "lambda"]].stack().between(0, 10).all()
    assert frame["creatinine"].dropna().between(0, 5).all()
    assert set(frame["sex"]) <= {"F", "M"} and set(frame["death"]) <= {"0", "1"}


def test_dp_mst_is_registered_as_dp_when_smartnoise_is_installed() -> None:
    assert REGISTRY["dp_mst"].is_dp is True


def test_smartnoise_sees_the_declared_cardinalities_whatever_the_data_holds() -> None:
    domains = table_domain(SPECS, bins=8, integer_columns=["age"], other_category={})

    transformer = declared_transformer(domains)

    assert transformer.cardinality == [8, 2, 8, 8, 9, 2, 2]
    assert transformer.odometer.spent == (0.0, 0.0)


def test_an_out_of_domain_neighbour_gives_a_valid_release_and_the_exact_epsilon(
    flchain: pd.DataFrame,
) -> None:
    neighbour = flchain.copy()
    neighbour.loc[0, ["age", "kappa", "sex", "mgus"]] = [1e9, -5.0, "X", "maybe"]

    synthesizer, original = release(flchain, "1")
    _, changed = release(neighbour, "1")

    assert_valid(original)
    assert_valid(changed)
    assert original.dtypes.equals(changed.dtypes)
    assert synthesizer.epsilon_spent() == Decimal("1")
    assert synthesizer.ledger.total_delta() == Decimal("1E-9")


def test_with_a_large_epsilon_mst_follows_the_marginals(flchain: pd.DataFrame) -> None:
    _, frame = release(flchain, 50)

    assert abs((frame["sex"] == "M").mean() - (flchain["sex"] == "M").mean()) < 0.05
    assert abs(frame["creatinine"].isna().mean() - flchain["creatinine"].isna().mean()) < 0.05
    assert np.isfinite(frame["kappa"]).all()

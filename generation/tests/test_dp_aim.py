"""dp_aim and dp_mst (SmartNoise over the declared domain): fit, sample, the patient unit, and the
fixes to smartnoise-synth 1.0.8 (no exact row count, no global random generator, rho within budget).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from generation.choices import ColumnKind
from generation.synthesizers import REGISTRY, ColumnSpec, synthesizer_for

SPECS = [
    ColumnSpec("age", ColumnKind.NUMERIC, lower=18, upper=100, nullable=False, integer=True),
    ColumnSpec("sex", ColumnKind.CATEGORICAL, categories=("F", "M"), nullable=False),
    ColumnSpec("marker", ColumnKind.NUMERIC, lower=0, upper=10),
    ColumnSpec("event", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False),
]
FAST = {"dp_mst": {"bins": 5, "iters": 300}, "dp_aim": {"bins": 5, "iters": 300, "round_iters": 30}}


def quiet(fraction: float, stage: str) -> None:
    return None


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 1500
    sex = rng.choice(["F", "M"], n, p=[0.7, 0.3])
    event = np.where(sex == "M", rng.random(n) < 0.8, rng.random(n) < 0.1).astype(int)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 95, n),
            "sex": sex,
            "marker": np.clip(rng.normal(5, 2, n), 0, 10),
            "event": event,
        }
    )


def test_both_are_registered_as_dp() -> None:
    assert REGISTRY["dp_aim"].is_dp is True and REGISTRY["dp_mst"].is_dp is True


@pytest.mark.parametrize("name", ["dp_mst", "dp_aim"])
def test_a_large_epsilon_fit_follows_the_marginals_and_a_pair(table: pd.DataFrame, name: str) -> None:
    synth = synthesizer_for(name, epsilon=20, options=FAST[name])

    frame = synth.fit_sample(table, columns=SPECS, rows=1500, seed=2, progress=quiet)

    assert list(frame.columns) == [s.name for s in SPECS]
    assert str(frame["age"].dtype) == "int64" and frame["age"].between(18, 100).all()
    assert frame["marker"].dropna().between(0, 10).all()
    assert abs((frame["sex"] == "M").mean() - 0.3) < 0.05
    # the sex -> event dependence is the strongest pair: both models must keep it
    rate = frame.groupby("sex")["event"].apply(lambda s: (s == "1").mean())
    assert rate["M"] - rate["F"] > 0.4
    assert synth.epsilon_spent() == Decimal(20) and synth.delta_spent() == Decimal("1E-9")


@pytest.mark.parametrize("name", ["dp_mst", "dp_aim"])
def test_the_fit_uses_no_global_generator_and_no_exact_row_count(
    table: pd.DataFrame, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mbi.estimation
    import snsynth.utils

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a mechanism drew from numpy's global generator")

    totals: list[Any] = []
    original = mbi.estimation.mirror_descent

    def spy(*args: Any, **kwargs: Any) -> Any:
        totals.append(kwargs.get("known_total"))
        return original(*args, **kwargs)

    monkeypatch.setattr(np.random, "choice", refuse)
    monkeypatch.setattr(snsynth.utils.prng, "choice", refuse)
    monkeypatch.setattr(mbi.estimation, "mirror_descent", spy)
    synth = synthesizer_for(name, epsilon=1, options=FAST[name])

    synth.fit(table, columns=SPECS, progress=quiet)

    assert totals and all(total is None for total in totals)


@pytest.mark.parametrize("name", ["dp_mst", "dp_aim"])
def test_per_patient_every_mechanism_runs_at_rho_over_k_squared(table: pd.DataFrame, name: str) -> None:
    from generation.synthesizers.dp_aim import _aim_class
    from generation.synthesizers.dp_mst import _mst_class

    ids = pd.Series(np.arange(len(table)) // 3)  # three rows per patient
    spent: dict[str, float] = {}
    cls = _mst_class() if name == "dp_mst" else _aim_class()
    original = cls.fit

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        spent["rho_used"], spent["k"] = self.rho_used, self.k
        spent["budget"] = self.rho_budget if name == "dp_mst" else self.rho
        return result

    cls.fit = spy
    try:
        synth = synthesizer_for(name, epsilon=1, options=FAST[name] | {"max_rows_per_entity": 3})
        synth.fit(table, columns=SPECS, progress=quiet, entities=ids)
    finally:
        cls.fit = original

    # rho_used is measured by OpenDP's own privacy maps at sensitivity k = 3 (L2) / 3 x weight.
    assert spent["k"] == 3
    assert 0.9 * spent["budget"] <= spent["rho_used"] <= spent["budget"] * (1 + 1e-9)
    assert synth.privacy_facts()["unit"] == "patient"
    assert synth.ledger.entries[0].sensitivity == 3


def test_aim_refuses_too_few_rounds_before_reading_anything(table: pd.DataFrame) -> None:
    synth = synthesizer_for("dp_aim", epsilon=1, options={"rounds": 3})

    with pytest.raises(ValueError, match="rounds"):
        synth.fit(table, columns=SPECS, progress=quiet)
    assert synth.epsilon_spent() == 0

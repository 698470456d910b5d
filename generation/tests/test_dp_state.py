"""The released state of a DP synthesizer (issue 11, item 7) and what it states about itself.

A retried job restores the saved state and samples without the data; the state holds only DP
outputs, the declared domain, the options and the ledger; privacy facts say exactly what holds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from generation.choices import ColumnKind
from generation.synthesizers import REGISTRY, ColumnSpec, synthesizer_for

MARKER = "ZZ-unique-marker-7f3a"
SPECS = [
    ColumnSpec("age", ColumnKind.NUMERIC, lower=18, upper=100, nullable=False, integer=True),
    ColumnSpec("arm", ColumnKind.CATEGORICAL, categories=("A", "B"), nullable=True),
    ColumnSpec("dose", ColumnKind.NUMERIC, lower=0, upper=50),
    ColumnSpec("event", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False),
]
DP_NAMES = ["dp_copula", "dp_mst", "dp_aim"]
SMALL = {
    "dp_copula": {"bins": 6},
    "dp_mst": {"bins": 6, "iters": 200},
    "dp_aim": {"bins": 6, "iters": 200, "round_iters": 20},
}


def quiet(fraction: float, stage: str) -> None:
    return None


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 600
    age = rng.integers(20, 90, n)
    frame = pd.DataFrame(
        {
            "age": age,
            "arm": rng.choice(["A", "B"], n).astype(object),
            "dose": np.round(age / 3 + rng.normal(0, 3, n), 3),
            "event": (age + rng.normal(0, 15, n) > 60).astype(int),
        }
    )
    frame.loc[7, "arm"] = MARKER  # an undeclared category: counts nowhere, must never be saved
    return frame


@pytest.fixture(scope="module")
def fitted(table: pd.DataFrame) -> dict[str, tuple[Any, bytes]]:
    out = {}
    for name in DP_NAMES:
        synth = synthesizer_for(name, epsilon="2", options=SMALL[name])
        synth.fit(table, columns=SPECS, progress=quiet)
        out[name] = (synth, synth.released_state())
    return out


@pytest.mark.parametrize("name", DP_NAMES)
def test_the_released_state_restores_a_synthesizer_that_samples_without_the_data(
    fitted: dict[str, tuple[Any, bytes]], name: str
) -> None:
    synth, blob = fitted[name]

    restored = REGISTRY[name].from_released_state(blob, epsilon="2", options=SMALL[name])
    frame = restored.sample(rows=300, seed=8)

    assert list(frame.columns) == [s.name for s in SPECS]
    assert len(frame) == 300
    assert frame.dtypes.equals(synth.sample(rows=300, seed=8).dtypes)
    assert str(frame["age"].dtype) == "int64" and frame["age"].between(18, 100).all()
    assert set(frame["arm"].dropna()) <= {"A", "B"}
    assert restored.epsilon_spent() == Decimal("2") == synth.epsilon_spent()
    assert restored.delta_spent() == synth.delta_spent()
    assert restored.privacy_facts() == synth.privacy_facts()
    with pytest.raises(RuntimeError, match="already spent"):
        restored.fit(pd.DataFrame(), columns=SPECS, progress=quiet)


def test_sampling_a_restored_copula_is_the_same_post_processing(fitted: dict[str, tuple[Any, bytes]]) -> None:
    synth, blob = fitted["dp_copula"]

    restored = REGISTRY["dp_copula"].from_released_state(blob, epsilon="2", options=SMALL["dp_copula"])

    pd.testing.assert_frame_equal(restored.sample(rows=200, seed=4), synth.sample(rows=200, seed=4))


@pytest.mark.parametrize("name", DP_NAMES)
def test_the_state_is_json_with_no_source_value(
    table: pd.DataFrame, fitted: dict[str, tuple[Any, bytes]], name: str
) -> None:
    _, blob = fitted[name]

    state = json.loads(blob)

    assert MARKER.encode() not in blob
    assert set(state) == {
        "format",
        "version",
        "synthesizer",
        "epsilon",
        "settings",
        "unit",
        "columns",
        "ledger",
        "released",
    }
    assert str(len(table)) not in json.dumps(state["released"]).replace(".", " ").split()  # no exact n
    assert [c["name"] for c in state["columns"]] == [s.name for s in SPECS]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epsilon": "3"}, "different epsilon"),
        ({"options": {"bins": 7}}, "different options"),
    ],
)
def test_a_state_is_refused_for_a_different_job(
    fitted: dict[str, tuple[Any, bytes]], change: dict[str, Any], message: str
) -> None:
    _, blob = fitted["dp_copula"]
    arguments: dict[str, Any] = {"epsilon": "2", "options": SMALL["dp_copula"]} | change

    with pytest.raises(ValueError, match=message):
        REGISTRY["dp_copula"].from_released_state(blob, **arguments)
    with pytest.raises(ValueError, match="made by 'dp_copula'"):
        REGISTRY["dp_mst"].from_released_state(blob, epsilon="2", options=SMALL["dp_mst"])


def test_delta_spent_is_exact(fitted: dict[str, tuple[Any, bytes]]) -> None:
    assert fitted["dp_copula"][0].delta_spent() == Decimal(0)
    assert fitted["dp_mst"][0].delta_spent() == Decimal("1E-9")
    assert fitted["dp_aim"][0].delta_spent() == Decimal("1E-9")
    custom = synthesizer_for("dp_mst", epsilon=1, options={"delta": Decimal("0.000001")})
    assert custom.delta == Decimal("0.000001")
    with pytest.raises(ValueError, match="between"):
        synthesizer_for("dp_aim", epsilon=1, options={"delta": 1e-4})


@pytest.mark.parametrize("name", DP_NAMES)
def test_privacy_facts_say_exactly_what_holds(fitted: dict[str, tuple[Any, bytes]], name: str) -> None:
    synth, _ = fitted[name]

    facts = synth.privacy_facts()

    assert set(facts) == {
        "dp", "unit", "entity_column", "max_rows_per_entity", "neighbouring", "epsilon", "delta", "flavour",
        "mechanisms",
    }  # fmt: skip
    assert facts["dp"] is True
    assert (facts["unit"], facts["entity_column"], facts["max_rows_per_entity"]) == ("record", None, 1)
    assert facts["neighbouring"] == "add or remove one record"
    assert facts["epsilon"] == "2"
    pure = name == "dp_copula"
    assert facts["delta"] == ("0" if pure else "0.000000001")
    assert facts["flavour"] == (
        "pure epsilon-DP (delta = 0)" if pure else "approximate (epsilon, delta)-DP via zero-concentrated DP"
    )
    for mechanism in facts["mechanisms"]:
        assert set(mechanism) == {
            "step",
            "mechanism",
            "library",
            "version",
            "epsilon",
            "delta",
            "sensitivity",
        }
        assert mechanism["version"] and mechanism["version"] != "not installed"
    accounted = [m for m in facts["mechanisms"] if m["epsilon"] is not None]
    assert sum(Decimal(m["epsilon"]) for m in accounted) == Decimal("2")
    json.dumps(facts)


@pytest.mark.parametrize("name", DP_NAMES)
def test_every_dp_synthesizer_accepts_the_job_options(name: str) -> None:
    synth = synthesizer_for(
        name, epsilon=1, options={"delta": 1e-8, "max_rows_per_entity": 3, "entity_column": "patient"}
    )

    assert synth.max_rows_per_entity == 3 and synth.entity_column == "patient"
    with pytest.raises(ValueError, match="between 1 and 100"):
        synthesizer_for(name, epsilon=1, options={"max_rows_per_entity": 0})


@pytest.mark.parametrize("name", ["gaussian_copula", "ctgan", "tvae"])
def test_non_dp_synthesizers_refuse_dp_options(name: str) -> None:
    with pytest.raises(ValueError, match="does not accept"):
        synthesizer_for(name, options={"delta": 1e-9})


def test_nothing_is_spent_when_the_domain_is_incomplete(table: pd.DataFrame) -> None:
    for name in DP_NAMES:
        synth = synthesizer_for(name, epsilon=1)
        with pytest.raises(ValueError, match="no declared bounds"):
            synth.fit(table, columns=[*SPECS[:2], ColumnSpec("dose", ColumnKind.NUMERIC)], progress=quiet)
        assert synth.epsilon_spent() == 0 and synth.delta_spent() == 0
        with pytest.raises(RuntimeError, match="before using it"):
            synth.released_state()

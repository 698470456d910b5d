"""generation.modeling.restore_trained_model: a DP model rebuilt from its saved artifact.

A dp_model job retried after a crash must never fit under the same debit again: it rebuilds the
TrainedModel from the artifact saved with the job. The rebuilt model predicts exactly as the one that
was fitted, keeps its privacy facts, refits the non-private baseline (which the saved state never
holds) without running any DP mechanism, and refuses bytes that do not match their recorded hash.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from conftest import data_file
from generation.modeling import MODEL_FAMILIES, ModelSpec, TrainedModel, restore_trained_model, train_dp_model

FEATURES = ("age", "sex", "kappa", "creatinine")
SPECS = (
    {"name": "age", "kind": "numeric", "source": "steward", "lower": 40, "upper": 110, "nullable": False},
    {"name": "sex", "kind": "categorical", "source": "steward", "categories": ["F", "M"], "nullable": False},
    {"name": "kappa", "kind": "numeric", "source": "steward", "lower": 0, "upper": 10, "nullable": False},
    {"name": "creatinine", "kind": "numeric", "source": "steward", "lower": 0, "upper": 5, "nullable": True},
    {
        "name": "death",
        "kind": "boolean",
        "source": "steward",
        "categories": ["0", "1"],
        "nullable": False,
        "outcome": True,
    },
)


def model_spec(family: str) -> ModelSpec:
    return ModelSpec(family=family, target="death", features=FEATURES, epsilon=4.0, column_specs=SPECS)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv")).sample(n=800, random_state=5).reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(rows: pd.DataFrame) -> dict[str, TrainedModel]:
    return {name: train_dp_model(rows, model_spec(name), seed=3) for name in MODEL_FAMILIES}


def restored(model: TrainedModel, rows: pd.DataFrame, **changes: object) -> TrainedModel:
    saved: dict[str, object] = {
        "artifact": model.artifact,
        "sha256": model.sha256,
        "privacy_facts": model.privacy_facts,
        "seed": 3,
    }
    saved.update(changes)
    return restore_trained_model(rows, model_spec(model.family), **saved)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", list(MODEL_FAMILIES))
def test_a_restored_model_is_the_fitted_one(
    family: str, fitted: dict[str, TrainedModel], rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fitted[family]

    def no_dp(*args: object, **kwargs: object) -> None:
        raise AssertionError("a restore ran a DP mechanism")

    monkeypatch.setitem(MODEL_FAMILIES, family, replace(MODEL_FAMILIES[family], build_dp=no_dp))
    again = restored(model, rows)
    assert (again.family, again.sha256, again.artifact) == (family, model.sha256, model.artifact)
    assert again.feature_names == model.feature_names and again.privacy_facts == model.privacy_facts
    assert again.privacy_facts is not model.privacy_facts
    assert (again.predict_proba(rows) == model.predict_proba(rows)).all()
    # The baseline is refitted with the same seed on the same rows: the same non-private model.
    assert (again.baseline_proba(rows) == model.baseline_proba(rows)).all()
    assert (again.labels(rows) == model.labels(rows)).all()


def test_bytes_that_do_not_match_their_hash_are_refused(
    fitted: dict[str, TrainedModel], rows: pd.DataFrame
) -> None:
    model = fitted["dp_logistic_regression"]
    with pytest.raises(RuntimeError, match="SHA-256"):
        restored(model, rows, artifact=model.artifact + b" ")
    with pytest.raises(RuntimeError, match="SHA-256"):
        restored(model, rows, sha256="0" * 64)

"""DP model releases (generation.modeling): every privacy parameter comes from the declarations.

The attacks, as tests: a model over a column without declared bounds, or over a profile suggestion
(a domain read from the data), is refused before a single row is read; one extreme record added to
the training table moves no bound, data_norm or class list; diffprivlib never falls back to
parameters read from the data; the job's public seed does not reproduce the DP noise; an artifact
carrying any type outside the allow-list (a custom class, even a scikit-learn estimator skops trusts
by default) is refused. And the model is worth releasing: it learns signal on a real table.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import data_file
from core.errors import ValidationFailed
from generation.modeling import (
    MODEL_FAMILIES,
    TRUSTED_TYPES,
    ModelSpec,
    TrainedModel,
    is_model_family,
    load_model_artifact,
    model_declaration_refusals,
    model_family_label,
    train_dp_model,
)
from generation.modeling.artifacts import artifact_types
from generation.modeling.training import privacy_leaks_are_errors


def col(name: str, kind: str, **declared: Any) -> dict[str, Any]:
    """A column spec as a job pins it (generation.services.columns.column_spec_snapshot)."""
    return {
        "name": name,
        "kind": kind,
        "classification": declared.pop("classification", "other"),
        "source": declared.pop("source", "steward"),
        "nullable": declared.pop("nullable", True),
        "outcome": declared.pop("outcome", False),
        **declared,
    }


SPECS = (
    col("age", "numeric", lower=40, upper=110, integer=True, nullable=False),
    col("sex", "categorical", categories=["F", "M"], nullable=False),
    col("kappa", "numeric", lower=0, upper=10, nullable=False),
    col("lambda", "numeric", lower=0, upper=10, nullable=False),
    col("creatinine", "numeric", lower=0, upper=5),
    col("mgus", "categorical", categories=["no", "yes"], nullable=False),
    col("chapter", "categorical", categories=["Circulatory", "Neoplasms"]),
    col("death", "boolean", categories=["0", "1"], nullable=False, outcome=True),
    col("futime", "numeric", lower=0, upper=6000, nullable=False),
)
FEATURES = ("age", "sex", "kappa", "lambda", "creatinine", "mgus")
# age (1) + sex (2) + kappa (1) + lambda (1) + creatinine (1 + missing indicator) + mgus (2)
WIDTH = 9


def spec(family: str = "dp_logistic_regression", *, epsilon: float = 5.0, **changes: Any) -> ModelSpec:
    fields: dict[str, Any] = {
        "family": family,
        "target": "death",
        "features": FEATURES,
        "epsilon": epsilon,
        "column_specs": SPECS,
    }
    fields.update(changes)
    return ModelSpec(**fields)


def refusals(**changes: Any) -> list[str]:
    fields: dict[str, Any] = {
        "family": "dp_logistic_regression",
        "target": "death",
        "features": list(FEATURES),
        "column_specs": [dict(s) for s in SPECS],
    }
    fields.update(changes)
    return model_declaration_refusals(**fields)


def replaced(name: str, **declared: Any) -> list[dict[str, Any]]:
    specs = [dict(s) for s in SPECS]
    for item in specs:
        if item["name"] == name:
            item.update(declared)
    return specs


@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv"))


@pytest.fixture(scope="module")
def split(flchain: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(7).permutation(len(flchain))
    return flchain.iloc[order[:5000]].reset_index(drop=True), flchain.iloc[order[5000:]].reset_index(
        drop=True
    )


@pytest.fixture(scope="module")
def small(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(n=1200, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(small: pd.DataFrame) -> dict[str, TrainedModel]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models = {name: train_dp_model(small, spec(name), seed=11) for name in MODEL_FAMILIES}
    from diffprivlib.utils import PrivacyLeakWarning

    assert not [w for w in caught if issubclass(w.category, PrivacyLeakWarning)]
    return models


class Untouchable:
    """A training table that fails the test the moment anything reads it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the training data was read ({name}) before the declarations were checked")

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError("the training data was read before the declarations were checked")

    def __len__(self) -> int:
        raise AssertionError("the training data was read before the declarations were checked")


# --- the families ------------------------------------------------------------------------------


def test_the_three_families_are_registered_with_labels() -> None:
    assert set(MODEL_FAMILIES) == {
        "dp_logistic_regression",
        "dp_random_forest",
        "dp_decision_tree",
        "dp_sgd_mlp",
    }
    assert all(is_model_family(name) for name in MODEL_FAMILIES)
    assert not is_model_family("dp_copula") and not is_model_family("")
    assert model_family_label("dp_random_forest") == "DP random forest (diffprivlib)"
    assert model_family_label("unknown") == "unknown"


# --- filing-time refusals (no data) ------------------------------------------------------------


def test_a_well_declared_model_is_not_refused() -> None:
    for name in MODEL_FAMILIES:
        assert refusals(family=name) == []


def test_an_unknown_family_is_refused() -> None:
    (message,) = refusals(family="xgboost")
    assert "`xgboost` is not a model family" in message and "dp_random_forest" in message


def test_a_numeric_feature_without_declared_bounds_is_refused_naming_it() -> None:
    (message,) = refusals(column_specs=replaced("kappa", upper=None))
    assert "`kappa`" in message and "lower and upper bound" in message
    (message,) = refusals(column_specs=replaced("kappa", lower=7, upper=7))
    assert "`kappa`" in message and "lower below upper" in message


def test_a_categorical_feature_without_declared_categories_is_refused() -> None:
    (message,) = refusals(column_specs=replaced("sex", categories=None))
    assert "`sex` has no declared categories" in message


@pytest.mark.parametrize("kind", ["datetime", "text", "identifier"])
def test_date_text_and_identifier_features_are_refused(kind: str) -> None:
    (message,) = refusals(column_specs=replaced("futime", kind=kind), features=[*FEATURES, "futime"])
    assert "`futime`" in message and "Remove `futime`" in message


def test_a_profile_suggestion_is_refused_and_a_dp_estimate_accepted() -> None:
    for source in ("profile_suggestion", None):
        (message,) = refusals(column_specs=replaced("age", source=source))
        assert "`age`" in message and "read from the data" in message and "profile suggestion" in message
    assert refusals(column_specs=replaced("age", source="dp_estimate")) == []
    # A target whose two values were read from the data is refused too.
    (message,) = refusals(column_specs=replaced("death", source="profile_suggestion"))
    assert "`death` (the target)" in message


def test_a_nested_declared_dict_is_read_too() -> None:
    nested = [
        {"name": s["name"], "kind": s["kind"], "classification": "other", "declared": dict(s)} for s in SPECS
    ]
    assert refusals(column_specs=nested) == []
    nested[0]["declared"]["source"] = "profile_suggestion"
    assert len(refusals(column_specs=nested)) == 1


def test_the_target_must_be_the_declared_two_valued_outcome() -> None:
    messages = refusals(column_specs=replaced("death", outcome=False))
    assert messages and "not the dataset's declared outcome" in messages[0]
    messages = refusals(column_specs=replaced("death", kind="categorical", categories=["a", "b", "c"]))
    assert messages and "exactly two declared values" in messages[0]
    messages = refusals(features=[*FEATURES, "death"])
    assert any("cannot also be a feature" in m for m in messages)
    assert refusals(target="nope")[0] == "`nope` is not one of the request's signed-off columns."
    assert refusals(features=[]) == ["Name at least one feature column."]


def test_identifiers_and_the_entity_column_are_never_features() -> None:
    (message,) = refusals(column_specs=replaced("age", classification="direct_identifier"))
    assert "direct identifier" in message
    (message,) = refusals(column_specs=replaced("age", entity=True))
    assert "entity" in message


def test_refusals_reach_training_before_any_row_is_read() -> None:
    for specs in (replaced("kappa", lower=None), replaced("kappa", source="profile_suggestion")):
        with pytest.raises(ValidationFailed) as caught:
            train_dp_model(Untouchable(), spec(column_specs=tuple(specs)), seed=1)  # type: ignore[arg-type]
        assert caught.value.code == "model_not_declared" and "`kappa`" in caught.value.message
    with pytest.raises(ValidationFailed):
        train_dp_model(Untouchable(), spec(family="sklearn_logistic"), seed=1)  # type: ignore[arg-type]


def test_bad_options_are_refused(small: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed, match="max_depth"):
        train_dp_model(small, spec("dp_decision_tree", options={"max_depth": 99}), seed=1)
    with pytest.raises(ValidationFailed, match="n_estimators"):
        train_dp_model(small, spec("dp_decision_tree", options={"n_estimators": 5}), seed=1)


# --- the privacy parameters never move with the data ------------------------------------------


def extreme_neighbour(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` plus one record far outside every declared domain."""
    row = frame.iloc[[0]].copy()
    row[["age", "kappa", "lambda", "creatinine"]] = [1e6, -1e9, 1e9, 1e12]
    row[["sex", "mgus"]] = ["X", "maybe"]
    return pd.concat([frame, row], ignore_index=True)


@pytest.mark.parametrize("family", list(MODEL_FAMILIES))
def test_bounds_data_norm_and_classes_come_from_the_declarations_only(
    family: str, small: pd.DataFrame
) -> None:
    one = train_dp_model(small, spec(family), seed=5)
    other = train_dp_model(extreme_neighbour(small), spec(family), seed=5)
    params = one.privacy_facts["privacy_parameters"]
    assert params == other.privacy_facts["privacy_parameters"]
    assert one.privacy_facts["features"] == other.privacy_facts["features"]
    assert one.feature_names == other.feature_names and len(one.feature_names) == WIDTH
    assert params["classes"] == {"value": [0, 1], "source": "steward declaration"}
    if family == "dp_logistic_regression":
        assert params["data_norm"]["value"] == math.sqrt(WIDTH)
        assert params["data_norm"]["source"] == "steward declaration"
    else:
        assert params["bounds"]["lower"] == [0.0] * WIDTH and params["bounds"]["upper"] == [1.0] * WIDTH
        assert params["bounds"]["source"] == "steward declaration"
    facts = {f["column"]: f for f in one.privacy_facts["features"]}
    assert (facts["age"]["lower"], facts["age"]["upper"]) == (40.0, 110.0)
    assert facts["sex"]["categories"] == ["F", "M"]
    # The released encoder holds the declared bounds, not the extreme record's values.
    for model in (one, other):
        encoder = load_model_artifact(model.artifact).named_steps["encode"]
        scaler = encoder.named_transformers_["number_0"].named_steps["scale"]
        assert (scaler.data_min_[0], scaler.data_max_[0]) == (40.0, 110.0)
        assert (encoder.transform(model.model_input(extreme_neighbour(small).tail(1))) <= 1).all()


def test_diffprivlib_leaks_are_errors_inside_training() -> None:
    from diffprivlib.models import RandomForestClassifier
    from diffprivlib.utils import PrivacyLeakWarning

    x, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
    with pytest.raises(PrivacyLeakWarning), privacy_leaks_are_errors():
        RandomForestClassifier(epsilon=1.0, classes=[0, 1]).fit(x, y)  # no bounds: read from the data


def test_epsilon_is_spent_once_per_job(small: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffprivlib.accountant import BudgetAccountant

    from generation.modeling import families

    created: list[BudgetAccountant] = []

    def accountant() -> BudgetAccountant:
        created.append(BudgetAccountant())
        return created[-1]

    monkeypatch.setattr(families, "_accountant", accountant)
    # The diffprivlib families; dp_sgd_mlp's (epsilon, delta) spend: test_dp_sgd_model.py.
    for family in [name for name, f in MODEL_FAMILIES.items() if not f.uses_delta]:
        created.clear()
        model = train_dp_model(small, spec(family, epsilon=0.7), seed=2)
        # One accountant per job, one spend on it. (diffprivlib's forest fits each tree on a disjoint
        # share of the rows under its own copy of an accountant: parallel composition, one epsilon.)
        (job_accountant,) = created
        assert job_accountant.spent_budget == [(0.7, 0)]
        assert model.privacy_facts["epsilon"] == "0.7" and model.privacy_facts["delta"] == "0"
        (mechanism,) = model.privacy_facts["mechanisms"]
        assert mechanism["library"] == "diffprivlib" and mechanism["epsilon"] == "0.7"


def test_the_public_seed_does_not_reproduce_the_noise(small: pd.DataFrame) -> None:
    first = train_dp_model(small, spec(epsilon=1.0), seed=3)
    second = train_dp_model(small, spec(epsilon=1.0), seed=3)
    assert first.sha256 != second.sha256
    assert not np.allclose(first.predict_proba(small), second.predict_proba(small))
    # The non-private baseline, seeded, is the same both times.
    assert np.allclose(first.baseline_proba(small), second.baseline_proba(small))


# --- the model is worth releasing --------------------------------------------------------------


def test_the_model_learns_signal_on_a_real_table(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    training, holdout = split
    model = train_dp_model(training, spec("dp_logistic_regression", epsilon=5.0), seed=1)
    keep = model.labelled(holdout)
    y = model.labels(holdout)[keep]
    assert roc_auc_score(y, model.baseline_proba(holdout)[keep]) > 0.7
    assert roc_auc_score(y, model.predict_proba(holdout)[keep]) > 0.6
    forest = train_dp_model(training, spec("dp_random_forest", epsilon=5.0), seed=1)
    assert roc_auc_score(y, forest.baseline_proba(holdout)[keep]) > 0.7


# --- encoding and labels -----------------------------------------------------------------------


def test_missing_and_undeclared_values_encode_from_the_declarations(trained: dict[str, TrainedModel]) -> None:
    model = trained["dp_logistic_regression"]
    assert model.feature_names == [
        "age", "sex=F", "sex=M", "kappa", "lambda", "creatinine", "creatinine is missing", "mgus=no", "mgus=yes",
    ]  # fmt: skip
    frame = pd.DataFrame(
        {
            "age": [75.0, 200.0],
            "sex": ["M", "unknown"],
            "kappa": [5.0, -3.0],
            "lambda": [0.0, 10.0],
            "creatinine": [np.nan, 2.5],
            "mgus": ["yes", None],
        }
    )
    encoded = model.pipeline.named_steps["encode"].transform(model.model_input(frame))
    assert encoded.tolist() == [
        [0.5, 0.0, 1.0, 0.5, 0.0, 0.5, 1.0, 0.0, 1.0],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0],
    ]


def test_category_codes_match_whatever_type_the_rows_hold() -> None:
    from generation.modeling.encoding import feature_encodings, model_input

    specs = (col("grp", "categorical", categories=["1", "2", "10"]), col("flag", "boolean"))
    frame = pd.DataFrame({"grp": [1, 10.0, "2", 3], "flag": [True, "no", 0, None]})
    shaped = model_input(frame, feature_encodings(["grp", "flag"], specs))
    assert shaped["grp"].tolist() == ["1", "10", "2", None]
    assert shaped["flag"].tolist()[:3] == [1.0, 0.0, 0.0] and math.isnan(shaped["flag"].iloc[3])


def test_labels_follow_the_declared_positive_class(small: pd.DataFrame) -> None:
    frame = small.copy()
    frame["status"] = np.where(frame["death"] == 1, "dead", "alive")
    frame.loc[:9, "status"] = None  # missing outcome: dropped before training
    frame.loc[10:14, "status"] = "lost"  # outside the declared two values: dropped too
    specs = (
        *replaced("death", outcome=False),
        col("status", "categorical", categories=["alive", "dead"], outcome=True),
    )
    model = train_dp_model(frame, spec(target="status", column_specs=specs), seed=1)
    assert model.privacy_facts["target"]["positive_class"] == "dead"
    assert "count is not released" in model.privacy_facts["rows_dropped"]
    keep = model.labelled(frame)
    assert not keep[:15].any() and keep[15:].all()
    assert (model.labels(frame)[15:] == frame["death"].to_numpy()[15:]).all()


def test_a_table_with_one_outcome_value_fails_without_a_release(small: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed) as caught:
        train_dp_model(small[small["death"] == 0], spec(), seed=1)
    assert caught.value.code == "model_one_class"


# --- the artifact ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(MODEL_FAMILIES))
def test_each_family_round_trips_through_the_skops_artifact(
    family: str, trained: dict[str, TrainedModel], small: pd.DataFrame
) -> None:
    model = trained[family]
    assert model.family == family
    assert model.sha256 == hashlib.sha256(model.artifact).hexdigest()
    assert artifact_types(model.artifact) <= set(TRUSTED_TYPES)
    assert not [t for t in artifact_types(model.artifact) if "diffprivlib" in t]
    loaded = load_model_artifact(model.artifact)
    expected = model.predict_proba(small)
    assert expected.shape == (len(small),) and ((expected >= 0) & (expected <= 1)).all()
    assert np.array_equal(loaded.predict_proba(model.model_input(small))[:, 1], expected)
    assert model.privacy_facts["model_family"] == family
    assert json.loads(json.dumps(model.privacy_facts)) == model.privacy_facts  # stored in the receipt
    assert model.privacy_facts["not_covered"] and model.privacy_facts["covers"]


class Payload:
    """Not a model: a type no allow-list names."""

    def __init__(self) -> None:
        self.value = 1


def test_an_artifact_with_an_untrusted_type_is_refused(trained: dict[str, TrainedModel]) -> None:
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    custom = skops.io.dumps(Payload())
    # skops trusts every scikit-learn estimator by default; the model allow-list does not.
    svc = skops.io.dumps(Pipeline([("model", SVC(probability=True).fit([[0.0], [1.0]] * 5, [0, 1] * 5))]))
    smuggled = skops.io.dumps({"model": trained["dp_decision_tree"].pipeline, "extra": Payload()})
    for data in (custom, svc, smuggled, pickle.dumps(Payload()), b"", b"PK\x03\x04 not a zip"):
        with pytest.raises(ValidationFailed) as caught:
            load_model_artifact(data)
        assert caught.value.code == "untrusted_model_artifact"

"""The DP-SGD family (dp_sgd_mlp, generation.modeling.dpsgd): an Opacus-trained MLP released as a
plain scikit-learn MLPClassifier.

What is proved here: the noise is calibrated from (epsilon, delta, sample_rate, steps) alone and the
RDP accountant's epsilon for it is within the request; no privacy parameter moves when an extreme
record joins the training rows; the scikit-learn copy predicts exactly what the torch model does;
the artifact holds no torch or opacus type and loads with the trusted-types list; the spec's delta
(default 1e-9) is what the facts state, and the pure epsilon-DP families still refuse one; the fit
is repeatable under the same mechanism randomness and seed, and the public seed alone does not
reproduce it; and it learns signal on flchain.
"""

from __future__ import annotations

import hashlib
import json
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
    TrainedModel,
    load_model_artifact,
    train_dp_model,
)
from generation.modeling import training as training_module
from generation.modeling.artifacts import artifact_types
from generation.modeling.dpsgd import (
    DPSGDMLPClassifier,
    accounted_epsilon,
    calibrate_noise,
    planned_steps,
    portable_mlp,
)
from generation.tests.test_modeling import WIDTH, extreme_neighbour, spec

FAMILY = "dp_sgd_mlp"
OPTIONS = {"hidden": 8, "epochs": 2, "sample_rate": 0.05}


@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv"))


@pytest.fixture(scope="module")
def small(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(n=1200, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(small: pd.DataFrame) -> TrainedModel:
    return train_dp_model(small, spec(FAMILY, epsilon=2.0, options=OPTIONS), seed=4)


def classifier(**changes: Any) -> DPSGDMLPClassifier:
    fields: dict[str, Any] = {
        "epsilon": 1.0,
        "delta": 1e-9,
        "hidden": 6,
        "epochs": 2,
        "sample_rate": 0.05,
        "max_grad_norm": 1.0,
        "learning_rate": 0.05,
        "init_seed": 1,
        "random_state": np.random.RandomState(0),
    }
    fields.update(changes)
    return DPSGDMLPClassifier(**fields)


def test_the_family_is_registered_as_the_only_epsilon_delta_one() -> None:
    family = MODEL_FAMILIES[FAMILY]
    assert family.uses_delta and family.library == "opacus"
    assert family.flavour == "(epsilon, delta)-DP, record-level, via DP-SGD (Opacus RDP accountant)"
    assert [name for name, f in MODEL_FAMILIES.items() if f.uses_delta] == [FAMILY]


def test_the_noise_is_calibrated_from_the_request_alone_within_epsilon() -> None:
    steps = planned_steps(2, 0.05)
    assert steps == 40
    noise = calibrate_noise(epsilon=1.0, delta=1e-9, sample_rate=0.05, steps=steps)
    assert accounted_epsilon(noise_multiplier=noise, sample_rate=0.05, steps=steps, delta=1e-9) <= 1.0
    # Not wastefully large: 1% less noise would overspend.
    assert accounted_epsilon(noise_multiplier=noise * 0.99, sample_rate=0.05, steps=steps, delta=1e-9) > 1.0
    # Built before any row is read, and the same for every table.
    assert classifier().noise_multiplier == noise
    with pytest.raises(ValueError, match="too small"):
        calibrate_noise(epsilon=1e-6, delta=1e-12, sample_rate=0.5, steps=2000)


def test_the_fit_spends_at_most_its_epsilon_at_its_delta() -> None:
    x = np.random.default_rng(0).random((300, 4))
    model = classifier().fit(x, (x[:, 0] > 0.5).astype(float))
    spent_epsilon, spent_delta = model.accountant.total()
    assert 0 < spent_epsilon <= 1.0 and spent_delta == 1e-9


def test_the_fit_never_touches_torchs_global_generator() -> None:
    import torch

    x = np.random.default_rng(2).random((200, 3))
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    first = classifier().fit(x, (x[:, 0] > 0.5).astype(float))
    assert torch.equal(torch.rand(4), expected)  # another torch job in the worker is not moved
    second = classifier().fit(x, (x[:, 0] > 0.5).astype(float))
    assert np.array_equal(first.torch_proba(x), second.torch_proba(x))  # same streams, same model


def test_the_sklearn_copy_predicts_what_the_torch_model_does() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((400, 5))
    y = ((x[:, 0] + x[:, 1]) > 1).astype(float)
    model = classifier(hidden=7).fit(x, y)
    plain = portable_mlp(model, 5, {"hidden": 7})
    probe = rng.random((200, 5))
    torch_p = model.torch_proba(probe)
    sklearn_p = plain.predict_proba(probe)
    assert sklearn_p.shape == (200, 2)
    np.testing.assert_allclose(sklearn_p[:, 1], torch_p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sklearn_p[:, 0], 1 - torch_p, rtol=0, atol=1e-12)
    assert set(plain.predict(probe)) <= {0, 1}
    assert np.array_equal(plain.predict(probe), (torch_p > 0.5).astype(int))


def test_no_privacy_parameter_moves_with_the_data(small: pd.DataFrame) -> None:
    one = train_dp_model(small, spec(FAMILY, options=OPTIONS), seed=5)
    other = train_dp_model(extreme_neighbour(small), spec(FAMILY, options=OPTIONS), seed=5)
    params = one.privacy_facts["privacy_parameters"]
    assert params == other.privacy_facts["privacy_parameters"]
    assert params["bounds"]["lower"] == [0.0] * WIDTH and params["bounds"]["upper"] == [1.0] * WIDTH
    assert params["bounds"]["source"] == "steward declaration"
    assert params["classes"] == {"value": [0, 1], "source": "steward declaration"}
    assert params["max_grad_norm"]["value"] == 1.0
    noise = params["noise_multiplier"]
    assert noise["steps"] == planned_steps(2, 0.05)
    assert noise["value"] == calibrate_noise(epsilon=5.0, delta=1e-9, sample_rate=0.05, steps=noise["steps"])
    for model in (one, other):
        encoder = load_model_artifact(model.artifact).named_steps["encode"]
        scaler = encoder.named_transformers_["number_0"].named_steps["scale"]
        assert (scaler.data_min_[0], scaler.data_max_[0]) == (40.0, 110.0)


def test_the_artifact_is_skops_with_sklearn_and_numpy_types_only(
    trained: TrainedModel, small: pd.DataFrame
) -> None:
    types = artifact_types(trained.artifact)
    assert types <= set(TRUSTED_TYPES)
    assert "sklearn.neural_network._multilayer_perceptron.MLPClassifier" in types
    assert not [t for t in types if "torch" in t or "opacus" in t or "dpsgd" in t]
    assert trained.sha256 == hashlib.sha256(trained.artifact).hexdigest()
    loaded = load_model_artifact(trained.artifact)
    expected = trained.predict_proba(small)
    assert np.array_equal(loaded.predict_proba(trained.model_input(small))[:, 1], expected)
    assert ((expected > 0) & (expected < 1)).all()


def test_the_facts_state_epsilon_delta_dp_sgd(trained: TrainedModel) -> None:
    facts = trained.privacy_facts
    assert json.loads(json.dumps(facts)) == facts
    assert (facts["epsilon"], facts["delta"]) == ("2", "0.000000001")
    assert facts["flavour"] == "(epsilon, delta)-DP, record-level, via DP-SGD (Opacus RDP accountant)"
    assert facts["unit"] == "record" and facts["model_family"] == FAMILY
    (mechanism,) = facts["mechanisms"]
    assert mechanism["library"] == "opacus" and mechanism["version"]
    assert (mechanism["epsilon"], mechanism["delta"]) == ("2", "0.000000001")
    assert facts["model_options"] == {**OPTIONS, "max_grad_norm": 1.0, "learning_rate": 0.01}


def test_the_spec_delta_is_used_and_checked(small: pd.DataFrame) -> None:
    model = train_dp_model(small, spec(FAMILY, epsilon=1.0, delta="3e-8", options=OPTIONS), seed=1)
    assert model.privacy_facts["delta"] == "0.00000003"
    for bad in ("0", "0.01", -1e-9, "many", True):
        with pytest.raises(ValidationFailed, match="[Dd]elta"):
            train_dp_model(small, spec(FAMILY, delta=bad, options=OPTIONS), seed=1)
    # The pure epsilon-DP families take none (a zero delta is the same as none).
    with pytest.raises(ValidationFailed, match="pure epsilon-DP"):
        train_dp_model(small, spec("dp_decision_tree", delta="1e-9"), seed=1)
    assert train_dp_model(small, spec("dp_decision_tree", delta=0), seed=1).privacy_facts["delta"] == "0"


def test_bad_options_are_refused(small: pd.DataFrame) -> None:
    for options, words in (
        ({"hidden": 65}, "hidden"),
        ({"epochs": 20, "sample_rate": 0.005}, "DP-SGD steps"),
        ({"depth": 2}, "does not accept"),
        ({"max_grad_norm": 0}, "max_grad_norm"),
    ):
        with pytest.raises(ValidationFailed, match=words):
            train_dp_model(small, spec(FAMILY, options=options), seed=1)
    # An epsilon no noise can reach in the planned steps is refused, not overspent.
    with pytest.raises(ValidationFailed, match="too small"):
        train_dp_model(small, spec(FAMILY, epsilon=0.000001, options=OPTIONS), seed=1)


def test_repeatable_under_the_same_randomness_and_not_from_the_public_seed(
    small: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train_dp_model(small, spec(FAMILY, options=OPTIONS), seed=3)
    second = train_dp_model(small, spec(FAMILY, options=OPTIONS), seed=3)
    assert not np.allclose(first.predict_proba(small), second.predict_proba(small))
    assert np.allclose(first.baseline_proba(small), second.baseline_proba(small))
    monkeypatch.setattr(training_module, "mechanism_random_state", lambda: np.random.RandomState(42))
    third = train_dp_model(small, spec(FAMILY, options=OPTIONS), seed=3)
    fourth = train_dp_model(small, spec(FAMILY, options=OPTIONS), seed=3)
    assert np.array_equal(third.predict_proba(small), fourth.predict_proba(small))


def test_it_learns_signal_on_flchain(flchain: pd.DataFrame) -> None:
    order = np.random.default_rng(7).permutation(len(flchain))
    training, holdout = flchain.iloc[order[:5000]], flchain.iloc[order[5000:]]
    model = train_dp_model(training.reset_index(drop=True), spec(FAMILY, epsilon=2.0), seed=1)
    keep = model.labelled(holdout)
    y = model.labels(holdout)[keep]
    assert roc_auc_score(y, model.baseline_proba(holdout)[keep]) > 0.7
    assert roc_auc_score(y, model.predict_proba(holdout)[keep]) > 0.65

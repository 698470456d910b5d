"""The model gate: utility on the locked holdout and membership attacks on the model's outputs.

Attacks are tests: a deep tree that memorises noisy labels must fail the membership and empirical
epsilon checks; a regularised model on a real signal must pass. Seeded, no database.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from validation.gate import NOT_RUN, PRIVACY, UTILITY, gate_passes, needs_acknowledgement
from validation.glossary import FINDINGS, GLOSSARY, check_explanation, reason_for, title_for
from validation.metrics.model import (
    SMALL_BIN,
    auc_with_interval,
    calibration,
    compute_model_metrics,
    membership_inference,
)
from validation.model_gate import (
    DEFAULT_MODEL_THRESHOLDS,
    MODEL_CHECK_NAMES,
    model_gate,
    model_report_charts,
)


def by_name(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in checks}


def noisy(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Five features, the outcome weakly driven by the first: most of each label is noise."""
    x = rng.normal(size=(n, 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x[:, 0]))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def overfit() -> dict[str, Any]:
    """A deep decision tree fitted to 1,000 noisy rows: it memorises every training label."""
    rng = np.random.default_rng(7)
    x_train, y_train = noisy(rng, 1000)
    x_hold, y_hold = noisy(rng, 1000)
    tree = DecisionTreeClassifier(random_state=0).fit(x_train, y_train)
    baseline = LogisticRegression().fit(x_train, y_train)
    return compute_model_metrics(
        y_member=y_train,
        p_member=tree.predict_proba(x_train)[:, 1],
        y_holdout=y_hold,
        p_holdout=tree.predict_proba(x_hold)[:, 1],
        p_holdout_baseline=baseline.predict_proba(x_hold)[:, 1],
        seed=1,
    )


@pytest.fixture(scope="module")
def regularised() -> dict[str, Any]:
    """flchain's death predicted from age, sex and the lab values by a penalised logistic
    regression (2,000 training rows, 1,000 holdout rows), against a gradient-boosted baseline."""
    from validation.tests.conftest import flchain

    frame = flchain().sample(frac=1.0, random_state=2026).reset_index(drop=True).head(3000)
    features = pd.get_dummies(frame[["age", "sex", "kappa", "lambda", "creatinine"]], drop_first=True)
    features = features.astype(float).fillna(features.astype(float).median())
    y = frame["death"].to_numpy().astype(int)
    train, hold = slice(0, 2000), slice(2000, 3000)
    scaler = StandardScaler().fit(features.iloc[train])
    x = scaler.transform(features)
    model = LogisticRegression(C=0.1).fit(x[train], y[train])
    with threadpool_limits(limits=1):  # OpenMP threads crawl on a busy machine
        baseline = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[train], y[train])
    return compute_model_metrics(
        y_member=y[train],
        p_member=model.predict_proba(x[train]),  # (n, 2) predict_proba output is accepted
        y_holdout=y[hold],
        p_holdout=model.predict_proba(x[hold])[:, 1],
        p_holdout_baseline=baseline.predict_proba(x[hold])[:, 1],
        seed=1,
    )


# --- Attacks -----------------------------------------------------------------------------------


def test_a_memorising_model_is_caught_by_the_membership_attack(overfit: dict[str, Any]) -> None:
    attack = overfit["membership"]
    assert attack["auc"] > 0.65 and attack["ci"][0] > 0.6
    assert attack["n_members"] == attack["n_nonmembers"] == 1000

    checks = by_name(model_gate(overfit, epsilon=None).checks)
    membership = checks["model_membership_auc"]
    assert membership["status"] == "failed" and membership["kind"] == PRIVACY and not membership["passed"]
    assert "model_empirical_epsilon" not in checks  # not a DP model: no epsilon to audit


def test_a_memorising_model_refutes_a_small_claimed_epsilon(overfit: dict[str, Any]) -> None:
    bound = overfit["membership"]["empirical_epsilon_lower"]
    assert bound > 1.0 and overfit["membership"]["empirical_epsilon_ci_level"] == 0.95

    refuted = model_gate(overfit, epsilon=0.1)
    epsilon = by_name(refuted.checks)["model_empirical_epsilon"]
    assert refuted.passed is False
    assert epsilon["status"] == "failed" and epsilon["kind"] == PRIVACY
    assert epsilon["value"] == bound and epsilon["threshold"] == 0.1
    # The bound is a lower bound on the true epsilon: a claim above it is not refuted.
    assert by_name(model_gate(overfit, epsilon=bound + 1).checks)["model_empirical_epsilon"]["passed"]


def test_a_regularised_model_on_a_real_signal_passes(regularised: dict[str, Any]) -> None:
    report = model_gate(regularised, epsilon=1.0)
    checks = by_name(report.checks)

    assert report.passed is True, [c for c in report.checks if not c["passed"]]
    assert checks["model_auc"]["ci"][0] >= DEFAULT_MODEL_THRESHOLDS["model_auc_lower_min"]
    assert checks["model_auc_vs_baseline"]["value"] >= 0.9
    lo, hi = regularised["membership"]["ci"]
    assert lo <= 0.5 <= hi
    assert regularised["membership"]["empirical_epsilon_lower"] <= 1.0
    assert {c["kind"] for c in report.checks} == {UTILITY, PRIVACY}
    assert all(c["status"] == "passed" and c["required"] for c in report.checks)


def test_the_attack_balances_members_and_non_members_by_subsampling() -> None:
    rng = np.random.default_rng(3)
    y_m, y_n = rng.integers(0, 2, 900), rng.integers(0, 2, 300)
    result = membership_inference(
        y_member=y_m, p_member=rng.random(900), y_nonmember=y_n, p_nonmember=rng.random(300), seed=0
    )
    assert result["n_members"] == result["n_nonmembers"] == 300
    # Outputs unrelated to membership: chance, and nothing proven about epsilon.
    assert result["ci"][0] <= 0.5 <= result["ci"][1]
    assert result["empirical_epsilon_lower"] == 0.0


# --- AUC and its interval ------------------------------------------------------------------------


def test_the_auc_equals_sklearns_and_its_interval_covers_the_true_auc() -> None:
    """Binormal scores, separation 1: the true AUC is Phi(1 / sqrt 2). DeLong's 95% interval must
    cover it in about 95% of 200 draws (at least 90%, three binomial standard errors)."""
    rng = np.random.default_rng(11)
    true_auc = float(norm.cdf(1 / np.sqrt(2)))
    y = np.r_[np.ones(80, dtype=int), np.zeros(120, dtype=int)]
    covered = 0
    for _ in range(200):
        score = np.r_[rng.normal(1.0, 1.0, 80), rng.normal(0.0, 1.0, 120)]
        result = auc_with_interval(y, score)
        covered += result["ci"][0] <= true_auc <= result["ci"][1]
    assert result["value"] == pytest.approx(roc_auc_score(y, score), abs=1e-6)
    assert result["n"] == 200 and result["method"] == "DeLong"
    assert 0.90 <= covered / 200 <= 0.99


def test_an_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        auc_with_interval(np.ones(50, dtype=int), np.random.default_rng(0).random(50))


# --- Calibration -------------------------------------------------------------------------------------


def test_a_calibrated_predictor_passes_and_an_overconfident_one_fails() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(2, 3, 2000)
    y = (rng.random(2000) < p).astype(int)
    good = calibration(y, p)
    bad = calibration(y, np.clip(p**0.4, 0, 1))  # pushed towards 1

    assert good["ece"] < 0.05 and good["ece_p_value"] > 0.05
    assert bad["ece"] > 0.2 and bad["ece_p_value"] < 0.01
    assert good["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
    assert good["brier"] < bad["brier"]
    for result, verdict in ((good, True), (bad, False)):
        metrics = {"calibration": result, "status": {"calibration": "ok"}}
        assert by_name(model_gate(metrics, epsilon=None).checks)["model_calibration"]["passed"] is verdict
    for result in (good, bad):
        assert all(b["n"] >= SMALL_BIN for b in result["curve"])
        assert sum(b["n"] for b in result["curve"]) <= 2000


def test_small_calibration_bins_are_not_released() -> None:
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(0.0, 0.1, 195), [0.95] * 5]  # the top bin holds five rows
    y = (rng.random(200) < p).astype(int)
    result = calibration(y, p)
    assert result["suppressed_bins"] == 1
    assert all(b["mean_predicted"] < 0.9 for b in result["curve"])


def test_calibration_noise_on_a_small_holdout_does_not_fail_good_models() -> None:
    """120 rows, 10 bins: a perfectly calibrated model's ECE often exceeds 0.10 by chance alone;
    the check fails only when the excess is significant, in about 5% of draws."""
    rng = np.random.default_rng(9)
    above, failed = 0, 0
    for seed in range(60):
        p = rng.uniform(0.05, 0.95, 120)
        y = (rng.random(120) < p).astype(int)
        result = calibration(y, p, seed=seed)
        above += result["ece"] > 0.10
        metrics = {"calibration": result, "status": {"calibration": "ok"}}
        failed += not by_name(model_gate(metrics, epsilon=None).checks)["model_calibration"]["passed"]
    assert above >= 10 and failed <= 8


def test_the_calibration_check_needs_a_significant_excess() -> None:
    def passed(ece: float, p_value: float) -> bool:
        metrics = {"calibration": {"ece": ece, "ece_p_value": p_value}, "status": {"calibration": "ok"}}
        return by_name(model_gate(metrics, epsilon=None).checks)["model_calibration"]["passed"]

    assert passed(0.05, 0.001) and passed(0.15, 0.30)
    assert not passed(0.15, 0.01)


# --- Could not run, errors, thresholds ------------------------------------------------------------


def test_a_single_class_holdout_is_not_run_and_blocks_the_gate() -> None:
    rng = np.random.default_rng(4)
    metrics = compute_model_metrics(
        y_member=rng.integers(0, 2, 400),
        p_member=rng.random(400),
        y_holdout=np.zeros(200, dtype=int),
        p_holdout=rng.random(200),
        p_holdout_baseline=rng.random(200),
    )
    report = model_gate(metrics, epsilon=None)
    checks = by_name(report.checks)

    assert metrics["status"]["auc"] == "one_class" and metrics["auc"] is None
    for name in ("model_auc", "model_auc_vs_baseline"):
        assert checks[name]["status"] == NOT_RUN and checks[name]["passed"] is False, name
        assert checks[name]["reason"] and "0." not in checks[name]["reason"]
    assert report.passed is False and gate_passes(report.checks) is False
    assert set(needs_acknowledgement(report.checks)) == {"model_auc", "model_auc_vs_baseline"}
    assert "was not run" in check_explanation(checks["model_auc"])


def test_too_few_rows_blocks_every_check() -> None:
    rng = np.random.default_rng(4)
    metrics = compute_model_metrics(
        y_member=rng.integers(0, 2, 30),
        p_member=rng.random(30),
        y_holdout=rng.integers(0, 2, 30),
        p_holdout=rng.random(30),
        p_holdout_baseline=None,
    )
    report = model_gate(metrics, epsilon=1.0)
    assert report.passed is False
    assert [c["status"] for c in report.checks] == [NOT_RUN] * 5
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics


def test_no_holdout_at_all_blocks_every_check() -> None:
    rng = np.random.default_rng(4)
    metrics = compute_model_metrics(
        y_member=rng.integers(0, 2, 300),
        p_member=rng.random(300),
        y_holdout=np.zeros(0),
        p_holdout=np.zeros(0),
        p_holdout_baseline=None,
    )
    report = model_gate(metrics, epsilon=None)
    assert report.passed is False and {c["status"] for c in report.checks} == {NOT_RUN}


def test_an_error_in_a_metric_fails_its_check_closed() -> None:
    metrics = {"status": {"auc": "ok"}, "auc": None, "errors": {"auc": "ValueError"}}
    check = by_name(model_gate(metrics, epsilon=None).checks)["model_auc"]
    assert check["status"] == "failed" and check["error"] == "ValueError" and check["reason"]


def test_tier_thresholds_override_the_defaults(regularised: dict[str, Any]) -> None:
    strict = {"model_auc_lower_min": "0.95", "membership_auc_upper_max": 0.5, "mia_auc_max": 0.1}
    checks = by_name(model_gate(regularised, epsilon=None, thresholds=strict).checks)

    assert checks["model_auc"]["threshold"] == 0.95 and not checks["model_auc"]["passed"]
    assert not checks["model_membership_auc"]["passed"]
    # Keys the model gate does not read (the table gate's) and empty values change nothing.
    loose = by_name(model_gate(regularised, epsilon=None, thresholds={"calibration_ece_max": None}).checks)
    assert loose["model_calibration"]["threshold"] == DEFAULT_MODEL_THRESHOLDS["calibration_ece_max"]


def test_default_thresholds_are_policy_shaped() -> None:
    for name, value in DEFAULT_MODEL_THRESHOLDS.items():
        assert name.endswith(("_min", "_max")) and 0 <= value <= 1, name


# --- Glossary, explanations, charts --------------------------------------------------------------


def test_every_model_check_has_a_glossary_entry_and_a_finding(overfit: dict[str, Any]) -> None:
    for name in MODEL_CHECK_NAMES:
        assert name in GLOSSARY and name in FINDINGS, name
        assert title_for(name) == GLOSSARY[name].title and reason_for(name) == GLOSSARY[name].reason
    for check in model_gate(overfit, epsilon=0.1).checks:
        sentence = check_explanation(check)
        if check["status"] == "failed":
            assert sentence.startswith(FINDINGS[check["name"]][0]), sentence


def test_the_charts_show_only_aggregates(regularised: dict[str, Any]) -> None:
    charts = model_report_charts(regularised)
    assert set(charts) == {"calibration", "membership", "auc"}
    figures = {key: json.loads(value) for key, value in charts.items()}
    curve = regularised["calibration"]["curve"]
    model_trace = figures["calibration"]["data"][1]
    assert model_trace["y"] == [b["observed"] for b in curve] and len(model_trace["x"]) <= 10
    membership = figures["membership"]["data"][0]
    assert membership["x"] == [regularised["membership"]["auc"]]
    assert model_report_charts({}) == {}

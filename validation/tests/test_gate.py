"""The gate: thresholds come from the tier's policy, every check must pass, errors fail closed."""

from __future__ import annotations

import pandas as pd
import pytest

from validation.gate import (
    DEFAULT_THRESHOLDS,
    check_estimate_max,
    check_estimate_min,
    thresholds_with_defaults,
)
from validation.metrics.columns import ColumnInfo
from validation.suite import gate_checks, run_suite
from validation.tests.planted import smooth_marginals
from validation.tests.test_controls import TIERS


def test_default_keys_are_ones_the_policy_loader_accepts() -> None:
    for name, value in DEFAULT_THRESHOLDS.items():
        assert name.endswith(("_min", "_max")) and 0 <= value <= 1, name


def test_every_gate_key_in_the_shipped_policy_is_one_the_gate_reads() -> None:
    for tier, thresholds in TIERS.items():
        assert set(thresholds or {}) <= set(DEFAULT_THRESHOLDS), tier


def test_policy_thresholds_replace_defaults_and_unknown_or_empty_keys_are_ignored() -> None:
    merged = thresholds_with_defaults(
        {"mia_auc_max": "0.55", "made_up_max": 0.1, "exact_copy_rate_max": None}
    )

    assert merged["mia_auc_max"] == 0.55
    assert merged["exact_copy_rate_max"] == DEFAULT_THRESHOLDS["exact_copy_rate_max"]
    assert "made_up_max" not in merged


def test_a_policy_threshold_changes_the_verdict_of_the_same_metrics() -> None:
    metrics = {"requested_columns_present": 1.0, "exact_copy_rate": 0.015}

    def exact(thresholds: dict[str, float] | None) -> bool:
        return next(c.passed for c in gate_checks(metrics, thresholds) if c.name == "exact_copy_rate")

    assert exact(TIERS["low"]) is True  # 0.02 ceiling
    assert exact(TIERS["medium"]) is False  # 0.01 ceiling


@pytest.mark.parametrize(
    ("value", "ci", "passed"),
    [
        (0.10, [0.0, 0.2], True),  # under the ceiling
        (0.20, [-0.05, 0.45], True),  # above it, but the attack is not shown to work at all
        (0.20, [0.05, 0.35], False),  # above it and significantly better than chance
        (None, None, False),  # could not run: fails closed
        (0.05, None, False),  # no interval: fails closed
    ],
)
def test_a_privacy_ceiling_on_an_estimate_needs_a_significant_breach(value, ci, passed) -> None:  # type: ignore[no-untyped-def]
    assert check_estimate_max("singling_out_risk", value, 0.15, ci=ci, null=0.0).passed is passed


@pytest.mark.parametrize(
    ("value", "ci", "passed"),
    [(0.9, [0.8, 1.0], True), (0.7, [0.6, 0.85], True), (0.6, [0.5, 0.7], False), (None, None, False)],
)
def test_a_utility_floor_on_an_estimate_fails_when_its_whole_interval_is_below(value, ci, passed) -> None:  # type: ignore[no-untyped-def]
    assert check_estimate_min("tstr_auc_ratio", value, 0.8, ci=ci).passed is passed


def test_without_a_holdout_the_privacy_tests_that_need_one_fail_closed(
    training: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    result = run_suite(
        training=training, synthetic=smooth_marginals(training, 300, 1), holdout=None, infos=infos
    )
    checks = {c.name: c for c in result.checks}

    for name in ("membership_inference_auc", "singling_out_risk", "linkability_risk", "inference_risk"):
        assert (checks[name].passed, checks[name].error) == (False, "HoldoutUnavailable"), name
    assert checks["exact_copy_rate"].passed is True  # needs no holdout
    assert result.passed is False


def test_one_failing_check_fails_the_gate_and_errors_are_types_only(
    training: pd.DataFrame, holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    synthetic = smooth_marginals(training, 300, 2)
    synthetic["kappa"] = synthetic["kappa"].astype(object)
    synthetic.loc[0, "kappa"] = "secret-kappa-value"  # unparseable: bounds flag it, nothing crashes

    result = run_suite(training=training, synthetic=synthetic, holdout=holdout, infos=infos)

    failed = [c.name for c in result.checks if not c.passed]
    assert "bound_violation_rate" in failed
    assert result.passed is False
    assert "secret-kappa-value" not in str(result.metrics)
    assert all(kind.isidentifier() for kind in result.metrics["errors"].values())


def test_a_dp_release_whose_attack_proves_more_than_its_epsilon_fails(
    training: pd.DataFrame, holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    leaked = run_suite(
        training=training, synthetic=training.copy(), holdout=holdout, infos=infos, dp_epsilon=1.0
    )
    honest = run_suite(
        training=training,
        synthetic=smooth_marginals(training, 600, 3),
        holdout=holdout,
        infos=infos,
        dp_epsilon=1.0,
    )

    leak_check = next(c for c in leaked.checks if c.name == "dp_empirical_epsilon")
    honest_check = next(c for c in honest.checks if c.name == "dp_empirical_epsilon")
    assert (leak_check.passed, leak_check.threshold) == (False, 1.0)
    assert leak_check.value is not None and leak_check.value > 1.0
    assert honest_check.passed is True


def test_non_dp_releases_have_no_dp_check(
    training: pd.DataFrame, holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    result = run_suite(
        training=training, synthetic=smooth_marginals(training, 300, 4), holdout=holdout, infos=infos
    )

    assert "dp_empirical_epsilon" not in {c.name for c in result.checks}
    assert "dp_audit" not in result.metrics

"""Positive and negative controls: planted leaks are blocked, honest independent marginals pass.

Each planted generator is judged at the default thresholds and at every tier of the shipped policy
(policies/tiering.yaml), because a control that passes only at the strictest tier would let the leak
through wherever the policy is looser. 2,000 training and 600 holdout rows of flchain: enough for
every privacy check, anonymeter's included, to be gated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from validation.metrics.columns import ColumnInfo
from validation.suite import SuiteResult, gate_checks, run_suite
from validation.tests.planted import (
    copy_one_percent,
    copy_outliers,
    most_outlying,
    perturbed_copy,
    smooth_marginals,
)

POLICY = Path(__file__).resolve().parents[2] / "policies" / "tiering.yaml"


def tier_thresholds() -> dict[str, dict[str, Any] | None]:
    tiers = yaml.safe_load(POLICY.read_text())["tiers"]
    shipped = {level: tiers[level]["gate"] for level in ("low", "medium", "high")}
    return {"defaults": None, **shipped}


TIERS = tier_thresholds()


def judge(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    infos: list[ColumnInfo],
    generate: Callable[[pd.DataFrame, int, int], pd.DataFrame],
    rows: int,
) -> SuiteResult:
    return run_suite(
        training=training, synthetic=generate(training, rows, 11), holdout=holdout, infos=infos, seed=3
    )


def failed(result: SuiteResult, thresholds: dict[str, Any] | None) -> dict[str, bool]:
    return {c.name: c.passed for c in gate_checks(result.metrics, thresholds) if not c.passed}


@pytest.mark.parametrize("rows", [2000, 1000])
def test_copying_one_percent_of_training_rows_is_blocked_at_every_tier(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo], rows: int
) -> None:
    result = judge(large_training, large_holdout, infos, copy_one_percent, rows)

    assert result.metrics["exact_copies"] == 20  # 1% of 2,000 training rows, each one a unique person
    assert result.metrics["replicated_uniques"]["count"] == 20
    for tier, thresholds in TIERS.items():
        assert "replicated_uniques_rate" in failed(result, thresholds), tier
    assert result.passed is False


def test_copying_the_five_most_outlying_rows_is_blocked_at_every_tier(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    result = judge(large_training, large_holdout, infos, copy_outliers, 2000)

    assert result.metrics["replicated_uniques"]["count"] == 5
    # 5 of 2,000 rows is under every tier's exact-copy ceiling: the unique-record check is what blocks.
    assert result.metrics["exact_copy_rate"] < 0.005
    for tier, thresholds in TIERS.items():
        assert "replicated_uniques_rate" in failed(result, thresholds), tier


def test_the_planted_outliers_are_the_rows_farthest_from_the_centre(large_training: pd.DataFrame) -> None:
    outliers = large_training.iloc[most_outlying(large_training)]

    assert (outliers["kappa"].median() > large_training["kappa"].quantile(0.9)) or (
        outliers["creatinine"].median() > large_training["creatinine"].quantile(0.9)
    )


@pytest.mark.parametrize("rows", [2000, 1000])
def test_independent_marginals_pass_every_privacy_check_at_every_tier(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo], rows: int
) -> None:
    result = judge(large_training, large_holdout, infos, smooth_marginals, rows)

    assert result.metrics["errors"] == {}
    assert result.metrics["anonymeter"]["gated"] is True
    for tier, thresholds in TIERS.items():
        privacy = [c for c in gate_checks(result.metrics, thresholds) if c.kind == "privacy"]
        assert {c.name for c in privacy} >= {
            "exact_copy_rate",
            "replicated_uniques_rate",
            "membership_inference_auc",
            "singling_out_risk",
            "linkability_risk",
            "inference_risk",
        }
        assert all(c.passed for c in privacy), (tier, [c for c in privacy if not c.passed])


def test_a_perturbed_copy_scores_high_on_shapes_but_is_blocked_by_membership_inference(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    result = judge(large_training, large_holdout, infos, perturbed_copy, 2000)

    assert result.metrics["column_shape_similarity"] > 0.9
    assert result.metrics["exact_copies"] == 0
    assert result.metrics["membership_inference"]["auc"] > 0.6
    for tier, thresholds in TIERS.items():
        assert "membership_inference_auc" in failed(result, thresholds), tier


def test_with_a_small_holdout_anonymeter_risks_are_reported_as_not_run_with_a_reason(
    training: pd.DataFrame, holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    result = judge(training, holdout, infos, smooth_marginals, 600)
    checks = {c.name: c for c in result.checks}

    assert result.metrics["anonymeter"]["gated"] is False
    assert result.metrics["anonymeter"]["singling_out"]["ci"] is not None
    # Not silently dropped: each attack is listed as not run, says why in words, keeps its estimate.
    for name in ("singling_out_risk", "linkability_risk", "inference_risk"):
        assert checks[name].status == "not_run", name
        assert "at least 500 training and 500 holdout rows" in checks[name].reason
        assert "_" not in checks[name].reason  # plain words, no codes
        assert checks[name].passed is True  # not required by default: shown, not blocking
    assert checks["singling_out_risk"].value == result.metrics["anonymeter"]["singling_out"]["risk"]
    assert "anonymeter_too_few_holdout_rows" in result.metrics["warnings"]

"""TSTR against TRTR on a declared-by-convention outcome, and the report's suppressed overlays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import SAFE_COLUMNS
from validation.gate import DEFAULT_THRESHOLDS
from validation.metrics.columns import ColumnInfo
from validation.metrics.overlays import SUPPRESSED, distribution_overlays
from validation.metrics.tstr import choose_outcome, tstr
from validation.suite import gate_checks
from validation.tests.conftest import SAFE_INFOS


def split(source: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = source[SAFE_COLUMNS]
    return frame.iloc[:3000].reset_index(drop=True), frame.iloc[3000:4500].reset_index(drop=True)


def test_the_outcome_is_the_first_sensitive_column_with_two_values() -> None:
    frame = pd.DataFrame({"chapter": ["a", "b", "c"], "mgus": ["no", "yes", "no"], "death": [0, 1, 1]})
    infos = [
        ColumnInfo("chapter", "categorical", "sensitive"),
        ColumnInfo("mgus", "boolean", "sensitive"),
        ColumnInfo("death", "boolean", "sensitive"),
    ]

    assert choose_outcome(frame, infos) == "mgus"
    assert choose_outcome(frame, [ColumnInfo("chapter", "categorical", "sensitive")]) is None


def test_a_release_equal_to_the_training_rows_has_ratio_one(source: pd.DataFrame) -> None:
    training, holdout = split(source)

    result = tstr(training, training, holdout, SAFE_INFOS, seed=1)

    assert (result["status"], result["outcome"], result["test_rows"]) == ("ok", "death", "holdout")
    assert result["auc_trtr"] > 0.75  # age predicts death in flchain
    assert result["ratio"] == 1.0


def test_a_release_with_scrambled_outcomes_fails_the_tstr_floor(source: pd.DataFrame) -> None:
    training, holdout = split(source)
    scrambled = training.assign(death=np.random.default_rng(0).permutation(training["death"].to_numpy()))

    result = tstr(training, scrambled, holdout, SAFE_INFOS, seed=1)
    check = next(c for c in gate_checks({"tstr": result}, None) if c.name == "tstr_auc_ratio")

    assert abs(result["auc_tstr"] - 0.5) < 0.1
    assert result["ratio_ci"][1] < DEFAULT_THRESHOLDS["tstr_auc_ratio_min"]
    assert check.passed is False


def test_without_a_binary_sensitive_column_tstr_is_not_applicable_and_not_a_failure(
    source: pd.DataFrame,
) -> None:
    training, holdout = split(source)
    infos = [ColumnInfo(i.name, i.kind, "other") for i in SAFE_INFOS]

    result = tstr(training, training, holdout, infos)
    names = [c.name for c in gate_checks({"tstr": result, "columns": []}, None)]

    assert result["status"] == "not_applicable"
    assert "tstr_auc_ratio" not in names


def test_overlays_hide_training_bins_and_categories_below_k() -> None:
    infos = [ColumnInfo("age", "numeric"), ColumnInfo("chapter", "categorical")]
    training = pd.DataFrame(
        {"age": [50.0] * 40 + [101.0], "chapter": ["Circulatory"] * 38 + ["Congenital"] * 3}
    )

    overlays = distribution_overlays(training, training, infos, k=5)

    assert None in overlays["age"]["training"]  # the single 101-year-old's bin is not shown
    assert overlays["age"]["suppressed_bins"] >= 1
    assert overlays["chapter"]["categories"] == ["Circulatory", SUPPRESSED]
    assert "Congenital" not in str(overlays)

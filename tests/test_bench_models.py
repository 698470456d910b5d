"""bench/models.py on a tiny case: the declarations it trains on are complete steward declarations,
its baseline is what it says it is, and its federated encoding reads every table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.models import (
    AFTER_OUTCOME,
    TABLES,
    column_specs,
    dp_model_row,
    features_of,
    federated_encoding,
    load,
    round_times,
    split,
)
from federation.runtime.app.sgfl.task import encode
from generation.modeling import model_declaration_refusals


@pytest.mark.parametrize("name", ["flchain", "actg175", "gbsg2", "whas500"])
def test_every_table_is_declared_for_both_families_and_for_federation(name: str) -> None:
    table = TABLES[name]
    features = features_of(table)
    assert table.outcome not in features
    assert not set(AFTER_OUTCOME[name]) & set(features)
    for family in ("dp_logistic_regression", "dp_random_forest"):
        assert (
            model_declaration_refusals(
                family=family,
                target=table.outcome,
                features=list(features),
                column_specs=[dict(s) for s in column_specs(table)],
            )
            == []
        )
    frame = load(name)
    X, y = encode(frame, federated_encoding(table))
    assert X.shape == (len(frame), X.shape[1]) and 0.0 <= X.min() and X.max() <= 1.0
    assert 0.05 < y.mean() < 0.95  # the declared positive class is the table's events


def test_dp_model_row_scores_dp_and_the_same_familys_baseline_on_the_holdout() -> None:
    from generation.modeling import ModelSpec, train_dp_model

    table = TABLES["gbsg2"]
    train, holdout = split(load("gbsg2"))
    row = dp_model_row(table, train, holdout, family="dp_random_forest", epsilon=1.0, repeats=2)
    assert (row.n_train, row.n_holdout) == (548, 138)
    assert len(row.dp_auc) == 2 and len(row.job_s) == 2 and all(0.0 <= a <= 1.0 for a in row.dp_auc)
    assert row.dp_ci[0] <= row.dp_auc[0] <= row.dp_ci[1]
    # The baseline is the non-private forest on the same rows (seed 0): recompute it directly.
    model = train_dp_model(
        train,
        ModelSpec(
            family="dp_random_forest",
            target="cens",
            features=features_of(table),
            epsilon=1.0,
            column_specs=column_specs(table),
        ),
        seed=0,
    )
    expected = roc_auc_score(model.labels(holdout), model.baseline_proba(holdout))
    assert row.baseline_auc == pytest.approx(expected, abs=1e-6)
    assert row.baseline_ci[0] < row.baseline_auc < row.baseline_ci[1]
    assert row.baseline_fit_s > 0 and "| forest | 1 |" in row.line()


def test_round_times_are_differences_between_events() -> None:
    timings = {
        "processes_started_s": 4.0,
        "health_s": 30.0,
        "round_1_s": 50.0,
        "round_2_s": 65.0,
        "total_s": 80.0,
    }
    startup, health, rounds = round_times(timings)
    assert (startup, health) == (4.0, 26.0)
    assert np.allclose(rounds, [20.0, 15.0])

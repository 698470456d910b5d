"""The anonymeter risks' interval (issue 12): Katz's log interval for the ratio of the training and
holdout failure rates, checked against hand computation, zero counts, the false positive that made
anonymeter's own interval unusable with more attacks, and by simulation for its coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from anonymeter.stats.confidence import EvaluationResults

from validation.gate import check_estimate_max
from validation.metrics.columns import ColumnInfo
from validation.metrics.risks import anonymeter_risks, risk_interval
from validation.tests.planted import perturbed_copy

# Attacks a side: the shared tables' holdouts (pbc, actg175, flchain) and the gate's 500.
SIZES = (84, 428, 500, 1575)
# Control success rates from a free-for-all secret to one the other columns nearly fix.
CONTROL_SUCCESS = (0.5, 0.75, 0.9, 0.97, 0.99)
SAMPLES = 4000
CEILING = 0.15  # the gate's default risk ceiling


def _simulated(n: int, control: float, risk: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Risk estimates and intervals of SAMPLES simulated attacks: `n` a side, the control attack
    succeeding at rate `control`, the training one at the rate that makes the true risk `risk`."""
    rng = np.random.default_rng(seed)
    train_rate = control + risk * (1 - control)
    pairs = np.column_stack([rng.binomial(n, train_rate, SAMPLES), rng.binomial(n, control, SAMPLES)])
    unique, index = np.unique(pairs, axis=0, return_inverse=True)
    results = [risk_interval(n, int(k_t), n, int(k_c)) for k_t, k_c in unique]
    values = np.array([value for value, _ in results])[index.ravel()]
    lower = np.array([ci[0] for _, ci in results])[index.ravel()]
    upper = np.array([ci[1] for _, ci in results])[index.ravel()]
    return values, lower, upper


def test_the_interval_is_katz_log_ratio_interval_of_the_failure_rates() -> None:
    # 24 of 2,000 training attacks and 30 of 1,575 holdout attacks fail.
    value, (low, high) = risk_interval(2000, 1976, 1575, 1545)

    ratio = (24 / 2000) / (30 / 1575)
    half_width = 1.959964 * math.sqrt(1 / 24 - 1 / 2000 + 1 / 30 - 1 / 1575)
    assert value == pytest.approx(1 - ratio)
    assert high == pytest.approx(1 - ratio * math.exp(-half_width), abs=1e-5)
    assert low == 0.0  # 1 - ratio * exp(+half_width) is negative, clipped
    assert 1 - ratio * math.exp(half_width) < 0


def test_a_rare_flag_differing_by_chance_is_not_called_significant() -> None:
    # flchain's mgus with every row attacked (issue 12): the flag is 1.2% of the training sample
    # and 1.9% of the holdout, the attack always guesses "no". Anonymeter's interval excludes 0
    # (the release failed the gate); Fisher's exact test gives p = 0.07, and so does this one not.
    anonymeters = EvaluationResults(
        n_attacks=(2000, 2000, 1575), n_success=1976, n_baseline=0, n_control=1545
    )
    value, (low, high) = risk_interval(2000, 1976, 1575, 1545)

    assert anonymeters.risk().ci[0] > 0
    assert value > CEILING and low == 0.0
    assert check_estimate_max("inference_risk", value, CEILING, ci=[low, high], null=0.0).passed


def test_zero_failures_or_successes_give_a_finite_honest_interval() -> None:
    # The control attack never fails: the risk cannot be measured, and the interval says so.
    value, (low, high) = risk_interval(100, 100, 100, 100)
    assert value == pytest.approx(0.0) and low == 0.0 and high > 0.9
    value, (low, high) = risk_interval(100, 99, 100, 100)
    assert low == 0.0 and 0.5 < high < 1.0
    # Training attacks never fail, holdout ones often do: a large risk, clearly above 0.
    value, (low, high) = risk_interval(500, 500, 500, 250)
    assert value > 0.99 and low > 0.9
    # Never succeeding on either side: no risk, and fractional (rescaled) counts are accepted.
    value, (low, high) = risk_interval(100, 0, 100, 0)
    assert value == pytest.approx(0.0) and low == 0.0 and 0 < high < 0.03
    assert risk_interval(200, 10.5, 180, 9.25)[1][1] > 0
    with pytest.raises(ValueError):
        risk_interval(100, 101, 100, 50)
    with pytest.raises(ValueError):
        risk_interval(0, 0, 100, 50)


@pytest.mark.parametrize("n", SIZES)
def test_with_no_risk_the_upper_bound_covers_0_and_the_gate_rarely_fails(n: int) -> None:
    """Training and holdout attacks succeed at the same rate: the upper bound must reach above 0
    in at least 95% of samples (two-sided 95%: 97.5% nominal), and the gate (estimate above 0.15
    and lower bound above 0) must fail at most 5% of them (2.5% nominal)."""
    for i, control in enumerate(CONTROL_SUCCESS):
        values, lower, upper = _simulated(n, control, 0.0, seed=1000 * n + i)
        fails = np.mean([
            not check_estimate_max("inference_risk", v, CEILING, ci=[lo, hi], null=0.0).passed
            for v, lo, hi in zip(values, lower, upper, strict=True)
        ])  # fmt: skip
        assert np.mean(upper > 0) >= 0.95, (n, control)
        assert np.mean(lower > 0) <= 0.04, (n, control)
        assert fails <= 0.05, (n, control)


@pytest.mark.parametrize("n", SIZES)
def test_with_a_true_risk_of_0_2_the_interval_covers_it(n: int) -> None:
    for i, control in enumerate(CONTROL_SUCCESS):
        _, lower, upper = _simulated(n, control, 0.2, seed=7000 * n + i)
        assert np.mean(upper >= 0.2) >= 0.95, (n, control)
        assert np.mean((lower <= 0.2) & (upper >= 0.2)) >= 0.93, (n, control)


def test_where_anonymeters_interval_excludes_0_too_often_this_one_does_not() -> None:
    # A secret the other columns nearly fix (control success 0.99) and 500 attacks a side, no
    # risk: anonymeter's lower bound is above 0 in about 7% of samples where 2.5% is promised.
    rng = np.random.default_rng(12)
    train, control = rng.binomial(500, 0.99, SAMPLES), rng.binomial(500, 0.99, SAMPLES)
    anonymeters = np.mean([
        EvaluationResults(n_attacks=500, n_success=int(t), n_baseline=0, n_control=int(c)).risk().ci[0] > 0
        for t, c in zip(train, control, strict=True)
    ])  # fmt: skip
    ours = np.mean(
        [risk_interval(500, int(t), 500, int(c))[1][0] > 0 for t, c in zip(train, control, strict=True)]
    )
    assert anonymeters > 0.05
    assert ours <= 0.03


def test_more_attacks_narrow_the_upper_bound() -> None:
    # The same rates (control 0.97, no risk), four times the attacks: about half the log width.
    few = risk_interval(400, 388, 400, 388)[1][1]
    many = risk_interval(1600, 1552, 1600, 1552)[1][1]
    assert many < few * 0.65


def test_every_risk_reports_this_interval_from_the_attack_counts(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    synthetic = perturbed_copy(large_training, 2000, 11)

    risks = anonymeter_risks(large_training, synthetic, large_holdout, infos, seed=3)

    assert risks["n_reference"] == 600
    for attack in ("singling_out", "linkability", "inference"):
        result = risks[attack]
        assert result["interval"] == "katz_log_ratio"
        assert result["n_attacks"] == 600  # every sampled row is attacked
        train_successes, control_successes = result["successes"]
        value, ci = risk_interval(600, train_successes, 600, control_successes)
        assert result["risk"] == pytest.approx(value, abs=1e-6)
        assert result["ci"] == pytest.approx(list(ci), abs=1e-6)
        assert result["ci"][0] <= result["risk"] <= result["ci"][1]
        assert len(result["ci_anonymeter"]) == 2
    # A release that copies people still shows its inference risk, significantly.
    assert risks["inference"]["ci"][0] > 0.15

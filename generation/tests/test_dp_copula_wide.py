"""dp_copula on a wide table: the declared outcome's relationships survive the noise, and the
sensitivity behind that (per-record bounds on the quantised scores) holds for every record.

Before this, the d(d-1)/2 pairwise sums shared epsilon equally with per-sum sensitivity c^2, so on
a 47-column ICU table (SUPPORT2) every correlation's noise had a standard deviation near 3 and the
release carried no outcome signal (train-on-synthetic AUC 0.47-0.58 of 0.999 on real rows). Now a
per-record L1 bound on the quantised scores gives the whole vector of sums one L1 sensitivity
(geometric noise, integer sums), and the outcome's d - 1 sums (and the pairs between missingness
pattern groups) are measured on their own with half of the correlations' epsilon.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from generation.choices import ColumnKind
from generation.synthesizers import ColumnSpec, synthesizer_for
from generation.synthesizers.dp_budget import PrivacyLedger
from generation.synthesizers.dp_copula import (
    OUTCOME_MARGINAL_STEP,
    SCORE_QUANTUM,
    l1_bound,
    noised_sums,
    noisy_counts,
    quantised_scores,
)
from generation.synthesizers.dp_domain import ColumnDomain, column_domain

WIDTH = 30


def wide_table(rows: int = 5000, seed: int = 0) -> tuple[pd.DataFrame, list[ColumnSpec]]:
    """WIDTH standard-normal features (clipped to +-4); the outcome depends on x0 and x1 only."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.standard_normal((rows, WIDTH)), -4, 4)
    outcome = (x[:, 0] + x[:, 1] + rng.standard_normal(rows) > 0).astype(int).astype(str)
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(WIDTH)])
    frame["died"] = outcome
    specs = [ColumnSpec(f"x{j}", ColumnKind.NUMERIC, lower=-4, upper=4, nullable=False) for j in range(WIDTH)]
    specs.append(ColumnSpec("died", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False, outcome=True))
    return frame, specs


def outcome_correlations(frame: pd.DataFrame) -> pd.Series:
    died = frame["died"].astype(int)
    return frame.drop(columns="died").corrwith(died)


def test_the_outcome_keeps_its_drivers_on_a_wide_table_at_epsilon_one() -> None:
    frame, specs = wide_table()
    real = outcome_correlations(frame)
    assert real["x0"] > 0.4 and real["x1"] > 0.4  # what there is to keep

    synthesizer = synthesizer_for("dp_copula", epsilon="1")
    released = synthesizer.fit_sample(frame, columns=specs, rows=5000, seed=3, progress=lambda f, s: None)

    synthetic = outcome_correlations(released)
    # The drivers keep a clear positive correlation (the old equal split left each correlation's
    # noise at a standard deviation near 1 here, so the sign itself was a coin toss).
    assert synthetic["x0"] > 0.2 and synthetic["x1"] > 0.2, synthetic.head()
    # And the columns that do not drive it are not made to.
    assert synthetic.drop(["x0", "x1"]).abs().max() < 0.2, synthetic.sort_values().tail()


def test_the_ledger_names_both_correlation_measurements_and_adds_up_exactly() -> None:
    # Few columns and many rows: the other pairs' noise is small enough to be worth measuring.
    frame, specs = wide_table(rows=20000)
    frame, specs = frame[["x0", "x1", "x2", "died"]], [specs[0], specs[1], specs[2], specs[-1]]
    synthesizer = synthesizer_for("dp_copula", epsilon="0.7")
    synthesizer.fit_sample(frame, columns=specs, rows=10, seed=1, progress=lambda f, s: None)

    steps = [(e.step, e.epsilon) for e in synthesizer.ledger.entries]
    assert [s for s, _ in steps] == [
        "marginals",
        "correlations with the outcome and among missingness patterns",
        "correlations",
    ]
    assert sum(e for _, e in steps) == Decimal("0.7")
    per_score = int(np.floor(2.0 * SCORE_QUANTUM))
    bound = l1_bound(4, 2.0)
    sensitivities = [e.sensitivity for e in synthesizer.ledger.entries]
    assert sensitivities[1] == min(per_score**2 * 3, per_score * bound)
    assert sensitivities[2] == min(per_score**2 * 3, bound * bound // 2)


def test_on_a_wide_small_table_the_other_pairs_are_left_out_and_the_outcome_gets_it_all() -> None:
    # 31 columns, 500 rows: measuring 435 other pairs would put noise of a standard deviation well
    # above MAX_OTHER_NOISE on each correlation, so they are not measured (a choice made from the
    # released count, the declarations and epsilon) and the outcome's pairs get the whole share.
    frame, specs = wide_table(rows=500)
    synthesizer = synthesizer_for("dp_copula", epsilon="0.7")
    synthesizer.fit_sample(frame, columns=specs, rows=10, seed=1, progress=lambda f, s: None)

    entries = synthesizer.ledger.entries
    assert [e.step for e in entries] == [
        "marginals",
        OUTCOME_MARGINAL_STEP,
        "correlations with the outcome and among missingness patterns",
    ]
    assert sum(e.epsilon for e in entries) == Decimal("0.7")
    assert set(synthesizer.sums) == {(j, WIDTH) for j in range(WIDTH)}


def _row_contribution(q: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """For each record: how far removing it moves the vector of integer sums over `pairs` in L1."""
    return np.sum([np.abs(q[:, j] * q[:, m]) for j, m in pairs], axis=0)


@pytest.mark.parametrize("k", [1, 3])
def test_no_record_moves_either_measurement_by_more_than_its_recorded_sensitivity(k: int) -> None:
    # The neighbouring-dataset argument, checked record by record on scores built to hit the bounds:
    # ordinary rows, rows with every score at the clip (the most extreme record possible), rows with
    # one huge score, and rows of zeros (missing everywhere). Removing a record (or a patient's k
    # records) changes each measured vector by that record's products: never more than recorded.
    rng = np.random.default_rng(5)
    dims, clip = 12, 2.0
    z = np.clip(rng.standard_normal((400, dims)), -clip, clip)
    z[:20] = clip * np.sign(rng.standard_normal((20, dims)))
    z[20:40] = 0.0
    z[40:60, 3] = clip
    q, _, bound = quantised_scores(z, clip=clip)
    assert (np.abs(q).sum(axis=1) <= bound).all()
    assert np.abs(q).max() <= int(np.floor(clip * SCORE_QUANTUM))

    ledger = PrivacyLedger()
    noised_sums(z, clip=clip, epsilon=Decimal("1"), ledger=ledger, k=k, outcome=0, pattern_dims=2)
    pairs = list(itertools.combinations(range(dims), 2))
    priority = [p for p in pairs if 0 in p or p[0] >= dims - 2]
    others = [p for p in pairs if p not in priority]
    recorded = {e.step: e.sensitivity for e in ledger.entries}
    worst_priority = int(np.sort(_row_contribution(q, priority))[-k:].sum())
    worst_others = int(np.sort(_row_contribution(q, others))[-k:].sum())
    assert worst_priority <= recorded["correlations with the outcome and among missingness patterns"]
    assert worst_others <= recorded["correlations"]
    # The bound is not slack for nothing: the extreme rows come within a factor 3 of it.
    assert worst_others * 3 >= recorded["correlations"]


def test_an_extreme_record_is_scaled_down_not_dropped_and_ordinary_rows_are_untouched() -> None:
    rng = np.random.default_rng(2)
    z = np.clip(rng.standard_normal((1000, 20)), -2, 2) * 0.5
    z[0] = 2.0
    q, _, bound = quantised_scores(z, clip=2.0)
    assert np.abs(q[0]).sum() <= bound and (q[0] > 0).all()
    ordinary = np.abs(np.rint(z[1:] * SCORE_QUANTUM)).sum(axis=1) <= bound
    assert ordinary.mean() > 0.95
    np.testing.assert_array_equal(q[1:][ordinary], np.rint(z[1:][ordinary] * SCORE_QUANTUM))


def _categories(name: str, cells: int) -> ColumnDomain:
    spec = ColumnSpec(name, ColumnKind.CATEGORICAL, categories=tuple(str(v) for v in range(cells)))
    return column_domain(spec, bins=cells, integer=False, other=None)


def test_the_outcome_marginal_is_measured_on_its_own_with_a_share_of_the_marginals_budget() -> None:
    # 18 columns, 4,000 rows, 104 deaths: split equally, the deaths' count carried noise of scale
    # d / epsilon_m = 48 and releases held half the deaths. Measured on its own with
    # OUTCOME_MARGINAL_SHARE of epsilon_m at sensitivity 1, its noise is a fraction of the others'.
    rng = np.random.default_rng(9)
    columns, rows = 18, 4_000
    codes = rng.integers(0, 5, size=(rows, columns))
    codes[:, -1] = (rng.random(rows) < 0.026).astype(int)
    domains = [_categories(f"c{j}", 5) for j in range(columns - 1)] + [_categories("died", 2)]
    true_other = np.bincount(codes[:, 0], minlength=5)
    true_deaths = int(codes[:, -1].sum())
    other_errors, death_errors = [], []
    for _ in range(200):
        ledger = PrivacyLedger()
        counts = noisy_counts(domains, codes, Decimal("0.375"), ledger, outcome=columns - 1)
        other_errors.append(counts[0][0] - true_other[0])
        death_errors.append(counts[-1][1] - true_deaths)
    assert [(e.step, e.sensitivity) for e in ledger.entries] == [
        ("marginals", 17),
        (OUTCOME_MARGINAL_STEP, 1),
    ]
    assert sum(e.epsilon for e in ledger.entries) == Decimal("0.375")  # exactly, in micro-epsilon
    assert ledger.entries[1].epsilon == Decimal("0.075")
    # Scale 1 / 0.075 = 13 against 17 / 0.3 = 57 (and 48 for every column before).
    assert np.std(death_errors) < 0.4 * np.std(other_errors)
    assert np.std(death_errors) < 25


def test_a_narrow_table_keeps_one_marginal_measurement() -> None:
    # With 5 columns or fewer an equal split already gives the outcome at least the share.
    rng = np.random.default_rng(10)
    codes = rng.integers(0, 2, size=(100, 4))
    domains = [_categories(f"c{j}", 2) for j in range(4)]
    ledger = PrivacyLedger()
    noisy_counts(domains, codes, Decimal("0.5"), ledger, outcome=3)
    assert [(e.step, e.epsilon, e.sensitivity) for e in ledger.entries] == [("marginals", Decimal("0.5"), 4)]

"""The metric functions on small frames whose answers are known by hand (or by SDMetrics)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

from conftest import SAFE_COLUMNS, small_flchain_csv
from validation.metrics import exact_copies, ks_complement, tv_complement
from validation.metrics.columns import ColumnInfo
from validation.metrics.distance import fit_embedding, nearest_distances
from validation.metrics.privacy import (
    empirical_epsilon,
    epsilon_bound,
    qi_replicated_uniques,
    replicated_uniques,
)
from validation.metrics.stats import auc_interval, clopper_pearson, rank_auc, wilson
from validation.metrics.utility import (
    REAL_ASSOCIATION_THRESHOLD,
    bound_violations,
    category_coverage,
    column_pair_trends,
    missingness,
    pair_trend_score,
)

# --- ks_complement ---------------------------------------------------------------------------


def test_ks_complement_of_identical_samples_is_one() -> None:
    sample = pd.Series([3.5, 1.0, 2.0, 8.25, 2.0])

    assert ks_complement(sample, sample.sample(frac=1.0, random_state=1)) == 1.0


def test_ks_complement_of_disjoint_samples_is_zero() -> None:
    assert ks_complement(pd.Series([1.0, 2.0, 3.0]), pd.Series([10.0, 11.0, 12.0])) == 0.0


def test_ks_complement_of_half_overlapping_samples_is_one_half() -> None:
    assert ks_complement(pd.Series([1, 2, 3, 4]), pd.Series([3, 4, 5, 6])) == pytest.approx(0.5)


def test_ks_complement_ignores_missing_values() -> None:
    assert ks_complement(pd.Series([1.0, np.nan, 2.0]), pd.Series([1.0, 2.0])) == 1.0


# --- tv_complement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "synthetic", "expected"),
    [
        (["a", "a", "b", "b"], ["a", "a", "a", "a"], 0.5),
        (["a", "b"], ["b", "a"], 1.0),
        (["a", "a"], ["b", "b"], 0.0),
        (["a", "a", "a", "b"], ["a", "b", "b", "b"], 0.5),
        (["x", "y", "z"], ["x", "x", "x"], 1 / 3),
    ],
)
def test_tv_complement_of_known_frequencies(real: list[str], synthetic: list[str], expected: float) -> None:
    assert tv_complement(pd.Series(real), pd.Series(synthetic)) == pytest.approx(expected)


def test_tv_complement_counts_missing_as_a_category() -> None:
    assert tv_complement(pd.Series(["a", None]), pd.Series(["a", "a"])) == pytest.approx(0.5)
    assert tv_complement(pd.Series(["a", np.nan]), pd.Series([np.nan, "a"])) == 1.0
    assert tv_complement(pd.Series([None, None]), pd.Series(["a", "a"])) == 0.0


def test_tv_complement_does_not_confuse_missing_with_the_text_nan() -> None:
    assert tv_complement(pd.Series(["nan", "nan"]), pd.Series([np.nan, np.nan])) == 0.0


# --- exact_copies ----------------------------------------------------------------------------


@pytest.fixture
def real() -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(small_flchain_csv(500)))[SAFE_COLUMNS]


def test_exact_copies_counts_planted_copies_exactly(real: pd.DataFrame) -> None:
    planted = real.sample(n=50, random_state=3)
    different = real.sample(n=450, replace=True, random_state=4).assign(futime=-1.0 - np.arange(450))
    synthetic = pd.concat([different, planted], ignore_index=True).sample(frac=1.0, random_state=5)

    assert exact_copies(real, synthetic) == 50
    assert exact_copies(real, different) == 0


def test_exact_copies_treats_1_and_1_point_0_as_equal() -> None:
    real = pd.DataFrame({"x": [1, 2, 3], "sex": ["F", "M", "F"]})
    synthetic = pd.DataFrame({"x": [1.0, 2.0, 3.5], "sex": ["F", "F", "F"]})

    assert exact_copies(real, synthetic) == 1


def test_exact_copies_matches_missing_to_missing_and_compares_only_released_columns() -> None:
    real = pd.DataFrame({"x": [1.0, np.nan], "chapter": [None, "Mental"], "secret": [7, 8]})
    synthetic = pd.DataFrame({"x": [np.nan, 1.0], "chapter": ["Mental", "Mental"]})

    assert exact_copies(real, synthetic) == 1


def test_exact_copies_treats_a_float_0_1_flag_like_the_integer_one() -> None:
    real = pd.DataFrame({"death": [0, 1], "sex": ["F", "M"]})
    synthetic = pd.DataFrame({"death": [1.0, 0.0], "sex": ["M", "F"]})

    assert exact_copies(real, synthetic) == 2


# --- column pair trends -------------------------------------------------------------------------

X_Y_GROUP = [ColumnInfo("x", "numeric"), ColumnInfo("y", "numeric"), ColumnInfo("group", "categorical")]


def test_pair_trends_of_a_copy_are_all_one_and_reversed_correlation_scores_zero() -> None:
    x = np.arange(100, dtype=float)
    real = pd.DataFrame({"x": x, "y": 2 * x, "group": np.where(x < 50, "a", "b")})
    reversed_ = real.assign(y=-2 * x)

    same = {tuple(p["columns"]): p for p in column_pair_trends(real, real, X_Y_GROUP)}
    flipped = {tuple(p["columns"]): p for p in column_pair_trends(real, reversed_, X_Y_GROUP)}

    assert all(p["score"] == 1.0 for p in same.values())
    assert (flipped[("x", "y")]["metric"], flipped[("x", "y")]["score"]) == ("correlation", 0.0)
    assert flipped[("x", "group")]["metric"] == "contingency"
    assert flipped[("x", "group")]["score"] == 1.0  # x and group did not change


def test_only_pairs_with_a_real_trend_count_towards_the_pair_score() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    real = pd.DataFrame(
        {"x": x, "y": x + rng.normal(scale=0.1, size=500), "group": rng.choice(["a", "b"], 500)}
    )
    scrambled = real.assign(y=rng.permutation(real["y"].to_numpy()))

    pairs = {tuple(p["columns"]): p for p in column_pair_trends(real, scrambled, X_Y_GROUP)}

    assert pairs[("x", "y")]["counts"] is True  # r = 0.99 in the real data
    assert pairs[("x", "group")]["counts"] is False  # no association to preserve
    assert pair_trend_score(list(pairs.values())) == pytest.approx(pairs[("x", "y")]["score"])
    assert pair_trend_score(list(pairs.values())) < 0.6


def test_pair_score_is_none_when_no_pair_has_a_trend() -> None:
    rng = np.random.default_rng(1)
    real = pd.DataFrame(
        {"x": rng.normal(size=300), "y": rng.normal(size=300), "group": rng.choice(["a", "b"], 300)}
    )

    assert pair_trend_score(column_pair_trends(real, real, X_Y_GROUP)) is None


CODE_LAB = [ColumnInfo("code", "categorical"), ColumnInfo("lab", "numeric")]


def test_a_many_coded_column_does_not_show_a_trend_by_chance_alone() -> None:
    # A 450-code diagnosis column drawn independently of a lab: plain Cramér's V is about 0.33 in
    # 4,000 rows (chance, from the table's 4,500 cells), so the pair used to count, and no release,
    # not even more real rows, could reproduce a joint table of that many sparse cells.
    rng = np.random.default_rng(3)
    rows = 4_000
    real = pd.DataFrame({"code": rng.integers(0, 450, rows).astype(str), "lab": rng.lognormal(1, 0.5, rows)})
    other_real_rows = pd.DataFrame(
        {"code": rng.integers(0, 450, 1_000).astype(str), "lab": rng.lognormal(1, 0.5, 1_000)}
    )

    (pair,) = column_pair_trends(real, other_real_rows, CODE_LAB)

    assert pair["real"] > REAL_ASSOCIATION_THRESHOLD  # plain V: what SDMetrics' rule reads
    assert pair["counts_sdmetrics"] is True
    assert pair["counts"] is False  # bias-corrected V: no trend
    assert pair["score"] < 0.7  # such a pair scored real rows the generator never saw as poor


def test_a_many_coded_column_that_sets_a_lab_still_shows_its_trend() -> None:
    rng = np.random.default_rng(4)
    rows = 4_000
    codes = rng.integers(0, 300, rows)
    # Each code has its own lab level: a real association, strong for all the table's sparsity.
    real = pd.DataFrame({"code": codes.astype(str), "lab": codes / 30 + rng.normal(0, 0.5, rows)})
    scrambled = real.assign(lab=rng.permutation(real["lab"].to_numpy()))

    (pair,) = column_pair_trends(real, scrambled, CODE_LAB)

    assert pair["counts"] is True
    assert pair["score"] < 0.7  # losing it is caught


# --- missingness, coverage, bounds ----------------------------------------------------------------


def test_missingness_compares_the_joint_pattern_not_just_rates() -> None:
    infos = [ColumnInfo("a", "numeric"), ColumnInfo("b", "numeric")]
    together = pd.DataFrame({"a": [np.nan, np.nan, 1, 1], "b": [np.nan, np.nan, 1, 1]})
    apart = pd.DataFrame({"a": [np.nan, np.nan, 1, 1], "b": [1, 1, np.nan, np.nan]})

    result = missingness(together, apart, infos)

    assert result["columns"]["a"] == {"real": 0.5, "synthetic": 0.5}
    assert result["pattern_similarity"] == 0.0  # same rates, opposite pattern
    assert missingness(together, together, infos)["pattern_similarity"] == 1.0


def test_category_coverage_counts_rare_categories_without_naming_them() -> None:
    infos = [ColumnInfo("chapter", "categorical")]
    real = pd.DataFrame({"chapter": ["common"] * 97 + ["rare1", "rare2", "rare3"]})
    synthetic = pd.DataFrame({"chapter": ["common"] * 9 + ["rare1"]})

    result = category_coverage(real, synthetic, infos)

    assert (result["categories"], result["covered"], result["rare"], result["rare_covered"]) == (4, 2, 3, 1)
    assert result["rare_coverage"] == pytest.approx(1 / 3, abs=1e-6)
    assert "rare1" not in str(result)


def test_bound_violations_cover_bounds_categories_and_dates_and_report_fractions() -> None:
    infos = [
        ColumnInfo("age", "numeric", lower=18, upper=100, integer=True),
        ColumnInfo("sex", "categorical", categories=("F", "M")),
        ColumnInfo("seen", "datetime", lower="2020-01-01", upper="2020-12-31"),
    ]
    real = pd.DataFrame({"age": [30, 40], "sex": ["F", "M"], "seen": ["2020-02-01", "2020-03-01"]})
    synthetic = pd.DataFrame(
        {
            "age": [30, 17, 40.5, 50, 60],
            "sex": ["F", "M", "F", "X", None],
            "seen": ["2020-02-01", "2020-02-01", "2020-02-01", "2020-02-01", "2021-06-01"],
        }
    )

    result = bound_violations(real, synthetic, infos)

    assert result["columns"]["age"] == {
        "rules": ["lower", "upper", "integer"],
        "synthetic_rows": 1,  # 17 is below the lower bound
        "training_rows": 0,
        "fractional_rows": 1,  # 40.5 in a whole-number column: reported, not gated
    }
    assert result["columns"]["sex"]["synthetic_rows"] == 1  # X is undeclared; missing is allowed
    assert result["columns"]["seen"]["synthetic_rows"] == 1
    assert (result["rate"], result["training_rate"], result["integer_rate"]) == (0.6, 0.0, 0.2)


def test_a_boolean_column_declared_true_false_accepts_booleans_and_flags_anything_else() -> None:
    infos = [ColumnInfo("smoker", "boolean", categories=("False", "True"))]
    real = pd.DataFrame({"smoker": [True, False, True]})
    synthetic = pd.DataFrame({"smoker": pd.Series([True, False, None, "maybe"], dtype=object)})

    result = bound_violations(real, synthetic, infos)

    assert result["columns"]["smoker"]["training_rows"] == 0
    assert result["columns"]["smoker"]["synthetic_rows"] == 1  # "maybe"; missing is allowed


# --- replicated uniques -------------------------------------------------------------------------


def test_replicated_uniques_count_copies_of_unique_records_but_not_of_common_profiles() -> None:
    infos = [ColumnInfo("sex", "categorical", "quasi_identifier"), ColumnInfo("flag", "boolean")]
    real = pd.DataFrame({"sex": ["F", "F", "F", "M"], "flag": [0, 0, 0, 1]})
    synthetic = pd.DataFrame({"sex": ["F", "M", "M"], "flag": [0, 1, 0]})

    result = replicated_uniques(real, synthetic, infos)

    # (F, 0) is shared by three people: copying it discloses nobody. (M, 1) is one person.
    assert (result["count"], result["training_uniques"]) == (1, 1)
    assert result["rate"] == pytest.approx(1 / 3, abs=1e-6)


def test_qi_replicated_uniques_compare_the_release_with_an_equal_sized_holdout() -> None:
    infos = [ColumnInfo("age", "numeric", "quasi_identifier"), ColumnInfo("x", "numeric")]
    real = pd.DataFrame({"age": [30, 31, 32, 40, 40], "x": [1.0, 2, 3, 4, 5]})
    synthetic = pd.DataFrame({"age": [30, 31, 32, 50], "x": [9.0, 9, 9, 9]})
    holdout = pd.DataFrame({"age": [60, 61, 62, 63], "x": [1.0, 1, 1, 1]})

    result = qi_replicated_uniques(real, synthetic, holdout, infos, np.random.default_rng(0))

    assert (result["training_uniques"], result["synthetic"], result["holdout"]) == (3, 1.0, 0.0)
    assert result["warning"] is True
    assert (
        qi_replicated_uniques(
            real, synthetic, holdout, [ColumnInfo("x", "numeric")], np.random.default_rng(0)
        )["status"]
        == "not_applicable"
    )


# --- confidence intervals -----------------------------------------------------------------------


def test_wilson_and_clopper_pearson_match_published_values() -> None:
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)


def test_auc_interval_narrows_with_more_records_and_rank_auc_counts_ties_as_half() -> None:
    small, large = auc_interval(0.7, 50, 50), auc_interval(0.7, 5000, 5000)

    assert small[0] < large[0] < 0.7 < large[1] < small[1]
    assert rank_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5
    assert rank_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


# --- DP audit -----------------------------------------------------------------------------------


def test_epsilon_bound_from_rates_respects_the_dp_inequalities() -> None:
    # A perfect attack on 1000 + 1000 records proves epsilon of about ln(0.9963 / 0.0037) = 5.6.
    assert epsilon_bound(1000, 1000, 0, 1000) == pytest.approx(5.6, abs=0.1)
    # Equal rates prove nothing.
    assert epsilon_bound(500, 1000, 500, 1000) == 0.0
    # TPR 0.6 vs FPR 0.3 on 10 000 each: e^eps >= ~1.95 even at the bounds, so eps >= ~0.64.
    bound = epsilon_bound(6000, 10_000, 3000, 10_000)
    assert 0.6 < bound < np.log(2.0)


def test_empirical_epsilon_flags_a_copying_release_and_not_an_independent_one() -> None:
    rng = np.random.default_rng(0)
    # Attack scores are -distance to the release: members copied verbatim sit at 0.
    copied = empirical_epsilon(np.zeros(400), -rng.uniform(0.01, 1, 400), rng=rng)
    independent = empirical_epsilon(-rng.uniform(0, 1, 400), -rng.uniform(0, 1, 400), rng=rng)

    assert copied["epsilon_lower_bound"] > 3.0  # far above any claimed epsilon of 1
    assert independent["epsilon_lower_bound"] < 0.5


# --- distances reproduce SDMetrics' DCR -----------------------------------------------------------


def test_nearest_neighbour_distances_equal_sdmetrics_calculate_dcr() -> None:
    rng = np.random.default_rng(2)
    n = 120
    reference = pd.DataFrame(
        {
            "x": rng.normal(50, 10, n),
            "y": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 5, n)),
            "group": rng.choice(["a", "b", "c"], n),
            "flag": rng.choice(["yes", "no", None], n),
        }
    )
    queries = reference.sample(n=60, random_state=1).reset_index(drop=True)
    queries["x"] = queries["x"] + rng.normal(0, 2, 60)
    queries.loc[:9, "y"] = np.nan
    queries.loc[10:14, "group"] = "d"  # a category the reference never saw
    infos = [
        ColumnInfo("x", "numeric"),
        ColumnInfo("y", "numeric"),
        ColumnInfo("group", "categorical"),
        ColumnInfo("flag", "categorical"),
    ]
    metadata = {
        "columns": {
            "x": {"sdtype": "numerical"},
            "y": {"sdtype": "numerical"},
            "group": {"sdtype": "categorical"},
            "flag": {"sdtype": "categorical"},
        }
    }
    # SDMetrics caps a difference at the range; keep queries inside it so both must agree exactly.
    queries["x"] = queries["x"].clip(reference["x"].min(), reference["x"].max())

    embedding = fit_embedding(reference, infos)
    ours = nearest_distances(embedding.transform(queries), embedding.transform(reference), embedding.columns)
    theirs = calculate_dcr(queries, reference, metadata).to_numpy()

    np.testing.assert_allclose(ours, theirs, atol=1e-9)

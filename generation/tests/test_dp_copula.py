"""dp_copula: the epsilon it claims is earned end to end.

What is checked: the release depends on the data only through the mechanisms (a neighbouring
dataset with an out-of-domain record yields the same schema, dtypes, category set and bounds);
the epsilon spent equals the request exactly; diffprivlib never falls back to data-derived bounds;
undeclared metadata is refused before anything is spent; counts get discrete noise.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import data_file
from generation.choices import ColumnKind
from generation.synthesizers import ColumnSpec, synthesizer_for
from generation.synthesizers.dp_budget import mechanism_epsilon, parse_epsilon, split_epsilon
from generation.synthesizers.dp_copula import DPCopulaSynthesizer, privacy_leaks_are_errors

CHAPTERS = (
    "Circulatory", "Neoplasms", "Respiratory", "Mental", "Nervous", "Digestive", "Genitourinary",
    "Endocrine", "External Causes", "Musculoskeletal", "Ill Defined", "Infectious", "Blood",
    "Skin", "Congenital", "Injury and Poisoning",
)  # fmt: skip
SPECS = [
    ColumnSpec("age", ColumnKind.NUMERIC, lower=50, upper=105, nullable=False),
    ColumnSpec("sex", ColumnKind.CATEGORICAL, categories=("F", "M"), nullable=False),
    ColumnSpec("kappa", ColumnKind.NUMERIC, lower=0, upper=10, nullable=False),
    ColumnSpec("lambda", ColumnKind.NUMERIC, lower=0, upper=10, nullable=False),
    ColumnSpec("creatinine", ColumnKind.NUMERIC, lower=0, upper=5, nullable=True),
    ColumnSpec("chapter", ColumnKind.CATEGORICAL, categories=CHAPTERS, nullable=True),
    ColumnSpec("death", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False),
]
NAMES = [s.name for s in SPECS]
OPTIONS = {"integer_columns": ["age"]}
ROWS = 3000
DTYPES = {
    "age": "int64",
    "sex": "object",
    "kappa": "float64",
    "lambda": "float64",
    "creatinine": "float64",
    "chapter": "object",
    "death": "object",
}


@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv"))


def release(frame: pd.DataFrame, epsilon: Any, *, seed: int = 1, options: dict | None = None) -> pd.DataFrame:
    synthesizer = synthesizer_for("dp_copula", epsilon=epsilon, options=options or OPTIONS)
    return synthesizer.fit_sample(frame, columns=SPECS, rows=ROWS, seed=seed, progress=lambda f, s: None)


def assert_valid_release(frame: pd.DataFrame) -> None:
    """Everything about the release that must not depend on the data."""
    assert list(frame.columns) == NAMES
    assert len(frame) == ROWS
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == DTYPES
    for spec in SPECS:
        column = frame[spec.name]
        if not spec.nullable:
            assert column.notna().all(), spec.name
        values = column.dropna()
        if spec.categories is not None:
            assert set(values) <= set(spec.categories), spec.name
        else:
            assert values.between(spec.lower, spec.upper).all(), spec.name
    assert (frame["age"] == frame["age"].round()).all()


def neighbour_with_an_out_of_domain_record(frame: pd.DataFrame) -> pd.DataFrame:
    changed = frame.copy()
    changed.loc[0, ["age", "kappa", "lambda", "creatinine"]] = [1e9, -1e9, np.inf, 1e12]
    changed.loc[0, ["sex", "chapter", "death"]] = ["X", "Not a declared chapter", "7"]
    return changed


# (a) neighbouring datasets ---------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.05, 1, 50])
def test_an_out_of_domain_neighbour_gives_the_same_schema_dtypes_categories_and_bounds(
    flchain: pd.DataFrame, epsilon: float
) -> None:
    neighbour = neighbour_with_an_out_of_domain_record(flchain)

    original, changed = release(flchain, epsilon), release(neighbour, epsilon)

    assert_valid_release(original)
    assert_valid_release(changed)
    assert original.dtypes.equals(changed.dtypes)


def test_a_neighbour_moves_each_column_by_at_most_one_declared_cell(flchain: pd.DataFrame) -> None:
    # The sensitivity argument: one changed record changes at most one record's cell per column.
    synthesizer = DPCopulaSynthesizer(1)
    from generation.synthesizers.dp_domain import table_domain

    domains = table_domain(SPECS, bins=20, integer_columns=["age"], other_category={})
    neighbour = neighbour_with_an_out_of_domain_record(flchain)
    for domain in domains:
        before, after = domain.encode(flchain[domain.name]), domain.encode(neighbour[domain.name])
        assert (before != after).sum() <= 1, domain.name
        assert before.max() < domain.cells and after.max() < domain.cells
    assert synthesizer.epsilon_spent() == 0


def test_undeclared_categories_go_to_the_declared_catch_all_when_one_is_named(flchain: pd.DataFrame) -> None:
    specs = [
        ColumnSpec("chapter", ColumnKind.CATEGORICAL, categories=("Circulatory", "Other"), nullable=False)
    ]
    synthesizer = synthesizer_for("dp_copula", epsilon=50, options={"other_category": {"chapter": "Other"}})

    frame = synthesizer.fit_sample(flchain, columns=specs, rows=2000, seed=2, progress=lambda f, s: None)

    real_other = flchain["chapter"].notna() & (flchain["chapter"] != "Circulatory")
    expected = real_other.sum() / flchain["chapter"].notna().sum()
    assert set(frame["chapter"]) == {"Circulatory", "Other"}
    assert abs((frame["chapter"] == "Other").mean() - expected) < 0.05


def test_missing_values_are_a_counted_cell_in_nullable_columns_only(flchain: pd.DataFrame) -> None:
    frame = release(flchain, 50)

    real_missing = flchain["creatinine"].isna().mean()
    assert abs(frame["creatinine"].isna().mean() - real_missing) < 0.04
    assert frame["chapter"].isna().any()
    assert frame[["age", "sex", "kappa", "lambda", "death"]].notna().all().all()


def test_date_time_columns_are_released_within_their_declared_epoch_bounds() -> None:
    start, end = pd.Timestamp("2000-01-01"), pd.Timestamp("2010-12-31")
    days = pd.Series(pd.date_range(start, end, periods=500)).dt.strftime("%Y-%m-%d")
    frame = pd.DataFrame({"admitted": days})
    spec = ColumnSpec(
        "admitted", ColumnKind.DATETIME, lower=start.timestamp(), upper=end.timestamp(), nullable=False
    )

    out = synthesizer_for("dp_copula", epsilon=5).fit_sample(
        frame, columns=[spec], rows=200, seed=1, progress=lambda f, s: None
    )

    assert str(out["admitted"].dtype) == "datetime64[ns]"
    assert out["admitted"].between(start, end).all()


# (b) epsilon accounting ------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", ["1", "0.3", "50", "0.000003", "2.718281", Decimal("0.1")])
def test_the_epsilon_spent_equals_the_request_exactly(flchain: pd.DataFrame, epsilon: Any) -> None:
    synthesizer = synthesizer_for("dp_copula", epsilon=epsilon, options=OPTIONS)

    synthesizer.fit_sample(flchain, columns=SPECS, rows=10, seed=1, progress=lambda f, s: None)

    assert synthesizer.epsilon_spent() == Decimal(str(epsilon))
    assert [e.step for e in synthesizer.ledger.entries] == [
        "marginals",
        "missingness patterns",
        "correlations",
    ]
    assert sum(e.epsilon for e in synthesizer.ledger.entries) == Decimal(str(epsilon))
    assert f"epsilon spent {Decimal(str(epsilon))}" in synthesizer.privacy_statement


def test_a_float_epsilon_means_the_decimal_that_was_typed() -> None:
    assert parse_epsilon(0.1) == Decimal("0.1")
    assert split_epsilon(Decimal("0.3"), Decimal("0.5")) == (Decimal("0.150000"), Decimal("0.150000"))
    assert sum(split_epsilon(Decimal("0.000003"), Decimal("0.5"))) == Decimal("0.000003")


@pytest.mark.parametrize("share", ["0.1", "0.3", "0.000001", "2.718281", "50", "0.7"])
def test_each_mechanism_is_given_a_float_never_above_its_share(share: str) -> None:
    assert Decimal(mechanism_epsilon(Decimal(share))) <= Decimal(share)


@pytest.mark.parametrize("epsilon", [0, -1, "abc", float("nan"), float("inf"), "0.0000001", True])
def test_an_epsilon_that_is_not_a_positive_whole_number_of_micro_epsilon_is_refused(epsilon: Any) -> None:
    with pytest.raises(ValueError, match="[Ee]psilon"):
        DPCopulaSynthesizer(epsilon)


def test_a_single_column_spends_the_whole_epsilon_on_its_marginal(flchain: pd.DataFrame) -> None:
    synthesizer = DPCopulaSynthesizer("0.7")

    synthesizer.fit_sample(flchain, columns=SPECS[:1], rows=10, seed=1, progress=lambda f, s: None)

    assert [(e.step, e.epsilon) for e in synthesizer.ledger.entries] == [("marginals", Decimal("0.7"))]


def test_an_instance_refuses_to_spend_its_budget_twice(flchain: pd.DataFrame) -> None:
    synthesizer = DPCopulaSynthesizer(1)
    synthesizer.fit_sample(flchain, columns=SPECS, rows=10, seed=1, progress=lambda f, s: None)

    with pytest.raises(RuntimeError, match="already spent"):
        synthesizer.fit_sample(flchain, columns=SPECS, rows=10, seed=1, progress=lambda f, s: None)
    assert synthesizer.epsilon_spent() == 1


def test_the_noise_is_not_derived_from_the_recorded_seed(flchain: pd.DataFrame) -> None:
    # The seed is on the receipt; noise reproducible from it could be subtracted.
    first, second = release(flchain, 0.05, seed=9), release(flchain, 0.05, seed=9)

    assert not first.equals(second)


# (c) no data-derived bounds --------------------------------------------------------------------


def test_a_run_emits_no_privacy_leak_warning(flchain: pd.DataFrame) -> None:
    from diffprivlib.utils import PrivacyLeakWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        release(flchain, 1)

    assert not [w for w in caught if issubclass(w.category, PrivacyLeakWarning)]


def test_a_data_derived_bound_inside_the_dp_code_path_is_an_error() -> None:
    from diffprivlib.tools import mean
    from diffprivlib.utils import PrivacyLeakWarning

    with pytest.raises(PrivacyLeakWarning), privacy_leaks_are_errors():
        mean(np.array([1.0, 2.0, 3.0]), epsilon=1.0)  # no bounds: diffprivlib would read them from the data


# (d) refusing undeclared metadata --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ColumnSpec("kappa", ColumnKind.NUMERIC), "has no declared bounds"),
        (ColumnSpec("kappa", ColumnKind.NUMERIC, lower=0), "has no declared bounds"),
        (ColumnSpec("kappa", ColumnKind.NUMERIC, lower=3, upper=3), "lower < upper"),
        (ColumnSpec("kappa", ColumnKind.NUMERIC, lower=0, upper=float("inf")), "not finite"),
        (ColumnSpec("sex", ColumnKind.CATEGORICAL), "has no declared categories"),
        (ColumnSpec("death", ColumnKind.BOOLEAN, categories=()), "has no declared categories"),
        (ColumnSpec("sex", ColumnKind.CATEGORICAL, categories=("F", "F")), "same category twice"),
        (ColumnSpec("chapter", ColumnKind.TEXT), "cannot be synthesized with differential privacy"),
    ],
)
def test_a_column_without_declared_metadata_is_refused_before_anything_is_spent(
    flchain: pd.DataFrame, spec: ColumnSpec, message: str
) -> None:
    synthesizer = DPCopulaSynthesizer(1)

    with pytest.raises(ValueError, match=message):
        synthesizer.fit_sample(flchain, columns=[SPECS[0], spec], rows=10, seed=1, progress=lambda f, s: None)
    assert synthesizer.epsilon_spent() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"integer_columns": ["sex"]}, "numeric columns only"),
        ({"integer_columns": ["nope"]}, "not in the request"),
        ({"other_category": {"sex": "Other"}}, "one of its declared categories"),
        ({"bins": 1}, "between 2 and 200"),
        ({"correlation_share": 1.0}, "between 0.01 and 0.99"),
        ({"lower": 0}, "does not accept"),
    ],
)
def test_inconsistent_options_are_refused(flchain: pd.DataFrame, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesizer = DPCopulaSynthesizer(1, options)
        synthesizer.fit_sample(flchain, columns=SPECS, rows=10, seed=1, progress=lambda f, s: None)


# (e) utility at large epsilon, validity at tiny epsilon ----------------------------------------


def total_variation(real: pd.Series, synthetic: pd.Series) -> float:
    p = real.value_counts(normalize=True, dropna=False)
    q = synthetic.value_counts(normalize=True, dropna=False)
    return 0.5 * float(p.sub(q, fill_value=0).abs().sum())


def test_with_a_large_epsilon_the_marginals_and_correlations_follow_the_data(flchain: pd.DataFrame) -> None:
    frame = release(flchain, 50)
    age_bins = np.arange(50, 110, 5)

    assert total_variation(flchain["sex"], frame["sex"]) < 0.03
    assert total_variation(flchain["death"].astype(str), frame["death"]) < 0.03
    assert total_variation(pd.cut(flchain["age"], age_bins), pd.cut(frame["age"], age_bins)) < 0.05
    assert abs(frame["kappa"].median() - flchain["kappa"].median()) < 0.3
    assert frame["kappa"].corr(frame["lambda"], method="spearman") > 0.5  # real: 0.72


def test_with_a_tiny_epsilon_the_release_is_noisy_but_valid(flchain: pd.DataFrame) -> None:
    frame = release(flchain, 0.01)

    assert_valid_release(frame)
    # At epsilon 0.01 the noise dominates and the projected marginal may put all of a column's mass
    # on one cell: still a valid release, so only validity is asserted (counting distinct values,
    # as this test once did, failed now and then).


# (f) discrete noise on counts ------------------------------------------------------------------


def test_counts_get_integer_noise_from_the_geometric_mechanism(
    flchain: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counts and the pairwise sums of quantised scores are integers with discrete (geometric) noise:
    # no floating-point Laplace (plain or Snapping) anywhere.
    from diffprivlib.mechanisms import Geometric, Laplace, Snapping

    seen: dict[str, list[Any]] = {"Geometric": [], "Laplace": [], "Snapping": []}
    for cls in (Geometric, Laplace, Snapping):
        original = cls.randomise

        def spy(self: Any, value: Any, _original: Any = original, _name: str = cls.__name__) -> Any:
            result = _original(self, value)
            seen[_name].append((value, result))
            return result

        monkeypatch.setattr(cls, "randomise", spy)

    release(flchain, 0.5)

    # age 20 bins, sex 2, kappa 20, lambda 20, creatinine 20 + missing, chapter 16 + missing, death 2
    cells = 20 + 2 + 20 + 20 + 21 + 17 + 2 + 4  # + the 2^2 patterns of creatinine and chapter
    pairs = (len(SPECS) + 1) * len(SPECS) // 2  # one more dimension: the pattern group
    assert len(seen["Geometric"]) == cells + pairs
    assert all(isinstance(v, int) and isinstance(r, int) for v, r in seen["Geometric"])
    assert any(v != r for v, r in seen["Geometric"])  # noise was added
    assert not seen["Laplace"] and not seen["Snapping"]


def test_sampling_never_lands_in_a_cell_whose_released_mass_is_zero() -> None:
    from generation.synthesizers.dp_copula import Marginal

    # Ten cells of 0.1 add up to 0.9999999999999999 in floats; the empty 11th cell must stay empty.
    marginal = Marginal(np.array([0.1] * 10 + [0.0]), 100.0)
    lower, upper = marginal.cdf
    draws = np.array([0.0, 0.05, 0.95, np.nextafter(1.0, 0.0)])

    cells = np.searchsorted(upper, draws, side="right")

    assert cells.tolist() == [0, 0, 9, 9]
    assert (upper[9], lower[10], upper[10]) == (1.0, 1.0, 1.0)

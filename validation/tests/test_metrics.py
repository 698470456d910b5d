"""The metric functions on small frames whose answers are known by hand."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from conftest import SAFE_COLUMNS, small_flchain_csv
from validation.metrics import exact_copies, ks_complement, tv_complement

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

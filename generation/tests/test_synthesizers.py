"""The SDV Gaussian copula behind the Synthesizer interface: shape, progress, seeds, labelling."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from conftest import small_flchain_csv
from generation.choices import ColumnKind
from generation.synthesizers import REGISTRY, ColumnSpec, synthesizer_for
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer

ROWS = 250
SPECS = [
    ColumnSpec("age", ColumnKind.NUMERIC),
    ColumnSpec("sex", ColumnKind.CATEGORICAL),
    ColumnSpec("kappa", ColumnKind.NUMERIC),
    ColumnSpec("chapter", ColumnKind.CATEGORICAL),
    ColumnSpec("death", ColumnKind.BOOLEAN),
]
NAMES = [s.name for s in SPECS]


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    # Extra columns on purpose: the synthesizer must use only the requested ones.
    return pd.read_csv(io.BytesIO(small_flchain_csv(400)))


def synthesize(training: pd.DataFrame, seed: int, progress: list[float] | None = None) -> pd.DataFrame:
    calls = progress if progress is not None else []
    return GaussianCopulaSynthesizer().fit_sample(
        training, columns=SPECS, rows=ROWS, seed=seed, progress=lambda fraction, stage: calls.append(fraction)
    )


@pytest.fixture(scope="module")
def seeded_run(training: pd.DataFrame) -> tuple[pd.DataFrame, list[float]]:
    progress: list[float] = []
    return synthesize(training, seed=7, progress=progress), progress


def test_gaussian_copula_returns_exactly_the_requested_rows_and_columns(
    seeded_run: tuple[pd.DataFrame, list[float]], training: pd.DataFrame
) -> None:
    frame, _ = seeded_run

    assert len(training) == 400
    assert frame.shape == (ROWS, len(NAMES))
    assert list(frame.columns) == NAMES
    assert set(frame["sex"].dropna()) <= {"F", "M"}
    assert set(frame["death"].dropna()) <= {0, 1}


def test_progress_never_goes_backwards_and_ends_at_one(seeded_run: tuple[pd.DataFrame, list[float]]) -> None:
    _, progress = seeded_run

    assert len(progress) >= 3
    assert all(0.0 <= f <= 1.0 for f in progress)
    assert all(a <= b for a, b in zip(progress, progress[1:], strict=False))
    assert progress[-1] == 1.0


def test_same_seed_reproduces_the_same_frame(
    seeded_run: tuple[pd.DataFrame, list[float]], training: pd.DataFrame
) -> None:
    pd.testing.assert_frame_equal(synthesize(training, seed=7), seeded_run[0])


def test_another_seed_gives_different_rows(
    seeded_run: tuple[pd.DataFrame, list[float]], training: pd.DataFrame
) -> None:
    assert not synthesize(training, seed=8).equals(seeded_run[0])


def test_gaussian_copula_is_labelled_as_not_differentially_private() -> None:
    synthesizer = synthesizer_for("gaussian_copula")

    assert isinstance(synthesizer, GaussianCopulaSynthesizer)
    assert synthesizer.is_dp is False
    assert "not differentially private" in synthesizer.label.lower()
    assert not REGISTRY["gaussian_copula"].name.startswith("dp_")

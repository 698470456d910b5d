"""Validation tests keep registered datasets in their own storage folder; flchain frames for the suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import SAFE_COLUMNS, data_file
from validation.metrics.columns import ColumnInfo

# How the dataset fixture's intake classifies SAFE_COLUMNS (generation.policies), with bounds.
SAFE_INFOS = [
    ColumnInfo("age", "numeric", "quasi_identifier", lower=40, upper=110, integer=True),
    ColumnInfo("sex", "categorical", "quasi_identifier", categories=("F", "M")),
    ColumnInfo("kappa", "numeric", "other", lower=0, upper=200),
    ColumnInfo("lambda", "numeric", "other", lower=0, upper=200),
    ColumnInfo("creatinine", "numeric", "other", lower=0, upper=50),
    ColumnInfo("futime", "numeric", "other", lower=0, upper=10_000, integer=True),
    ColumnInfo("death", "boolean", "sensitive", categories=("0", "1")),
]


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder


def flchain() -> pd.DataFrame:
    return pd.read_csv(data_file("flchain.csv"))


@pytest.fixture(scope="session")
def source() -> pd.DataFrame:
    """flchain in a fixed random order: the file's own order is not random (its first rows are
    older patients), and members and non-members must come from the same population, as the
    intake's random holdout split guarantees."""
    return flchain().sample(frac=1.0, random_state=2026).reset_index(drop=True)


@pytest.fixture
def training(source: pd.DataFrame) -> pd.DataFrame:
    """600 rows: the generator's training rows (members)."""
    return source.head(600)[SAFE_COLUMNS].reset_index(drop=True)


@pytest.fixture
def holdout(source: pd.DataFrame) -> pd.DataFrame:
    """150 other people from the same study: the locked holdout (non-members)."""
    return source.iloc[600:750][SAFE_COLUMNS].reset_index(drop=True)


@pytest.fixture
def large_training(source: pd.DataFrame) -> pd.DataFrame:
    """2,000 training rows: enough holdout beside it for anonymeter's attacks to be gated."""
    return source.head(2000)[SAFE_COLUMNS].reset_index(drop=True)


@pytest.fixture
def large_holdout(source: pd.DataFrame) -> pd.DataFrame:
    """600 other people (anonymeter risks are gated from 500 holdout rows)."""
    return source.iloc[2000:2600][SAFE_COLUMNS].reset_index(drop=True)


@pytest.fixture
def infos() -> list[ColumnInfo]:
    return list(SAFE_INFOS)

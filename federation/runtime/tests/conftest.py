"""Fixtures for the Flower runtime tests: three sites' encrypted splits and their encoding spec."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

SPEC: dict[str, Any] = {
    "features": [
        {"name": "age", "kind": "numeric", "lower": 18, "upper": 90},
        {"name": "bmi", "kind": "numeric", "lower": 15, "upper": 45},
        {"name": "sex", "kind": "categorical", "categories": ["F", "M"]},
        {"name": "smoker", "kind": "categorical", "categories": ["no", "yes"]},
    ],
    "target": {"name": "readmitted", "positive": [1]},
}
SITES = ("alpha", "beta", "gamma")


def clinical_table(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """A small synthetic cohort whose outcome depends on age, BMI and smoking."""
    age = rng.uniform(18, 90, n)
    bmi = rng.uniform(15, 45, n) + shift
    smoker = rng.choice(["yes", "no"], n)
    logit = -4.0 + 0.05 * age + 0.04 * bmi + 0.8 * (smoker == "yes")
    outcome = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"age": age, "bmi": bmi, "sex": rng.choice(["F", "M"], n), "smoker": smoker, "readmitted": outcome}
    )


def _store_encrypted(frame: pd.DataFrame, path: Path) -> None:
    from generation.crypto import encrypt_chunks

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    path.write_bytes(b"".join(encrypt_chunks([buffer.getvalue()])))


@pytest.fixture
def site_configs(tmp_path: Path, settings: Any) -> list[Any]:
    from federation.runtime import SiteConfig

    rng = np.random.default_rng(20240601)
    sites = []
    for index, name in enumerate(SITES):
        train_path, holdout_path = tmp_path / f"{name}-train.enc", tmp_path / f"{name}-holdout.enc"
        _store_encrypted(clinical_table(rng, 400, shift=index), train_path)
        _store_encrypted(clinical_table(rng, 150, shift=index), holdout_path)
        sites.append(
            SiteConfig(
                name=name,
                train_path=str(train_path),
                holdout_path=str(holdout_path),
                storage_env={"SYNTHGATE_DATA_KEY": settings.SYNTHGATE_DATA_KEY},
            )
        )
    return sites

"""bench/clinical_tables.py: the generated ICU table has the traits its docstring promises (the
benchmark's claims about hard tables rest on them), and its declarations cover it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.clinical_tables import declarations, diagnosis_codes, hard_icu


def test_the_table_has_block_missingness_rare_codes_and_a_rare_outcome() -> None:
    frame = hard_icu(3000, seed=2)
    gas = frame[["ph", "pco2", "po2", "hco3"]].isna().to_numpy()
    bp = frame[["sbp", "dbp"]].isna().to_numpy()
    counts = frame["diagnosis"].value_counts()

    assert (gas.all(axis=1) == gas.any(axis=1)).all() and 0.3 < gas[:, 0].mean() < 0.5
    assert (bp.all(axis=1) == bp.any(axis=1)).all() and bp[:, 0].any()
    assert 0.0 < frame["wbc"].isna().mean() < 0.05
    assert (counts < 5).sum() > len(counts) / 2 and set(counts.index) <= set(diagnosis_codes())
    assert 0.02 < frame["died_30d"].mean() < 0.1
    assert frame.groupby("died_30d")["age"].mean().diff().iloc[-1] > 5  # the outcome has signal
    assert frame["patient_no"].is_unique
    assert frame["gcs"].between(3, 15).all() and (frame["gcs"] == 15).mean() > 0.6


def test_the_declarations_cover_the_table_and_name_only_its_columns() -> None:
    frame = hard_icu(3000, seed=3)
    for change in declarations():
        column = frame[change["name"]]
        if "categories" in change:
            assert set(column.dropna().astype(str)) <= set(change["categories"]), change["name"]
        elif isinstance(change["lower"], str):  # a date or time: the intake stores ISO text
            stamps = pd.to_datetime(column, format="mixed", dayfirst=True)
            assert stamps.between(change["lower"], change["upper"]).all(), change["name"]
        else:
            assert column.dropna().between(change["lower"], change["upper"]).all(), change["name"]
            if change.get("integer"):
                assert np.allclose(column.dropna() % 1, 0), change["name"]
        assert change["nullable"] or not column.isna().any(), change["name"]

"""The anonymeter inference attack: which secret's result is reported, and what it still catches."""

from __future__ import annotations

import pandas as pd

from validation.metrics.columns import ColumnInfo
from validation.metrics.risks import _severity, anonymeter_risks
from validation.tests.planted import perturbed_copy


def test_a_release_that_copies_people_gives_their_secret_away(
    large_training: pd.DataFrame, large_holdout: pd.DataFrame, infos: list[ColumnInfo]
) -> None:
    synthetic = perturbed_copy(large_training, 2000, 11)

    attack = anonymeter_risks(large_training, synthetic, large_holdout, infos, seed=3)["inference"]

    # About 63% of training rows are in the release (drawn with replacement): their death flag is
    # read off their copy, while holdout rows get a stranger's.
    assert attack["secret"] == "death"
    assert attack["risk"] > 0.4 and attack["ci"][0] > 0.15


def test_among_equal_estimates_the_least_certain_secret_is_reported() -> None:
    # Most secrets estimate 0 (anonymeter clips negative risks); reporting the first of them hid a
    # far wider interval (flchain: one secret [0, 0.05], another [0, 0.90]).
    per_secret = {
        "chapter": {"risk": 0.0, "ci": [0.0, 0.05]},
        "death": {"risk": 0.0, "ci": [0.0, 0.90]},
        "mgus": {"risk": 0.0, "ci": [0.0, 0.40]},
    }
    assert max(per_secret, key=lambda s: _severity(per_secret[s])) == "death"
    per_secret["mgus"]["risk"] = 0.01  # a higher estimate still comes first
    assert max(per_secret, key=lambda s: _severity(per_secret[s])) == "mgus"
    assert _severity({"risk": None, "ci": None}) == (0.0, 0.0)  # a failed attack sorts last

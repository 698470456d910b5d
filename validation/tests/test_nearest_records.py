"""The one-pass nearest-record search that serves every inference secret (validation.metrics.nearest)
must be anonymeter's own attack, only faster: same guesses, same counts, on data with gaps."""

from __future__ import annotations

import warnings

import anonymeter.evaluators  # noqa: F401  (imports the kernels' module without a cycle)
import numpy as np
import pandas as pd
import pytest
from anonymeter.evaluators import InferenceEvaluator
from anonymeter.neighbors.mixed_types_kneighbors import KNNInferencePredictor

from validation.metrics.nearest import (
    NearestRecords,
    _first_of_missing,
    category_codes,
    scaled_numbers,
)

MISSING = "\x00<missing>"


def _frame(rows: int, seed: int, *, rare: bool) -> pd.DataFrame:
    """Mixed columns as validation prepares them for anonymeter: floats with blocks of gaps (a lab
    panel missing together, a column present in one row only), labels with missing as a label.
    Ages are not rounded, so no two records are equally near (anonymeter breaks ties arbitrarily)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(65, 12, rows)
    sodium = rng.normal(139, 4, rows)
    potassium = rng.normal(4.2, 0.5, rows)
    panel_missing = rng.random(rows) < 0.3
    sodium[panel_missing] = np.nan
    potassium[panel_missing] = np.nan
    albumin = rng.normal(3.5, 0.6, rows)
    albumin[rng.random(rows) < 0.2] = np.nan  # missing on its own, not with the panel
    died = np.where(rng.random(rows) < 1 / (1 + np.exp(-(age - 70) / 6)), "1", "0")
    diagnosis = rng.choice(["I21", "I50", "J18", "N17", MISSING], rows, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    once = np.full(rows, np.nan)
    if rare:
        once[0] = 1.5  # present in one attacked row and in no release row: no distance to any
    return pd.DataFrame(
        {
            "age": age,
            "sodium": sodium,
            "potassium": potassium,
            "albumin": albumin,
            "rare": once,
            "died": died,
            "diagnosis": diagnosis,
        }
    )


CONTINUOUS = {"age": True, "sodium": True, "potassium": True, "albumin": True, "rare": True}
CONTINUOUS |= {"died": False, "diagnosis": False}
# A secret missing where the release row is not still lets that row be the nearest (its own term
# is left out): albumin's gaps are its own.
SECRETS = ["died", "diagnosis", "sodium", "albumin"]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frame(300, 1, rare=True), _frame(700, 2, rare=False)


def test_every_secret_gets_anonymeters_own_guess(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    queries, syn = frames
    records = NearestRecords(syn, CONTINUOUS, SECRETS)
    for secret in SECRETS:
        aux = [c for c in syn.columns if c != secret]
        theirs = KNNInferencePredictor(data=syn, columns=aux, target_col=secret, n_jobs=1).predict(queries)
        ours = records.predictor(secret).predict(queries)
        assert ours.index.equals(queries.index)
        pd.testing.assert_series_equal(ours, theirs, check_names=False)


def test_the_compiled_pass_matches_a_plain_sum_over_the_other_columns(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    queries, syn = frames
    # Row 0 of the queries has `rare` present where no release row has it: no distance anywhere.
    found = NearestRecords(syn, CONTINUOUS, SECRETS).nearest(queries)
    assert found.shape == (len(queries), len(SECRETS))
    np.testing.assert_array_equal(found, nearest_reference(queries, syn, CONTINUOUS, SECRETS))


def test_shuffled_targets_get_their_own_rows_guesses(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    # anonymeter hands the predictor a shuffled sample of the attacked rows; the cache is by content.
    queries, syn = frames
    records = NearestRecords(syn, CONTINUOUS, SECRETS)
    whole = records.predictor("died").predict(queries)
    shuffled = queries.sample(frac=1.0, random_state=5)
    again = records.predictor("died").predict(shuffled)
    pd.testing.assert_series_equal(again, whole.loc[shuffled.index])


def test_the_evaluator_counts_the_same_successes_with_the_shared_search(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    queries, syn = frames
    ori, control = queries.iloc[:150].reset_index(drop=True), queries.iloc[150:].reset_index(drop=True)
    records = NearestRecords(syn, CONTINUOUS, SECRETS)
    for secret in SECRETS:
        aux = [c for c in syn.columns if c != secret]
        counts = []
        for model in (None, records.predictor(secret)):
            evaluator = InferenceEvaluator(
                ori=ori,
                syn=syn,
                control=control,
                aux_cols=aux,
                secret=secret,
                regression=CONTINUOUS[secret],
                n_attacks=150,
                inference_model=model,
            )
            np.random.seed(7)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                evaluator.evaluate(n_jobs=1)
            result = evaluator.results()
            counts.append((result.n_success, result.n_baseline, result.n_control))
        assert counts[0] == counts[1], secret


def nearest_reference(
    queries: pd.DataFrame, syn: pd.DataFrame, continuous: dict[str, bool], secrets: list[str]
) -> np.ndarray:
    """`NearestRecords.nearest` in plain numpy, one secret at a time: the distance
    summed directly over the secret's other columns, no subtraction, no compiled code."""
    num_names = [c for c in syn.columns if continuous[c]]
    cat_names = [c for c in syn.columns if not continuous[c]]
    s_num, q_num = scaled_numbers(syn[num_names], queries[num_names])
    s_cat, q_cat = category_codes(syn[cat_names], queries[cat_names])
    out = np.zeros((len(queries), len(secrets)), dtype=np.int64)
    for k, secret in enumerate(secrets):
        keep_num = [c for c, name in enumerate(num_names) if name != secret]
        keep_cat = [c for c, name in enumerate(cat_names) if name != secret]
        a, b = q_num[:, keep_num][:, None, :], s_num[:, keep_num][None, :, :]
        both = np.isnan(a) & np.isnan(b)
        one = np.isnan(a) ^ np.isnan(b)
        terms = np.where(both, 1.0, np.where(one, 0.0, np.abs(a - b))).sum(axis=2)
        terms = terms + (q_cat[:, keep_cat][:, None, :] != s_cat[:, keep_cat][None, :, :]).sum(axis=2)
        distance = np.where(one.any(axis=2), np.inf, terms)
        nearest = np.argmin(distance, axis=1)
        nearest[np.isinf(distance.min(axis=1))] = _first_of_missing(len(syn))
        out[:, k] = nearest
    return out

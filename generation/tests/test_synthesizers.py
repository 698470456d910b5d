"""The SDV synthesizers behind the Synthesizer interface: shape, progress, seeds, labelling, options."""

from __future__ import annotations

import io
import re

import numpy as np
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


def test_gaussian_copula_keeps_the_share_of_a_rare_value_in_a_numeric_flag() -> None:
    # A 0/1 flag stored as a number (pbc's ascites: 7% ones; edema 1.0: 4%) scores -0.09 or 1.81
    # through the empirical marginal, which the copula fits as a normal of deviation 0.48; its
    # samples were read back as if standard normal, and releases held 0 or 1 ones in 250 rows.
    rng = np.random.default_rng(11)
    rows = 2_000
    age = rng.normal(60, 10, rows)
    flag = (rng.random(rows) < 0.07).astype(int)
    grade = rng.choice([0.0, 0.5, 1.0], rows, p=[0.85, 0.11, 0.04])
    frame = pd.DataFrame({"age": age, "ascites": flag, "edema": grade})
    specs = [
        ColumnSpec("age", ColumnKind.NUMERIC, lower=0, upper=120),
        ColumnSpec("ascites", ColumnKind.NUMERIC, lower=0, upper=1, integer=True),
        ColumnSpec("edema", ColumnKind.NUMERIC, lower=0, upper=1),
    ]
    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        frame, columns=specs, rows=rows, seed=3, progress=lambda f, s: None
    )
    assert 0.045 <= (synthetic["ascites"] == 1).mean() <= 0.095
    assert 0.02 <= (synthetic["edema"] == 1.0).mean() <= 0.06
    assert 0.08 <= (synthetic["edema"] == 0.5).mean() <= 0.14


def test_gaussian_copula_is_labelled_as_not_differentially_private() -> None:
    synthesizer = synthesizer_for("gaussian_copula")

    assert isinstance(synthesizer, GaussianCopulaSynthesizer)
    assert synthesizer.is_dp is False
    assert "not differentially private" in synthesizer.label.lower()
    assert not REGISTRY["gaussian_copula"].name.startswith("dp_")


# --- CTGAN and TVAE ------------------------------------------------------------------------------

DEEP_OPTIONS = {"epochs": 3, "batch_size": 100}


def run_deep(name: str, training: pd.DataFrame, seed: int, calls: list[tuple[float, str]] | None = None):  # type: ignore[no-untyped-def]
    sink = calls if calls is not None else []
    synthesizer = synthesizer_for(name, options=DEEP_OPTIONS)
    frame = synthesizer.fit_sample(
        training, columns=SPECS, rows=ROWS, seed=seed, progress=lambda f, stage: sink.append((f, stage))
    )
    return frame


@pytest.fixture(scope="module", params=["ctgan", "tvae"])
def deep_run(request: pytest.FixtureRequest, training: pd.DataFrame) -> tuple[str, pd.DataFrame, list]:
    calls: list[tuple[float, str]] = []
    return request.param, run_deep(request.param, training, seed=11, calls=calls), calls


def test_ctgan_and_tvae_return_the_requested_rows_columns_and_categories(deep_run) -> None:  # type: ignore[no-untyped-def]
    _, frame, _ = deep_run

    assert frame.shape == (ROWS, len(NAMES))
    assert list(frame.columns) == NAMES
    assert set(frame["sex"].dropna()) <= {"F", "M"}
    assert set(frame["death"].dropna()) <= {0, 1}


def test_ctgan_and_tvae_report_progress_once_per_real_epoch(deep_run) -> None:  # type: ignore[no-untyped-def]
    _, _, calls = deep_run
    fractions = [f for f, _ in calls]
    epochs = [stage for _, stage in calls if stage.startswith("training epoch")]

    assert epochs == ["training epoch 1/3", "training epoch 2/3", "training epoch 3/3"]
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[-1] == 1.0


def test_ctgan_and_tvae_reproduce_a_run_from_its_seed_on_this_machine(deep_run, training) -> None:  # type: ignore[no-untyped-def]
    name, frame, _ = deep_run

    pd.testing.assert_frame_equal(run_deep(name, training, seed=11), frame)


@pytest.mark.parametrize("name", ["ctgan", "tvae", "par"])
def test_sdv_neural_synthesizers_are_labelled_as_not_differentially_private(name: str) -> None:
    cls = REGISTRY[name]

    assert cls.is_dp is False
    assert "not differentially private" in cls.label.lower()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ctgan", {"epochs": 301}, "between 1 and 300"),
        ("tvae", {"epochs": 0}, "between 1 and 300"),
        ("ctgan", {"batch_size": 1001}, "between 10 and 1000"),
        ("ctgan", {"batch_size": 55}, "multiple of 10"),
        ("tvae", {"epochs": "30"}, "whole number"),
        ("tvae", {"epochs": True}, "whole number"),
        ("ctgan", {"epoch": 5}, "does not accept option(s) epoch"),
        ("gaussian_copula", {"epochs": 5}, "does not accept"),
    ],
)
def test_options_outside_the_caps_are_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        synthesizer_for(name, options=options)


def test_options_within_the_caps_are_used() -> None:
    synthesizer = synthesizer_for("ctgan", options={"epochs": 300, "batch_size": 1000})

    assert (synthesizer.epochs, synthesizer.batch_size) == (300, 1000)
    assert synthesizer_for("tvae").epochs is None  # scaled to the table when fitted (sdv_deep.auto_epochs)


def test_an_epsilon_is_refused_by_a_synthesizer_that_cannot_honour_it() -> None:
    with pytest.raises(ValueError, match="not differentially private"):
        synthesizer_for("ctgan", epsilon=1)


def test_a_dp_synthesizer_needs_an_epsilon() -> None:
    with pytest.raises(ValueError, match="needs an epsilon"):
        synthesizer_for("dp_copula")


def test_unknown_synthesizer_names_are_a_key_error() -> None:
    with pytest.raises(KeyError):
        synthesizer_for("nope")


# --- PAR on a longitudinal table -----------------------------------------------------------------

PAR_SPECS = [
    ColumnSpec("patient", ColumnKind.IDENTIFIER),
    ColumnSpec("day", ColumnKind.NUMERIC),
    ColumnSpec("sex", ColumnKind.CATEGORICAL),
    ColumnSpec("bilirubin", ColumnKind.NUMERIC),
]
PAR_OPTIONS = {"entity_column": "patient", "sequence_index": "day", "context_columns": ["sex"], "epochs": 4}
PAR_ROWS = 150


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    """Follow-up visits: 50 patients, 3-8 visits each, 30-120 days apart, a drifting lab value."""
    rng = np.random.default_rng(5)
    records = []
    for patient in range(50):
        sex, day, value = rng.choice(["F", "M"]), 0, rng.uniform(0.5, 3.0)
        for _ in range(rng.integers(3, 9)):
            records.append(
                {"patient": f"P{patient:03d}", "day": day, "sex": sex, "bilirubin": round(value, 2)}
            )
            day += int(rng.integers(30, 121))
            value *= rng.uniform(0.9, 1.3)
    return pd.DataFrame(records)


def run_par(visits: pd.DataFrame, seed: int, calls: list | None = None) -> pd.DataFrame:
    sink = calls if calls is not None else []
    return synthesizer_for("par", options=PAR_OPTIONS).fit_sample(
        visits, columns=PAR_SPECS, rows=PAR_ROWS, seed=seed, progress=lambda f, s: sink.append((f, s))
    )


@pytest.fixture(scope="module")
def par_run(visits: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    calls: list[tuple[float, str]] = []
    return run_par(visits, seed=3, calls=calls), calls


def test_par_returns_the_requested_rows_in_several_sequences(par_run) -> None:  # type: ignore[no-untyped-def]
    frame, _ = par_run

    assert len(frame) == PAR_ROWS
    assert list(frame.columns) == [s.name for s in PAR_SPECS]
    assert frame["patient"].nunique() > 5


def test_par_sequences_are_ordered_per_entity_with_gaps_seen_in_training(par_run, visits) -> None:  # type: ignore[no-untyped-def]
    frame, _ = par_run
    real_gaps = visits.groupby("patient")["day"].diff().dropna()
    gaps = frame.groupby("patient", sort=False)["day"].diff().dropna()

    assert len(gaps) > PAR_ROWS / 2
    assert (gaps > 0).all()  # strictly increasing visit days within each synthetic patient
    assert gaps.min() >= real_gaps.min() - 1e-9
    assert gaps.max() <= real_gaps.max() + 1e-9


def test_par_keeps_context_columns_constant_within_an_entity(par_run) -> None:  # type: ignore[no-untyped-def]
    frame, _ = par_run

    assert (frame.groupby("patient")["sex"].nunique() == 1).all()
    assert set(frame["sex"]) <= {"F", "M"}


def test_par_entity_ids_are_new_not_source_ids(par_run, visits) -> None:  # type: ignore[no-untyped-def]
    frame, _ = par_run

    assert not set(frame["patient"].astype(str)) & set(visits["patient"])


def test_par_reports_each_epoch_and_reproduces_from_its_seed(par_run, visits) -> None:  # type: ignore[no-untyped-def]
    frame, calls = par_run
    epochs = [stage for _, stage in calls if stage.startswith("training epoch")]

    assert epochs == [f"training epoch {k}/4" for k in range(1, 5)]
    assert calls[-1][0] == 1.0
    pd.testing.assert_frame_equal(run_par(visits, seed=3), frame)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sequence_index": "day"}, "'entity_column' is required"),
        ({"entity_column": "patient"}, "'sequence_index' is required"),
        ({"entity_column": "patient", "sequence_index": "patient"}, "different columns"),
        ({"entity_column": "patient", "sequence_index": "day", "epochs": 500}, "between 1 and 300"),
    ],
)
def test_par_refuses_missing_or_inconsistent_sequence_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        synthesizer_for("par", options=options)


def test_par_refuses_a_sequence_index_that_is_not_numeric_or_a_date(visits: pd.DataFrame) -> None:
    synthesizer = synthesizer_for("par", options={"entity_column": "patient", "sequence_index": "sex"})

    with pytest.raises(ValueError, match="must be numeric or a date"):
        synthesizer.fit_sample(visits, columns=PAR_SPECS, rows=10, seed=1, progress=lambda f, s: None)


def test_tvae_draws_each_category_from_its_decoder_instead_of_its_most_likely_value() -> None:
    # ctgan's TVAE.sample keeps the most likely category of every latent point, so a value that is
    # never the likeliest is never generated: TVAE releases of the public Framingham extract (15%
    # ten-year CHD) held no CHD at all. Drawn from the decoder's softmax, the share is kept.
    import torch

    from generation.synthesizers.sdv_deep import _drawn_outputs

    class Span:
        def __init__(self, dim: int, activation_fn: str) -> None:
            self.dim, self.activation_fn = dim, activation_fn

    torch.manual_seed(0)
    raw = torch.zeros(20_000, 3)
    raw[:, 0] = 0.5
    raw[:, 2] = float(np.log(0.15 / 0.85))  # the rare category: p = 0.15 against the common one
    drawn = _drawn_outputs(raw, [Span(1, "tanh"), Span(2, "softmax")]).numpy()

    assert np.allclose(drawn[:, 0], np.tanh(0.5))
    assert set(np.unique(drawn[:, 1:].sum(axis=1))) == {1.0}  # one-hot
    assert 0.14 < drawn[:, 2].mean() < 0.16


def _rare_outcome_table(
    rows: int, share: float, seed: int, *, outcome: str = "died", noise: float = 1.0
) -> pd.DataFrame:
    """Age, sex and a 0/1 outcome held by `share` of the rows, rising with age."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, rows)
    risk = (age - 60) / 10 + rng.normal(0, noise, rows)
    return pd.DataFrame(
        {
            "age": age.round(),
            "sex": rng.choice(["F", "M"], rows),
            outcome: (risk > np.quantile(risk, 1 - share)).astype(int),
        }
    )


def _rare_outcome_specs(outcome: str = "died") -> list[ColumnSpec]:
    return [
        ColumnSpec("age", ColumnKind.NUMERIC),
        ColumnSpec("sex", ColumnKind.CATEGORICAL),
        ColumnSpec(outcome, ColumnKind.BOOLEAN, outcome=True),
    ]


def test_tvae_releases_keep_a_rare_outcome() -> None:
    frame = _rare_outcome_table(800, 0.15, seed=3, outcome="chd", noise=1.5)
    specs = _rare_outcome_specs("chd")

    release = synthesizer_for("tvae", options={"epochs": 15, "batch_size": 200}).fit_sample(
        frame, columns=specs, rows=1000, seed=5, progress=lambda f, stage: None
    )

    share = release["chd"].mean()
    assert 0.07 < share < 0.25, share  # 0.15 in training; the most-likely-value sampler gave ~0
    by_outcome = release.groupby("chd")["age"].mean()
    assert by_outcome[1] > by_outcome[0]  # the outcome still rises with age


def test_ctgan_training_conditions_half_of_each_batch_on_the_declared_outcome() -> None:
    # ctgan picks the conditioning column uniformly among the discrete ones: here half the rows.
    # With the outcome declared, half of the rest go to it too, and the real rows the discriminator
    # sees beside each condition hold the class the condition names.
    from types import SimpleNamespace

    from ctgan.data_sampler import DataSampler
    from ctgan.data_transformer import DataTransformer

    from generation.synthesizers.sdv_deep import emphasise_outcome, outcome_layout

    frame = _rare_outcome_table(400, 0.06, seed=2).astype({"died": str})
    transformer = DataTransformer()
    transformer.fit(frame, discrete_columns=["sex", "died"])
    data = transformer.transform(frame)
    sampler = DataSampler(data, transformer.output_info_list, True)
    outcome_id, start, width = outcome_layout(transformer, "died")  # type: ignore[misc]
    np.random.seed(0)
    plain = sampler.sample_condvec(20_000)[1][:, outcome_id].mean()

    emphasise_outcome(SimpleNamespace(_transformer=transformer, _outcome="died"), sampler)
    cond, mask, column, category = sampler.sample_condvec(20_000)

    assert 0.47 < plain < 0.53
    assert 0.72 < mask[:, outcome_id].mean() < 0.78
    assert (mask.sum(axis=1) == 1).all() and (cond.sum(axis=1) == 1).all()
    on_outcome = column == outcome_id
    assert (mask[on_outcome, outcome_id] == 1).all()
    real = sampler.sample_data(data, int(on_outcome.sum()), column[on_outcome], category[on_outcome])
    assert (real[:, start : start + width].argmax(axis=1) == category[on_outcome]).all()
    assert outcome_layout(transformer, "age") is None  # a continuous column is never conditioned on


def test_ctgan_releases_keep_a_rare_outcome_share_and_its_relation() -> None:
    # ctgan's own sampler conditions rows on categories drawn by log frequency: a 6% outcome came
    # out at about 20% here. Conditioned on classes drawn with their training share, it stays 6%.
    frame = _rare_outcome_table(1000, 0.06, seed=3)
    specs = _rare_outcome_specs()

    release = synthesizer_for("ctgan", options={"epochs": 60, "batch_size": 100}).fit_sample(
        frame, columns=specs, rows=2000, seed=5, progress=lambda f, stage: None
    )

    share = release["died"].mean()
    assert 0.04 < share < 0.08, share
    by_outcome = release.groupby("died")["age"].mean()
    assert by_outcome[1] > by_outcome[0] + 5, by_outcome  # 18 years apart in training


def test_ctgan_samples_conditions_with_the_categories_true_shares() -> None:
    # Without a declared outcome the release is sampled by ctgan's sample_original_condvec, which
    # drew categories by log frequency: a rare value was conditioned on far above its share.
    from types import SimpleNamespace

    from ctgan.data_sampler import DataSampler
    from ctgan.data_transformer import DataTransformer

    from generation.synthesizers.sdv_deep import emphasise_outcome, outcome_layout

    frame = _rare_outcome_table(400, 0.06, seed=2).astype({"died": str})
    transformer = DataTransformer()
    transformer.fit(frame, discrete_columns=["sex", "died"])
    sampler = DataSampler(transformer.transform(frame), transformer.output_info_list, True)
    outcome_id = outcome_layout(transformer, "died")[0]  # type: ignore[index]
    start = sampler._discrete_column_cond_st[outcome_id]
    died = start + transformer.convert_column_name_value_to_id("died", "1")["value_id"]

    def died_share_of_outcome_conditions(cond: np.ndarray) -> float:
        on_outcome = cond[:, start : start + 2].sum(axis=1) == 1
        return float(cond[on_outcome, died].mean())

    np.random.seed(0)
    before = died_share_of_outcome_conditions(sampler.sample_original_condvec(20_000))
    emphasise_outcome(SimpleNamespace(_transformer=transformer, _outcome=None), sampler)
    after = sampler.sample_original_condvec(20_000)

    assert before > 0.3  # log(24 + 1) / (log(24 + 1) + log(376 + 1))
    assert 0.05 < died_share_of_outcome_conditions(after) < 0.07
    assert (after.sum(axis=1) == 1).all()


def test_ctgan_conditioned_on_an_outcome_reproduces_a_run_from_its_seed(training: pd.DataFrame) -> None:
    # The outcome's sampled classes come from numpy's generator, which ctgan's random_state seeds
    # for sampling as it does torch's; a declared outcome must not break "same seed, same frame".
    specs = [ColumnSpec(s.name, s.kind, outcome=s.name == "death") for s in SPECS]

    def run(seed: int) -> pd.DataFrame:
        synthesizer = synthesizer_for("ctgan", options=DEEP_OPTIONS)
        return synthesizer.fit_sample(
            training, columns=specs, rows=ROWS, seed=seed, progress=lambda f, s: None
        )

    first = run(11)

    pd.testing.assert_frame_equal(run(11), first)
    assert not run(12).equals(first)

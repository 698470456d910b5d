"""SDV's CTGAN and TVAE (sdv==2.0.0 over ctgan==0.12.1) on CPU, with per-epoch progress.

Not differentially private: both networks train on the raw rows and can memorise them.

Progress: SDV builds the ctgan model inside its private `_fit`, so the SDV subclasses below override
`_fit` with the same few lines (validate dtypes, find discrete columns, build, fit) and build a
model class that carries the `EpochReporting` hook instead. Everything else (metadata, RDT
transformers, min/max and rounding enforcement, sampling) is SDV's own code path.

Reproducibility: the global numpy/torch generators are seeded before fitting (ctgan draws from
them while training) and the model's sampling generators after. On CPU with the same torch thread
count this reproduces a run bit for bit (asserted in the tests); across machines with different
CPU instruction sets or thread counts, float reductions may differ in the last bits and the frames
then differ. SDV documents only "same seed, same machine".
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.epochs import (
    EpochFn,
    EpochReporting,
    StageFn,
    StopTraining,
    epoch_progress,
    hooked_attribute,
)
from generation.synthesizers.options import Options, checked_options, int_option
from generation.synthesizers.sdv_backend import (
    TABLE,
    build_sdv_metadata,
    finish_sample,
    prepare_training,
    sample_in_chunks,
    seed_everything,
)

# Caps are the hard ceiling whatever policy asks for.
MAX_EPOCHS = 300
MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_SIZE = 500
MIN_AUTO_BATCH_SIZE = 50
CTGAN_PAC = 10  # ctgan's default; its batch size must be a multiple of it
# Epochs scaled to the table: enough optimizer steps for the table's width. With a fixed 30 epochs
# a 400-row table got 30 steps (one batch per epoch), an untrained network whose release ranked
# risk backwards (TSTR AUC below 0.5); see docs/synthesizers.md.
BASE_STEPS = 1000
STEPS_PER_COLUMN = 50
MIN_AUTO_EPOCHS = 30
# Wall-clock budget for the whole fit and sample, unless policy passes `time_budget_s`.
DEFAULT_TIME_BUDGET_S = 900
MAX_TIME_BUDGET_S = 4 * 3600
SAMPLE_SHARE = 0.1  # training stops when this share of the budget is left, for sampling

FIT_START, TRANSFORMED, FIT_END = 0.02, 0.15, 0.9  # progress: transformers, epochs, sampling


def auto_batch_size(rows: int, multiple: int) -> int:
    """About ten batches per epoch on small tables, ctgan's 500 on large ones."""
    size = max(MIN_AUTO_BATCH_SIZE, min(DEFAULT_BATCH_SIZE, rows // 10))
    return max(multiple, size // multiple * multiple)


def auto_epochs(rows: int, columns: int, batch_size: int) -> int:
    """Epochs giving BASE_STEPS + STEPS_PER_COLUMN x columns optimizer steps, within the caps."""
    steps_per_epoch = max(rows // batch_size, 1)
    wanted = BASE_STEPS + STEPS_PER_COLUMN * columns
    return max(MIN_AUTO_EPOCHS, min(MAX_EPOCHS, -(-wanted // steps_per_epoch)))


@functools.cache
def _sdv_classes() -> tuple[type, type]:
    """The SDV subclasses, defined once on first use so importing the registry does not import
    torch. (Being local classes, fitted instances cannot be pickled; nothing here pickles them.)"""
    from ctgan import CTGAN, TVAE
    from ctgan.synthesizers.base import random_state
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer
    from sdv.single_table.ctgan import _validate_no_category_dtype
    from sdv.single_table.utils import detect_discrete_columns

    @random_state  # type: ignore[untyped-decorator]
    def sample_by_outcome(model: Any, samples: int) -> Any:
        return sample_ctgan_by_outcome(model, samples)

    class ReportingCTGAN(EpochReporting, CTGAN):  # type: ignore[misc]
        def condition_on(self, outcome: str | None) -> None:
            """Condition training and sampling on this discrete column (see emphasise_outcome)."""
            self.__dict__["_outcome"] = outcome

        # CTGAN.fit builds its DataSampler and assigns it here before the first epoch.
        _data_sampler = hooked_attribute("_data_sampler", emphasise_outcome)

        def sample(self, n: int, condition_column: str | None = None, condition_value: Any = None) -> Any:
            if condition_column is None and self.__dict__.get("_outcome_layout") is not None:
                return sample_by_outcome(self, n)
            return super().sample(n, condition_column, condition_value)

    class ReportingTVAE(EpochReporting, TVAE):  # type: ignore[misc]
        @random_state  # type: ignore[untyped-decorator]
        def sample(self, samples: int) -> Any:
            return sample_tvae(self, samples)

    def fit_reporting(synth: Any, model_class: type, processed: pd.DataFrame) -> None:
        # Mirrors CTGANSynthesizer._fit / TVAESynthesizer._fit of sdv==2.0.0.
        _validate_no_category_dtype(processed)
        transformers = synth._data_processor._hyper_transformer.field_transformers
        discrete_columns = detect_discrete_columns(synth.metadata, processed, transformers)
        synth._model = model_class(**synth._model_kwargs)
        if hasattr(synth._model, "condition_on"):
            synth._model.condition_on(synth.outcome if synth.outcome in discrete_columns else None)
        synth._model.report_epochs_to(synth.on_epoch)
        synth._model.report_stages_to(synth.on_stage)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Attempting to run cuBLAS.*")
                synth._model.fit(processed, discrete_columns=discrete_columns)
        except StopTraining:
            pass  # the time budget is spent: the model is trained up to the last finished epoch
        finally:
            # A fitted model must not keep a job's callbacks.
            synth._model.report_epochs_to(None)
            synth._model.report_stages_to(None)

    def preprocess_reporting(synth: Any, preprocess: Any, data: Any) -> Any:
        # SDV's own RDT transformers run first (types, rounding, min/max), before ctgan's.
        if synth.on_stage is not None:
            synth.on_stage(0.0, "preparing columns")
        return preprocess(data)

    class ProgressCTGAN(CTGANSynthesizer):  # type: ignore[misc]
        on_epoch: EpochFn | None = None
        on_stage: StageFn | None = None
        outcome: str | None = None  # the declared outcome, when requested

        def preprocess(self, data: Any) -> Any:
            return preprocess_reporting(self, super().preprocess, data)

        def _fit(self, processed_data: pd.DataFrame) -> None:
            fit_reporting(self, ReportingCTGAN, processed_data)

    class ProgressTVAE(TVAESynthesizer):  # type: ignore[misc]
        on_epoch: EpochFn | None = None
        on_stage: StageFn | None = None
        outcome: str | None = None  # TVAE has no conditional vector: unused

        def preprocess(self, data: Any) -> Any:
            return preprocess_reporting(self, super().preprocess, data)

        def _fit(self, processed_data: pd.DataFrame) -> None:
            fit_reporting(self, ReportingTVAE, processed_data)

    return ProgressCTGAN, ProgressTVAE


def sample_tvae(model: Any, samples: int) -> Any:
    """ctgan==0.12.1's TVAE.sample, except that every categorical output (a discrete column's value,
    a continuous column's mixture component) is DRAWN from the decoder's distribution instead of
    taken at its most likely value.

    TVAE is trained with a cross-entropy loss on those outputs, so the decoder's softmax is its model
    of p(category | latent); ctgan's sample keeps only the argmax, and every category that is never
    the most likely one for any latent point is never generated. A rare outcome collapsed that way:
    on the public Framingham extract (15% ten-year CHD) TVAE releases trained a model at chance on
    real rows (TSTR AUC 0.500), and on SUPPORT2 the 285-cell missingness-pattern column came out
    with its common cells only (raw pattern similarity 0.43 against real holdout rows' 0.62).
    Continuous values are drawn around the decoder's mean with its learned sigmas, as in ctgan.
    Draws come from torch's global generator, which `random_state` seeds like ctgan's own sample.
    """
    import torch

    model.decoder.eval()
    spans = [span for column in model.transformer.output_info_list for span in column]
    steps = samples // model.batch_size + 1
    data = []
    with torch.no_grad():
        for _ in range(steps):
            mean = torch.zeros(model.batch_size, model.embedding_dim)
            noise = torch.normal(mean=mean, std=mean + 1).to(model._device)
            fake, sigmas = model.decoder(noise)
            data.append(_drawn_outputs(fake, spans).cpu().numpy())
    rows = np.concatenate(data, axis=0)[:samples]
    return model.transformer.inverse_transform(rows, sigmas.detach().cpu().numpy())


def _drawn_outputs(raw: Any, spans: list[Any]) -> Any:
    """The decoder's raw outputs with tanh on value spans and a one-hot draw on softmax spans."""
    import torch

    out = torch.tanh(raw)
    start = 0
    for span in spans:
        end = start + span.dim
        if span.activation_fn == "softmax":
            probabilities = torch.softmax(raw[:, start:end], dim=1)
            drawn = torch.multinomial(probabilities, 1).squeeze(1)
            out[:, start:end] = torch.nn.functional.one_hot(drawn, span.dim).to(out.dtype)
        start = end
    if start != raw.shape[1]:
        raise RuntimeError("TVAE's output layout differs from ctgan==0.12.1's; sampling refused.")
    return out


# CTGAN conditioned on the declared outcome. ctgan's training-by-sampling conditions each row of a
# batch on one discrete column picked uniformly (a 0/1 outcome among six discrete columns: a sixth of
# the rows), and its sampler conditions generated rows on categories drawn by the log of their
# frequency, so a 5.7% outcome came out at 12%. On a generated 5,000-row ICU table
# (bench/clinical_tables.py) three seeds of this CTGAN at 100 epochs trained models scoring real rows
# at AUC 0.51, 0.61 and 0.69 (plain ctgan: 0.69, 0.32, 0.61; 0.80 trained on the real rows), the death
# rate doubled and age's correlation with death (0.20) came out between -0.09 and 0.08. Conditioning
# half of each batch on the outcome and every sampled row on an outcome class drawn with its training
# share gave 0.845, 0.845 and 0.840 (docs/synthesizers.md, docs/benchmarks.md).
OUTCOME_CONDITION_SHARE = 0.5


def outcome_layout(transformer: Any, outcome: str | None) -> tuple[int, int, int] | None:
    """(its index among the discrete columns, start of its one-hot in a transformed row, width) of
    the outcome in ctgan's DataTransformer; None when it is not one of ctgan's discrete columns."""
    if outcome is None or transformer is None:
        return None
    discrete = start = 0
    for info, spans in zip(
        transformer._column_transform_info_list, transformer.output_info_list, strict=True
    ):
        width = sum(span.dim for span in spans)
        if info.column_name == outcome:
            return (discrete, start, width) if info.column_type == "discrete" else None
        discrete += info.column_type == "discrete"
        start += width
    return None


def emphasise_outcome(model: Any, sampler: Any) -> None:
    """Make `sampler` (ctgan's DataSampler, just built by CTGAN.fit) draw sampling conditions with
    the categories' true shares (_condvec_by_share) and, with a declared outcome, condition
    OUTCOME_CONDITION_SHARE of each training batch's rows on the outcome, its classes chosen as
    ctgan chooses any column's (log frequency); the rest of the rows keep ctgan's own choice. The
    generator's conditional loss and the discriminator's (row, condition) pairs then see
    p(row | outcome class) about three times as often, so the features' relation to the outcome is
    what it learns best."""
    layout = (
        outcome_layout(model._transformer, model.__dict__.get("_outcome")) if sampler is not None else None
    )
    model.__dict__["_outcome_layout"] = layout
    if sampler is not None:
        sampler.sample_original_condvec = functools.partial(_condvec_by_share, sampler)
    if layout is not None:
        sampler.sample_condvec = functools.partial(
            _outcome_condvec, sampler, sampler.sample_condvec, layout[0]
        )


def _condvec_by_share(sampler: Any, batch: int) -> Any:
    """The condition of rows sampled without a declared outcome: a discrete column picked uniformly,
    then a category drawn with its share of the training rows. ctgan's `sample_original_condvec`
    draws categories by the log of their frequency (its training rule), so every generated row
    conditioned on a column is biased toward its rare categories (sdv-dev/CTGAN#16): a 6% value was
    drawn for 35% of the rows conditioned on its column. With true shares, a generator that learnt p(row | category) samples p(row)."""
    if sampler._n_discrete_columns == 0:
        return None
    column = np.random.choice(sampler._n_discrete_columns, batch)
    cond = np.zeros((batch, sampler.dim_cond_vec()), dtype="float32")
    for discrete in np.unique(column):
        rows = np.flatnonzero(column == discrete)
        shares = _training_shares(sampler, discrete)
        category = np.random.choice(len(shares), size=len(rows), p=shares)
        cond[rows, sampler._discrete_column_cond_st[discrete] + category] = 1
    return cond


def _training_shares(sampler: Any, discrete: int) -> np.ndarray:
    """Each category's share of the training rows in ctgan's `discrete`-th discrete column."""
    counts = np.array([len(ids) for ids in sampler._rid_by_cat_cols[discrete]], dtype=float)
    return counts / counts.sum()


def _outcome_condvec(sampler: Any, original: Any, outcome_id: int, batch: int) -> Any:
    drawn = original(batch)
    if drawn is None:
        return None
    cond, mask, column, category = drawn
    chosen = np.flatnonzero(np.random.rand(batch) < OUTCOME_CONDITION_SHARE)
    column[chosen] = outcome_id
    category[chosen] = sampler._random_choice_prob_index(column[chosen])
    cond[chosen] = 0
    mask[chosen] = 0
    cond[chosen, sampler._discrete_column_cond_st[outcome_id] + category[chosen]] = 1
    mask[chosen, outcome_id] = 1
    return cond, mask, column, category


def sample_ctgan_by_outcome(model: Any, samples: int) -> Any:
    """ctgan==0.12.1's CTGAN.sample, except that every row is conditioned on an outcome class drawn
    with its share of the training rows (ctgan's own draws categories of any column by log
    frequency), and the row keeps the class it was conditioned on (the generator's own one-hot draw
    of the outcome can disagree with its condition; the rest of the row was generated for the
    condition). ctgan's `sample(condition_column=...)` cannot serve: its condition vector is indexed
    from `_discrete_column_matrix_st`, which ctgan 0.12.1 leaves at zero, so it conditions on the
    first discrete column whatever the name given (sdv-dev/CTGAN#169; the fix, #236, was not merged)."""
    import torch

    outcome_id, start, width = model.__dict__["_outcome_layout"]
    sampler = model._data_sampler
    steps = samples // model._batch_size + 1
    classes = np.random.choice(width, size=steps * model._batch_size, p=_training_shares(sampler, outcome_id))
    cond = np.zeros((len(classes), sampler.dim_cond_vec()), dtype="float32")
    cond[np.arange(len(classes)), sampler._discrete_column_cond_st[outcome_id] + classes] = 1
    chosen = np.eye(width, dtype="float32")[classes]
    data = []
    with torch.no_grad():
        for step in range(steps):
            rows = slice(step * model._batch_size, (step + 1) * model._batch_size)
            mean = torch.zeros(model._batch_size, model._embedding_dim)
            noise = torch.normal(mean=mean, std=mean + 1).to(model._device)
            fake = model._generator(torch.cat([noise, torch.from_numpy(cond[rows]).to(model._device)], dim=1))
            activated = model._apply_activate(fake).cpu().numpy()
            activated[:, start : start + width] = chosen[rows]
            data.append(activated)
    return model._transformer.inverse_transform(np.concatenate(data, axis=0)[:samples])


class _DeepSDVSynthesizer:
    """Shared fit/sample for the two neural SDV synthesizers.

    Options: `epochs` and `batch_size` (absent: scaled to the table, see auto_epochs and
    auto_batch_size), `time_budget_s` (wall-clock budget of the whole job step; policy passes the
    tier's `synthesis_time_budget_s`; training stops after the epoch that reaches it, keeping
    SAMPLE_SHARE of it for sampling).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    is_dp: ClassVar[bool] = False
    batch_multiple: ClassVar[int] = 1
    takes_time_budget: ClassVar[bool] = True

    def __init__(self, options: Options | None = None) -> None:
        given = checked_options(self.name, options, allowed=("epochs", "batch_size", "time_budget_s"))
        # Absent: scaled to the table (decided in fit_sample, when the table's size is known).
        self.epochs = (
            int_option(given, "epochs", default=1, low=1, high=MAX_EPOCHS) if "epochs" in given else None
        )
        batch = None
        if "batch_size" in given:
            batch = int_option(given, "batch_size", default=0, low=self.batch_multiple, high=MAX_BATCH_SIZE)
            if batch % self.batch_multiple:
                raise ValueError(
                    f"Option 'batch_size' must be a multiple of {self.batch_multiple} for {self.name}."
                )
        self.batch_size = batch
        self.time_budget_s = int_option(
            given, "time_budget_s", default=DEFAULT_TIME_BUDGET_S, low=10, high=MAX_TIME_BUDGET_S
        )
        self.epochs_run: int | None = None  # after a fit: epochs actually trained

    def sdv_synthesizer(self, metadata: Any, *, epochs: int, batch_size: int) -> Any:
        raise NotImplementedError

    def plan(self, rows: int, columns: int) -> tuple[int, int]:
        """(epochs, batch_size) for a table: the options when given, else scaled to it."""
        batch = self.batch_size or auto_batch_size(rows, self.batch_multiple)
        return self.epochs or auto_epochs(rows, columns, batch), batch

    def fit_sample(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        rows: int,
        seed: int,
        progress: ProgressFn,
    ) -> pd.DataFrame:
        started = time.monotonic()
        seed_everything(seed)
        training, patterns = prepare_training(frame, columns, seed=seed)
        epochs, batch_size = self.plan(len(training), len(training.columns))
        synth = self.sdv_synthesizer(
            build_sdv_metadata(columns, pattern=patterns.active), epochs=epochs, batch_size=batch_size
        )
        synth.on_epoch = self._epoch_reporter(progress, epochs, started)
        synth.outcome = next((c.name for c in columns if c.outcome), None)
        # SDV's RDT transformers, then ctgan's per-column Gaussian mixtures, are fitted before
        # epoch 1; on large tables that is most of the time, so each column is reported.
        synth.on_stage = lambda fraction, stage: progress(
            FIT_START + (TRANSFORMED - FIT_START) * fraction, stage
        )
        progress(FIT_START, "fitting transformers")
        synth.fit({TABLE: training})
        synth.on_epoch = synth.on_stage = None
        # As for the Gaussian copula: without this SDV samples from a fixed seed (private API of
        # the pinned sdv==2.0.0, covered by the seed tests).
        synth._set_random_state(seed)
        progress(FIT_END, "sampling")
        synthetic = sample_in_chunks(synth, rows, progress, start=FIT_END)
        return finish_sample(synthetic, frame, columns, patterns)

    def _epoch_reporter(self, progress: ProgressFn, epochs: int, started: float) -> EpochFn:
        report = epoch_progress(progress, epochs=epochs, start=TRANSFORMED, end=FIT_END)
        deadline = started + self.time_budget_s * (1 - SAMPLE_SHARE)

        def on_epoch(done: int) -> None:
            self.epochs_run = done
            report(done)
            if done < epochs and time.monotonic() >= deadline:
                progress(FIT_END, f"time budget reached after epoch {done}/{epochs}")
                raise StopTraining

        return on_epoch


class CTGANSynthesizer(_DeepSDVSynthesizer):
    name: ClassVar[str] = "ctgan"
    label: ClassVar[str] = "CTGAN (SDV) - not differentially private"
    batch_multiple: ClassVar[int] = CTGAN_PAC

    def sdv_synthesizer(self, metadata: Any, *, epochs: int, batch_size: int) -> Any:
        ctgan_class, _ = _sdv_classes()
        return ctgan_class(metadata, epochs=epochs, batch_size=batch_size, enable_gpu=False)


class TVAESynthesizer(_DeepSDVSynthesizer):
    name: ClassVar[str] = "tvae"
    label: ClassVar[str] = "TVAE (SDV) - not differentially private"

    def sdv_synthesizer(self, metadata: Any, *, epochs: int, batch_size: int) -> Any:
        _, tvae_class = _sdv_classes()
        return tvae_class(metadata, epochs=epochs, batch_size=batch_size, enable_gpu=False)

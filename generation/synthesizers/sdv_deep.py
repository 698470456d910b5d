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
import warnings
from typing import Any, ClassVar

import pandas as pd

from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.epochs import EpochFn, EpochReporting, epoch_progress
from generation.synthesizers.options import Options, checked_options, int_option
from generation.synthesizers.sdv_backend import TABLE, build_metadata, sample_in_chunks, seed_everything

# Caps are the hard ceiling whatever policy asks for; defaults are small enough for CI.
MAX_EPOCHS = 300
DEFAULT_EPOCHS = 30
MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_SIZE = 500
CTGAN_PAC = 10  # ctgan's default; its batch size must be a multiple of it

FIT_START, FIT_END = 0.05, 0.9  # share of this synthesizer's progress spent on training epochs


@functools.cache
def _sdv_classes() -> tuple[type, type]:
    """The SDV subclasses, defined once on first use so importing the registry does not import
    torch. (Being local classes, fitted instances cannot be pickled; nothing here pickles them.)"""
    from ctgan import CTGAN, TVAE
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer
    from sdv.single_table.ctgan import _validate_no_category_dtype
    from sdv.single_table.utils import detect_discrete_columns

    class ReportingCTGAN(EpochReporting, CTGAN):  # type: ignore[misc]
        pass

    class ReportingTVAE(EpochReporting, TVAE):  # type: ignore[misc]
        pass

    def fit_reporting(synth: Any, model_class: type, processed: pd.DataFrame) -> None:
        # Mirrors CTGANSynthesizer._fit / TVAESynthesizer._fit of sdv==2.0.0.
        _validate_no_category_dtype(processed)
        transformers = synth._data_processor._hyper_transformer.field_transformers
        discrete_columns = detect_discrete_columns(synth.metadata, processed, transformers)
        synth._model = model_class(**synth._model_kwargs)
        synth._model.report_epochs_to(synth.on_epoch)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Attempting to run cuBLAS.*")
                synth._model.fit(processed, discrete_columns=discrete_columns)
        finally:
            synth._model.report_epochs_to(None)  # a fitted model must not keep a job's callback

    class ProgressCTGAN(CTGANSynthesizer):  # type: ignore[misc]
        on_epoch: EpochFn | None = None

        def _fit(self, processed_data: pd.DataFrame) -> None:
            fit_reporting(self, ReportingCTGAN, processed_data)

    class ProgressTVAE(TVAESynthesizer):  # type: ignore[misc]
        on_epoch: EpochFn | None = None

        def _fit(self, processed_data: pd.DataFrame) -> None:
            fit_reporting(self, ReportingTVAE, processed_data)

    return ProgressCTGAN, ProgressTVAE


class _DeepSDVSynthesizer:
    """Shared fit/sample for the two neural SDV synthesizers."""

    name: ClassVar[str]
    label: ClassVar[str]
    is_dp: ClassVar[bool] = False
    batch_multiple: ClassVar[int] = 1

    def __init__(self, options: Options | None = None) -> None:
        given = checked_options(self.name, options, allowed=("epochs", "batch_size"))
        self.epochs = int_option(given, "epochs", default=DEFAULT_EPOCHS, low=1, high=MAX_EPOCHS)
        self.batch_size = int_option(
            given, "batch_size", default=DEFAULT_BATCH_SIZE, low=self.batch_multiple, high=MAX_BATCH_SIZE
        )
        if self.batch_size % self.batch_multiple:
            raise ValueError(
                f"Option 'batch_size' must be a multiple of {self.batch_multiple} for {self.name}."
            )

    def sdv_synthesizer(self, metadata: Any) -> Any:
        raise NotImplementedError

    def fit_sample(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        rows: int,
        seed: int,
        progress: ProgressFn,
    ) -> pd.DataFrame:
        seed_everything(seed)
        synth = self.sdv_synthesizer(build_metadata(columns))
        synth.on_epoch = epoch_progress(progress, epochs=self.epochs, start=FIT_START, end=FIT_END)
        # The RDT transformers and ctgan's per-column Gaussian mixtures are fitted before epoch 1;
        # on large tables that is a long stretch with no epoch to report.
        progress(0.02, "fitting transformers")
        synth.fit({TABLE: frame[[c.name for c in columns]]})
        synth.on_epoch = None
        # As for the Gaussian copula: without this SDV samples from a fixed seed (private API of
        # the pinned sdv==2.0.0, covered by the seed tests).
        synth._set_random_state(seed)
        progress(FIT_END, "sampling")
        return sample_in_chunks(synth, rows, progress, start=FIT_END)


class CTGANSynthesizer(_DeepSDVSynthesizer):
    name: ClassVar[str] = "ctgan"
    label: ClassVar[str] = "CTGAN (SDV) - not differentially private"
    batch_multiple: ClassVar[int] = CTGAN_PAC

    def sdv_synthesizer(self, metadata: Any) -> Any:
        ctgan_class, _ = _sdv_classes()
        return ctgan_class(metadata, epochs=self.epochs, batch_size=self.batch_size, enable_gpu=False)


class TVAESynthesizer(_DeepSDVSynthesizer):
    name: ClassVar[str] = "tvae"
    label: ClassVar[str] = "TVAE (SDV) - not differentially private"

    def sdv_synthesizer(self, metadata: Any) -> Any:
        _, tvae_class = _sdv_classes()
        return tvae_class(metadata, epochs=self.epochs, batch_size=self.batch_size, enable_gpu=False)

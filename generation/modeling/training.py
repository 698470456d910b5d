"""Training one DP model per job: refusals first, then one diffprivlib fit, then the artifact.

Order of work in `train_dp_model`:

1. `model_declaration_refusals` on the spec's declarations (no data is touched: a refusal raises
   ValidationFailed before the training frame is read at all);
2. the encoder is built and "fitted" on a frame synthesised from the declarations;
3. the training rows are read: rows whose target is missing or outside its two declared values are
   dropped (a per-row rule, so neighbouring tables stay neighbouring; the count is not released);
4. the DP estimator is fitted once, with PrivacyLeakWarning turned into an error, its mechanism
   randomness seeded by the OS (never by the job's public seed), under its own BudgetAccountant,
   whose spend must equal the request's epsilon (the DP-SGD family, generation.modeling.dpsgd,
   spends (epsilon, delta) by Opacus' RDP accountant and takes the spec's delta);
5. the non-private baseline of the same family is fitted on the same rows with the job's seed (kept
   in memory for the validation of this job only: never stored, never released);
6. the DP estimator is copied into a plain scikit-learn estimator and wrapped with the encoder in a
   Pipeline; that pipeline is dumped with skops and hashed.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationFailed
from generation.modeling.artifacts import artifact_dumps, load_model_artifact
from generation.modeling.encoding import (
    FeatureEncoding,
    TargetEncoding,
    build_preprocessor,
    declaration_frame,
    feature_encodings,
    model_declaration_refusals,
    model_input,
    target_encoding,
)
from generation.modeling.families import MODEL_FAMILIES, ModelFamily
from generation.synthesizers.dp_base import decimal_text, library_version
from generation.synthesizers.dp_budget import mechanism_epsilon, parse_epsilon

ProgressFn = Callable[[str, float], None]

# The delta of an (epsilon, delta) model family when the spec names none: the portal's default for
# (epsilon, delta) synthesizers (approvals.dp.DEFAULT_DELTA), far below 1 / n for any table it holds.
DEFAULT_MODEL_DELTA = Decimal("1e-9")
MAX_MODEL_DELTA = Decimal("1e-5")

COVERS = [
    "The model artifact (its coefficients or trees) and every prediction made with it.",
]
NOT_COVERED = [
    "The non-private baseline model of the same family, trained in the same job to measure what "
    "privacy cost: it is never stored or released, but any figure computed from it (its accuracy "
    "in the validation report) is computed on the real rows outside the privacy budget.",
    "The model's evaluation (AUC, calibration) on the real holdout rows, shown in the validation report.",
    "How many rows were dropped because their outcome was missing or outside its two declared "
    "values: the rule is applied row by row and the count is not released.",
    "Whether the job failed: a training table holding only one of the two outcome values cannot "
    "be fitted, and the job then fails without a release.",
    "The declared domain (bounds, categories): public metadata written by the data steward (or "
    "estimated under DP and charged separately), not derived from the records under privacy.",
]


@dataclass(frozen=True)
class ModelSpec:
    """What to train: a family, the declared outcome, its features, epsilon, the pinned specs."""

    family: str
    target: str
    features: tuple[str, ...]
    epsilon: float
    column_specs: tuple[dict, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # (epsilon, delta) families only (dp_sgd_mlp): the delta reserved with epsilon; None there means
    # DEFAULT_MODEL_DELTA. The pure epsilon-DP families refuse a non-zero delta.
    delta: float | str | Decimal | None = None


@dataclass
class TrainedModel:
    """A trained DP model: the released artifact (skops bytes and SHA-256) and its privacy facts.

    `pipeline` is the released object (encoder + plain scikit-learn estimator); `_baseline` is the
    non-private baseline (same encoder), kept in memory for this job's validation only.
    """

    family: str
    artifact: bytes
    sha256: str
    feature_names: list[str]
    privacy_facts: dict[str, Any]
    pipeline: Any = field(repr=False)
    encodings: tuple[FeatureEncoding, ...] = field(repr=False)
    target: TargetEncoding = field(repr=False)
    _baseline: Any = field(repr=False, default=None)

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` read into the artifact's input shape (generation.modeling.encoding)."""
        return model_input(frame, self.encodings)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive class) from the DP model, one per row of `frame`."""
        return np.asarray(self.pipeline.predict_proba(self.model_input(frame))[:, 1], dtype=float)

    def baseline_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive class) from the non-private baseline (never stored, never released)."""
        if self._baseline is None:
            raise RuntimeError("The non-private baseline exists only in the job that trained the model.")
        return np.asarray(self._baseline.predict_proba(self.model_input(frame))[:, 1], dtype=float)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """The target as 0/1 by the declared positive class. Rows whose target is missing or not
        one of its two declared values are 0 here: select rows with `labelled` first."""
        return self.target.labels(frame[self.target.name])[0]

    def labelled(self, frame: pd.DataFrame) -> np.ndarray:
        """Mask of the rows whose target is one of its two declared values."""
        return self.target.labels(frame[self.target.name])[1]


@contextmanager
def privacy_leaks_are_errors() -> Iterator[None]:
    """diffprivlib warns (PrivacyLeakWarning) when it would read a privacy parameter from the data;
    inside a DP fit that must stop the job."""
    from diffprivlib.utils import PrivacyLeakWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        yield


def mechanism_random_state() -> np.random.RandomState:
    """Randomness for the DP mechanisms from the OS (128 bits), never from the job's public seed."""
    return np.random.RandomState(np.random.MT19937(secrets.randbits(128)))


def _progress(on_progress: ProgressFn | None, stage: str, fraction: float) -> None:
    if on_progress is not None:
        on_progress(stage, fraction)


def train_dp_model(
    training: pd.DataFrame,
    spec: ModelSpec,
    *,
    seed: int,
    on_progress: ProgressFn | None = None,
) -> TrainedModel:
    """Fit `spec` once under DP on `training` (see the module docstring); raises ValidationFailed
    when the declarations do not allow the model, before the data is touched."""
    column_specs = [dict(s) for s in spec.column_specs]
    features = list(spec.features)
    refusals = model_declaration_refusals(
        family=spec.family, target=spec.target, features=features, column_specs=column_specs
    )
    if refusals:
        raise ValidationFailed(" ".join(refusals), code="model_not_declared")
    family = MODEL_FAMILIES[spec.family]
    try:
        options = family.parse_options(spec.options or {})
        epsilon = parse_epsilon(spec.epsilon)
        delta = _model_delta(family, spec.delta)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid_model_options") from exc

    encodings, target, preprocessor = _declared_encoding(spec)
    feature_names = [name for e in encodings for name in e.names]
    width = len(feature_names)
    _progress(on_progress, "encoded the declarations", 0.05)

    # --- the data, from here on -----------------------------------------------------------------
    x, y = _training_matrix(training, encodings, target, preprocessor)
    if not (y == 1).any() or not (y == 0).any():
        raise ValidationFailed(
            f"The training rows do not hold both declared values of `{spec.target}`, so no "
            "classifier can be trained; the job fails without a release.",
            code="model_one_class",
        )
    _progress(on_progress, "read the training rows", 0.2)

    build: dict[str, Any] = {"epsilon": mechanism_epsilon(epsilon), "n_features": width, "options": options}
    if family.uses_delta:
        build.update(delta=float(delta), seed=int(seed))
    try:
        dp_model = family.build_dp(**build, random_state=mechanism_random_state())
    except ValueError as exc:  # e.g. an epsilon too small for DP-SGD's planned steps
        raise ValidationFailed(str(exc), code="invalid_model_options") from exc
    with privacy_leaks_are_errors():
        dp_model.fit(x, y)
    spent = Decimal(str(dp_model.accountant.total()[0]))
    spent_delta = Decimal(str(dp_model.accountant.total()[1]))
    if spent_delta > delta or spent > epsilon:
        raise RuntimeError("The DP fit spent more than the requested epsilon.")
    _progress(on_progress, "fitted the DP model", 0.7)

    baseline = _baseline_pipeline(family, options, seed, preprocessor, encodings, x, y)
    _progress(on_progress, "fitted the non-private baseline", 0.85)

    from sklearn.pipeline import Pipeline

    released = Pipeline([("encode", preprocessor), ("model", family.portable(dp_model, width, options))])
    artifact, sha256 = artifact_dumps(released)
    _progress(on_progress, "serialized the model artifact", 1.0)
    return TrainedModel(
        family=family.name,
        artifact=artifact,
        sha256=sha256,
        feature_names=feature_names,
        privacy_facts=_privacy_facts(
            family_name=family.name,
            epsilon=epsilon,
            delta=delta,
            fitted=dp_model,
            width=width,
            options=options,
            encodings=encodings,
            target=target,
        ),
        pipeline=released,
        encodings=encodings,
        target=target,
        _baseline=baseline,
    )


def restore_trained_model(
    training: pd.DataFrame,
    spec: ModelSpec,
    *,
    artifact: bytes,
    sha256: str,
    privacy_facts: Mapping[str, Any],
    seed: int,
) -> TrainedModel:
    """The TrainedModel of an earlier fit of `spec`, rebuilt from what was saved of it: its artifact
    (skops bytes, loaded by `load_model_artifact`), the SHA-256 recorded for those bytes (checked
    first: a mismatch raises RuntimeError) and its privacy facts. The encodings come from the
    spec's declarations, and the non-private baseline is fitted again on `training` with `seed`
    (it is never stored; fitting it spends no privacy budget). No DP mechanism runs."""
    if hashlib.sha256(artifact).hexdigest() != sha256:
        raise RuntimeError("The saved model does not match its recorded SHA-256.")
    family = MODEL_FAMILIES[spec.family]
    options = family.parse_options(spec.options or {})
    encodings, target, preprocessor = _declared_encoding(spec)
    x, y = _training_matrix(training, encodings, target, preprocessor)
    return TrainedModel(
        family=spec.family,
        artifact=artifact,
        sha256=sha256,
        feature_names=[name for e in encodings for name in e.names],
        privacy_facts=dict(privacy_facts),
        pipeline=load_model_artifact(artifact),
        encodings=encodings,
        target=target,
        _baseline=_baseline_pipeline(family, options, seed, preprocessor, encodings, x, y),
    )


def _model_delta(family: ModelFamily, value: Any) -> Decimal:
    """The spec's delta as an exact Decimal: 0 for a pure epsilon-DP family (which refuses any
    other), the default when an (epsilon, delta) family's spec names none."""
    if value in (None, ""):
        return DEFAULT_MODEL_DELTA if family.uses_delta else Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("Delta must be a number.")
    try:
        delta = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else str(value))
        )
    except ArithmeticError:
        raise ValueError("Delta must be a number.") from None
    if not family.uses_delta:
        if delta != 0:
            raise ValueError(f"{family.name} is pure epsilon-DP: it takes no delta.")
        return Decimal(0)
    if not delta.is_finite() or not Decimal(0) < delta <= MAX_MODEL_DELTA:
        raise ValueError(f"Delta must be above 0 and at most {MAX_MODEL_DELTA} for {family.name}.")
    return delta


def _declared_encoding(spec: ModelSpec) -> tuple[tuple[FeatureEncoding, ...], TargetEncoding, Any]:
    """The spec's feature and target encodings and the preprocessor, from its declarations only."""
    column_specs = [dict(s) for s in spec.column_specs]
    encodings = tuple(feature_encodings(list(spec.features), column_specs))
    return encodings, target_encoding(spec.target, column_specs), build_preprocessor(encodings)


def _training_matrix(
    training: pd.DataFrame,
    encodings: tuple[FeatureEncoding, ...],
    target: TargetEncoding,
    preprocessor: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """The encoded rows whose target is one of its two declared values, and their 0/1 labels."""
    y, known = target.labels(training[target.name])
    x = preprocessor.transform(model_input(training.loc[known], encodings)).astype(float)
    return x, y[known]


def _baseline_pipeline(
    family: ModelFamily,
    options: dict[str, Any],
    seed: int,
    preprocessor: Any,
    encodings: tuple[FeatureEncoding, ...],
    x: np.ndarray,
    y: np.ndarray,
) -> Any:
    """The non-private baseline of the same family fitted on (x, y) with the job's seed, behind its
    own copy of the encoder (identical to `preprocessor`: it holds declarations only)."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    encoder = clone(preprocessor).fit(declaration_frame(encodings))
    return Pipeline(
        [("encode", encoder), ("model", family.build_baseline(options=options, seed=seed).fit(x, y))]
    )


def _privacy_facts(
    *,
    family_name: str,
    epsilon: Decimal,
    delta: Decimal = Decimal(0),
    fitted: Any = None,
    width: int,
    options: dict[str, Any],
    encodings: tuple[FeatureEncoding, ...],
    target: TargetEncoding,
) -> dict[str, Any]:
    family = MODEL_FAMILIES[family_name]
    epsilon_text = decimal_text(epsilon)
    delta_text = decimal_text(delta) if delta else "0"
    parameters = family.privacy_parameters(width)
    if "max_grad_norm" in parameters:
        parameters["max_grad_norm"]["value"] = options["max_grad_norm"]
        if fitted is not None:
            parameters["noise_multiplier"] = {
                "value": fitted.noise_multiplier,
                "steps": fitted.steps,
                "sample_rate": options["sample_rate"],
                "source": "Opacus RDP accountant, from (epsilon, delta, sample_rate, steps) only",
            }
    if family.sensitivity:
        sensitivity = family.sensitivity
    elif "data_norm" in parameters:
        sensitivity = f"data norm {parameters['data_norm']['value']:g}"
    else:
        sensitivity = "1 (one record changes one leaf's count by one)"
    return {
        "dp": True,
        "unit": "record",
        "entity_column": None,
        "max_rows_per_entity": 1,
        "neighbouring": "add or remove one record",
        "epsilon": epsilon_text,
        "delta": delta_text,
        "flavour": family.flavour,
        "mechanisms": [
            {
                "step": f"fit {family_name} (one fit per job)",
                "mechanism": f"{family.dp_class}: {family.mechanism}",
                "library": family.library,
                "version": library_version(family.library),
                "epsilon": epsilon_text,
                "delta": delta_text,
                "sensitivity": sensitivity,
            }
        ],
        "model_family": family_name,
        "model_options": dict(options),
        "privacy_parameters": parameters,
        "target": {
            "column": target.name,
            "positive_class": target.positive,
            "negative_class": target.negative,
            "source": "steward declaration",
            "declaration": target.source,
        },
        "features": [_feature_fact(e) for e in encodings],
        "encoded_features": [name for e in encodings for name in e.names],
        "rows_dropped": (
            "Rows whose outcome is missing or not one of its two declared values were dropped before "
            "training; the count is not released."
        ),
        "covers": list(COVERS),
        "not_covered": list(NOT_COVERED),
    }


def _feature_fact(e: FeatureEncoding) -> dict[str, Any]:
    fact: dict[str, Any] = {"column": e.name, "source": "steward declaration", "declaration": e.source}
    if e.kind == "category":
        fact.update(encoding="one-hot over the declared categories", categories=list(e.categories))
    elif e.boolean:
        fact.update(encoding="0/1", lower=0.0, upper=1.0)
    else:
        fact.update(encoding="clipped to the declared bounds, scaled to [0, 1]", lower=e.lower, upper=e.upper)
    if e.kind != "category":
        fact["missing"] = (
            f"filled with the declared midpoint {e.midpoint:g}, plus a 0/1 missing indicator"
            if e.nullable
            else f"declared non-nullable; a missing value is filled with the declared midpoint {e.midpoint:g}"
        )
    else:
        fact["missing"] = "missing or undeclared values encode as all zeros"
    return fact

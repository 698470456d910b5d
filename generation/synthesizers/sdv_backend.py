"""SDV single-table synthesizers (SDV 2.0 API: dict in, dict out). Not differentially private."""

from __future__ import annotations

import random
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.choices import ColumnKind
from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.missingness import (
    PATTERN_COLUMN,
    MissingPatterns,
    midrank_normal_scores,
    nearest_correlation_matrix,
    with_pattern_column,
)
from generation.synthesizers.options import Options, bool_option, checked_options, choice_option
from generation.synthesizers.shaping import learned_shapes, shape_frame

TABLE = "source"
SAMPLE_CHUNKS = 10

_SDTYPE: dict[str, str] = {
    ColumnKind.NUMERIC: "numerical",
    ColumnKind.CATEGORICAL: "categorical",
    ColumnKind.BOOLEAN: "categorical",
    ColumnKind.DATETIME: "datetime",
}


def build_metadata(columns: list[ColumnSpec]):  # type: ignore[no-untyped-def]
    """Metadata from our profile, not SDV's detection (which calls 0/1 outcomes `ordinal`)."""
    from sdv.metadata import Metadata

    table_columns: dict[str, dict[str, str]] = {}
    for spec in columns:
        sdtype = _SDTYPE.get(spec.kind)
        if sdtype is None:
            raise ValueError(f"Column {spec.name!r} of kind {spec.kind} cannot be synthesized.")
        table_columns[spec.name] = {"sdtype": sdtype}
    return Metadata.load_from_dict({"tables": {TABLE: {"columns": table_columns}}})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a pinned dependency
        pass


def sample_in_chunks(synth, rows: int, progress: ProgressFn, *, start: float) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Sample `rows` from a fitted SDV single-table synthesizer, reporting progress from `start` to 1."""
    chunk = max(1, -(-rows // SAMPLE_CHUNKS))
    parts: list[pd.DataFrame] = []
    produced = 0
    while produced < rows:
        n = min(chunk, rows - produced)
        parts.append(synth.sample(num_rows=n)[TABLE])
        produced += n
        progress(start + (1.0 - start) * produced / rows, "sampling")
    return pd.concat(parts, ignore_index=True)


SDV_DISTRIBUTIONS = ("norm", "beta", "truncnorm", "gamma", "uniform", "gaussian_kde")
DISTRIBUTIONS = ("empirical", *SDV_DISTRIBUTIONS)
# Measured on the four tests/data tables with their declared outcomes (docs/synthesizers.md):
# "empirical" gave the best column shapes (0.96-0.99) and TSTR/TRTR (0.94-0.99) at the cost of
# "norm"; gaussian_kde came close but its CDF inversion took 300 s on 4,300 rows.
DEFAULT_DISTRIBUTION = "empirical"
# A stratum (one outcome class) is fitted on its own only with at least this many rows, and at
# least this many per column: a copula needs enough rows to estimate its correlation matrix.
MIN_STRATUM_ROWS = 50
MIN_STRATUM_ROWS_PER_COLUMN = 3


def build_sdv_metadata(columns: list[ColumnSpec], *, pattern: bool):  # type: ignore[no-untyped-def]
    """Metadata for the requested columns, plus the missingness-pattern column when it is used."""
    if not pattern:
        return build_metadata(columns)
    extra = ColumnSpec(PATTERN_COLUMN, ColumnKind.CATEGORICAL)
    return build_metadata([*columns, extra])


def prepare_training(
    frame: pd.DataFrame, columns: list[ColumnSpec], *, seed: int
) -> tuple[pd.DataFrame, MissingPatterns]:
    """The requested columns, with joint missingness turned into a pattern column (missingness.py)."""
    return with_pattern_column(frame[[c.name for c in columns]], columns, seed=seed)


def finish_sample(
    synthetic: pd.DataFrame, frame: pd.DataFrame, columns: list[ColumnSpec], patterns: MissingPatterns
) -> pd.DataFrame:
    """Blank the cells the synthesized patterns say are missing, then shape values like the source."""
    blanked = patterns.blank(synthetic)
    return shape_frame(blanked, learned_shapes(frame, columns))[[c.name for c in columns]]


class GaussianCopulaSynthesizer:
    """SDV's Gaussian copula with joint missingness, value shaping and outcome strata.

    Options: `distribution` (marginal of numeric columns: "empirical", the default, see
    EmpiricalMarginals, or one of SDV's SDV_DISTRIBUTIONS),
    `stratify_outcome` (default true: with a declared outcome, one copula per outcome class when
    every class has enough rows, so the outcome's relation to every column, not only its linear
    correlation, survives; each class keeps its share of the rows).
    """

    name: ClassVar[str] = "gaussian_copula"
    label: ClassVar[str] = "Gaussian copula (SDV) - not differentially private"
    is_dp: ClassVar[bool] = False

    def __init__(self, options: Options | None = None) -> None:
        given = checked_options(self.name, options, allowed=("distribution", "stratify_outcome"))
        self.distribution = choice_option(given, "distribution", DISTRIBUTIONS, default=DEFAULT_DISTRIBUTION)
        self.stratify_outcome = bool_option(given, "stratify_outcome", default=True)

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
        training, patterns = prepare_training(frame, columns, seed=seed)
        strata = self._strata(training, columns)
        parts: list[pd.DataFrame] = []
        counts = _rows_per_stratum([len(s) for s in strata], rows, seed)
        for i, (stratum, n) in enumerate(zip(strata, counts, strict=True)):
            start, end = i / len(strata), (i + 1) / len(strata)
            progress(
                0.05 + 0.9 * start,
                "fitting" if len(strata) == 1 else f"fitting stratum {i + 1}/{len(strata)}",
            )
            if n == 0:
                continue
            synth, marginals = self._fitted(stratum, columns, patterns)
            # SDV resets sampling to a fixed seed unless told otherwise, which would make every job
            # on the same data identical and the receipt's seed meaningless. (Private API of the
            # pinned sdv==2.0.0; the synthesizer tests catch a change.)
            synth._set_random_state(seed + i)
            part = sample_in_chunks(
                synth, n, _within(progress, 0.05 + 0.9 * start, 0.05 + 0.9 * end), start=0.5
            )
            parts.append(marginals.from_scores(part) if marginals is not None else part)
        synthetic = pd.concat(parts, ignore_index=True)
        if len(parts) > 1:  # strata were sampled one after the other: mix them
            synthetic = synthetic.sample(frac=1.0, random_state=seed % 2**32).reset_index(drop=True)
        result = finish_sample(synthetic, frame, columns, patterns)
        progress(1.0, "sampled")
        return result

    def _fitted(
        self, training: pd.DataFrame, columns: list[ColumnSpec], patterns: MissingPatterns
    ) -> tuple[Any, EmpiricalMarginals | None]:
        """A fitted SDV copula for one stratum, and the empirical marginals its numbers went through."""
        from sdv.single_table import GaussianCopulaSynthesizer as SDVGaussianCopula

        metadata = build_sdv_metadata(columns, pattern=patterns.active)
        distribution = self.distribution
        if distribution == "empirical":
            # Normal scores through the empirical CDF; the copula then sees normal marginals.
            marginals: EmpiricalMarginals | None = EmpiricalMarginals.fit(training, columns)
            training, distribution = marginals.to_scores(training), "norm"  # type: ignore[union-attr]
        else:
            marginals = None
        # Categorical columns reach the copula as SDV's UniformEncoder output, uniform on [0, 1] by
        # construction: a "uniform" marginal keeps their frequencies, where a fitted normal would
        # distort them. Numeric columns get the chosen distribution.
        discrete = [c.name for c in columns if c.kind != ColumnKind.NUMERIC and c.kind != ColumnKind.DATETIME]
        if patterns.active:
            discrete.append(PATTERN_COLUMN)
        synth = SDVGaussianCopula(
            metadata,
            default_distribution=distribution,
            numerical_distributions={name: "uniform" for name in discrete},
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not statistically modeled.*")
            processed = synth.preprocess({TABLE: training})
            synth.fit_processed_data(processed)
        undo_discrete_attenuation(synth._model, processed[TABLE], training)
        return synth, marginals

    def _strata(self, training: pd.DataFrame, columns: list[ColumnSpec]) -> list[pd.DataFrame]:
        """One frame per outcome class when stratifying helps and every class is large enough."""
        outcome = next((c.name for c in columns if c.outcome), None)
        if not self.stratify_outcome or outcome is None or len(columns) < 2:
            return [training]
        groups = [g for _, g in training.groupby(training[outcome].astype(str), dropna=False, sort=True)]
        least = max(MIN_STRATUM_ROWS, MIN_STRATUM_ROWS_PER_COLUMN * len(columns))
        if len(groups) < 2 or min(len(g) for g in groups) < least:
            return [training]
        return [g.reset_index(drop=True) for g in groups]


# A column with at most this many distinct values is discrete for the latent-correlation correction.
MAX_DISCRETE_VALUES = 50
MAX_LATENT_CORRELATION = 0.995
HERMITE_TERMS = 40  # terms of Mehler's expansion used to invert a pair's correlation
MIN_CORRECTED_ATTENUATION = 0.9  # a discrete column whose scores correlate 0.9+ with its latent is left as is


def hermite_coefficients(normal: np.ndarray, labels: pd.Series, terms: int = HERMITE_TERMS) -> np.ndarray:
    """E[S h_n(Z)] / sd(S) for n = 1..terms: how a discrete column's normal scores S (what the copula
    was fitted on) relate to its latent normal Z, h_n the normalised Hermite polynomials.

    A category c holding share p_c is the latent interval [a_c, b_c] between consecutive normal
    quantiles of the shares (in the order of the categories' mean scores). Given the category, S is
    its score (plus the encoder's jitter, independent of Z), so E[S h_n(Z)] = sum_c E[S | c]
    (h_{n-1}(a_c) phi(a_c) - h_{n-1}(b_c) phi(b_c)) / sqrt(n). Mehler's expansion then gives the
    correlation of two such columns under a latent correlation rho: sum_n rho^n e_n(j) e_n(k)."""
    from scipy.stats import norm

    frame = pd.DataFrame({"s": normal, "c": labels.astype(str).to_numpy()}).dropna()
    spread = frame["s"].std(ddof=0) if len(frame) else 0.0
    if not spread > 0:
        return np.zeros(terms)
    groups = frame.groupby("c")["s"].agg(["mean", "size"]).sort_values("mean")
    shares = groups["size"].to_numpy() / len(frame)
    cuts = norm.ppf(np.clip(np.concatenate([[0.0], np.cumsum(shares)]), 0.0, 1.0))
    finite = np.isfinite(cuts)
    density = np.where(finite, norm.pdf(np.where(finite, cuts, 0.0)), 0.0)
    points = np.where(finite, cuts, 0.0)
    scores = groups["mean"].to_numpy() - frame["s"].mean()
    coefficients = np.zeros(terms)
    previous, current = np.zeros_like(points), np.ones_like(points)  # h_{-1}, h_0 at the cuts
    for n in range(1, terms + 1):
        edge = current * density  # h_{n-1}(cut) phi(cut); 0 at infinite cuts
        coefficients[n - 1] = float(np.sum(scores * (edge[:-1] - edge[1:])) / np.sqrt(n)) / spread
        previous, current = current, (points * current - np.sqrt(n - 1) * previous) / np.sqrt(n)
    return coefficients


def latent_correlation(observed: float, first: np.ndarray, second: np.ndarray) -> float:
    """A latent rho whose Mehler series sum_n rho^n first_n second_n equals `observed` (a root
    between the bounds, found where the series crosses it); the nearer bound when the series does
    not reach it there."""
    from scipy.optimize import brentq

    products = first * second
    powers = np.arange(1, len(products) + 1)

    def gap(rho: float) -> float:
        return float(np.sum(products * rho**powers)) - observed

    low, high = -MAX_LATENT_CORRELATION, MAX_LATENT_CORRELATION
    if gap(low) >= 0:
        return low
    if gap(high) <= 0:
        return high
    return float(brentq(gap, low, high, xtol=1e-6))


def undo_discrete_attenuation(model: Any, processed: pd.DataFrame, training: pd.DataFrame) -> None:
    """Replace the fitted copula's correlations of discrete columns with their latent ones.

    The copula estimates each correlation on the normal scores it was given and samples a latent
    normal that is then cut into categories. For a discrete column both steps lose correlation: on
    pbc, ascites with edema (0.59 in the source) came out 0.23-0.34 and hepatomegaly with spiders
    (0.32) 0.14-0.21. For each pair with a discrete column (at most MAX_DISCRETE_VALUES distinct
    values) the latent correlation is the rho that reproduces the fitted one through Mehler's
    expansion (`hermite_coefficients`; exactly r / e_1 when the other column is continuous, the
    tetrachoric correlation for two flags); then the nearest correlation matrix."""
    correlation = getattr(model, "correlation", None)
    if correlation is None or not len(processed):
        return
    columns = list(correlation.columns)
    normal = model._transform_to_normal(processed[columns])
    continuous = np.zeros(HERMITE_TERMS)
    continuous[0] = 1.0
    coefficients = []
    discrete = []
    for j, name in enumerate(columns):
        labels = training[name].reset_index(drop=True) if name in training.columns else None
        if labels is None or labels.nunique(dropna=True) > MAX_DISCRETE_VALUES:
            coefficients.append(continuous)
            discrete.append(False)
        else:
            own = hermite_coefficients(normal[:, j], labels)
            # A column this close to its latent normal (ten deciles score 0.98) loses little, and
            # correcting it pushed near-deterministic pairs (flchain's FLC group with kappa, 0.9)
            # to the bound, where repairing the matrix distorted other pairs (kappa-lambda 0.94 ->
            # 0.78-0.81 in SDMetrics' pair score): it is left as it is.
            attenuated = own[0] < MIN_CORRECTED_ATTENUATION
            coefficients.append(own if attenuated else continuous)
            discrete.append(bool(attenuated))
    if not any(discrete):
        return
    matrix = correlation.to_numpy(dtype=float).copy()
    for j in range(len(columns)):
        for k in range(j + 1, len(columns)):
            if (discrete[j] or discrete[k]) and np.isfinite(matrix[j, k]):
                matrix[j, k] = matrix[k, j] = latent_correlation(
                    matrix[j, k], coefficients[j], coefficients[k]
                )
    np.fill_diagonal(matrix, 1.0)
    model.correlation = pd.DataFrame(
        _valid_blend(correlation.to_numpy(dtype=float), matrix),
        index=correlation.index,
        columns=correlation.columns,
    )


def _valid_blend(fitted: np.ndarray, corrected: np.ndarray) -> np.ndarray:
    """The corrected matrix if it is a valid correlation matrix; otherwise the largest step from the
    fitted one toward it that is (bisection on positive definiteness). Only the corrected entries
    move, so pairs of continuous columns keep their fitted correlation exactly; an eigenvalue repair
    of the corrected matrix had spread a rare flag's large correction over every pair (flchain's
    kappa-lambda 0.94 -> 0.78-0.81 in SDMetrics' pair score, through mgus at 1.5%)."""

    def valid(matrix: np.ndarray) -> bool:
        try:
            np.linalg.cholesky(matrix - 1e-9 * np.eye(len(matrix)))
        except np.linalg.LinAlgError:
            return False
        return True

    if valid(corrected):
        return corrected
    fitted = nearest_correlation_matrix(fitted) if not valid(fitted) else fitted
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        if valid(fitted + middle * (corrected - fitted)):
            low = middle
        else:
            high = middle
    return fitted + low * (corrected - fitted)


class EmpiricalMarginals:
    """Numeric columns through their empirical distribution: normal scores in, observed quantiles out.

    Each value becomes the normal quantile of its mid-rank ((rank + 0.5) / n, ties sharing their
    mean rank), so the copula fits normal marginals exactly; a sampled score is read back through the
    empirical quantile function, interpolated linearly between the sorted observed values. Released
    values therefore follow the source's marginal closely but lie between observed values (no
    value outside the observed range; the gate's copy checks still apply).

    The copula fits a normal to the scores it is given (their mean and standard deviation), and the
    scores of a column with ties are not standard normal: a 0/1 flag with 7% ones scores -0.09 or
    1.81, mean 0.04, standard deviation 0.48. Sampled scores come back on that scale, so they are
    standardised with the training scores' own mean and deviation before being read back. Read as
    standard normal, the flag's ones needed a score above 1.48, three of the copula's standard
    deviations: pbc's ascites (7% ones) and edema 1.0 (4%) came out in 0 or 1 of 334 rows.
    """

    def __init__(
        self, observed: dict[str, np.ndarray], scale: dict[str, tuple[float, float]] | None = None
    ) -> None:
        self.observed = observed
        # Mean and standard deviation of each column's training scores (what the copula fits).
        self.scale: dict[str, tuple[float, float]] = dict(scale or {})

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: list[ColumnSpec]) -> EmpiricalMarginals:
        observed = {}
        for spec in columns:
            if spec.kind != ColumnKind.NUMERIC:
                continue
            values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(dtype=float)
            values = np.sort(values[np.isfinite(values)])
            if values.size >= 2 and values[0] < values[-1]:
                observed[spec.name] = values
        return cls(observed)

    def to_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The training rows' normal scores (and, recorded for `from_scores`, their mean and
        standard deviation per column)."""
        out = frame.copy()
        for name, values in self.observed.items():
            x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            scores = midrank_normal_scores(values, x)
            present = scores[np.isfinite(scores)]
            spread = float(present.std()) if present.size else 1.0
            self.scale[name] = (float(present.mean()) if present.size else 0.0, spread if spread > 0 else 1.0)
            out[name] = scores
        return out

    def from_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        from scipy.stats import norm

        out = frame.copy()
        for name, values in self.observed.items():
            location, spread = self.scale.get(name, (0.0, 1.0))
            scores = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            u = norm.cdf((scores - location) / spread)
            positions = np.clip(u * values.size - 0.5, 0, values.size - 1)
            out[name] = np.interp(positions, np.arange(values.size), values)
        return out


def _rows_per_stratum(sizes: list[int], rows: int, seed: int) -> list[int]:
    """Rows to sample per stratum, in proportion to its training share (largest remainder)."""
    total = sum(sizes)
    exact = [rows * s / total for s in sizes]
    counts = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: rows - sum(counts)]:
        counts[i] += 1
    return counts


def _within(progress: ProgressFn, low: float, high: float) -> ProgressFn:
    """A progress callback mapping [0, 1] onto [low, high] of the caller's."""
    return lambda fraction, stage: progress(low + (high - low) * fraction, stage)

"""`dp_copula`: a differentially private Gaussian copula built on diffprivlib mechanisms.

Guarantee: pure epsilon-DP (delta = 0) with respect to adding or removing one record, for exactly
the requested epsilon, by sequential composition of two mechanisms (docs/synthesizers.md has the
full argument):

1. Marginals, epsilon_m = epsilon - epsilon_c. Every column's histogram over its DECLARED cells
   (dp_domain) is one vector; one record adds 1 to at most one cell of each column, so the
   concatenated histogram of d columns has L1 sensitivity d. Each count gets discrete noise from
   diffprivlib's Geometric mechanism with sensitivity d and epsilon_m (coordinate-wise geometric
   noise at scale d/epsilon_m is the vector geometric mechanism: epsilon_m-DP for the whole vector).
   Negative counts are set to 0 and the result normalised: post-processing.
2. Correlations, epsilon_c = floor(epsilon * correlation_share) (micro-epsilon). Each record's
   value in column j becomes a normal score z_j that is a function of that record's cell and of the
   RELEASED marginals only (the mean of a standard normal over the cell's quantile interval),
   clipped to [-c, c]; a record counting nowhere in j scores 0. The released statistic is the vector
   of sums S_jk = sum_i z_ij z_ik over the d(d-1)/2 column pairs. Adding or removing one record
   changes each S_jk by z_j z_k, |z_j z_k| <= c^2, so the L1 sensitivity is c^2 d(d-1)/2; diffprivlib's
   Laplace mechanism with that sensitivity and epsilon_c noises each sum. Turning the sums into a
   correlation matrix (dividing by the noisy row count from step 1, centring with the score
   moments implied by the released marginals, projecting to the nearest valid correlation matrix)
   is post-processing. Because step 2 is chosen after step 1 is released, this is adaptive
   sequential composition, which holds for pure DP: epsilon_m + epsilon_c = epsilon.

Sampling (post-processing, seeded by the job's seed): Z ~ N(0, R), U = Phi(Z), each U read through
the column's released CDF to a cell; a numeric value is placed inside its bin by where U falls in
the cell's CDF interval. The mechanisms' noise is NOT seeded from the job seed, which is recorded
on the receipt: a known seed would let anyone subtract the noise. diffprivlib then draws from
`secrets.SystemRandom`. So the same seed does not reproduce a DP release; a new draw of noise is a
new release and spends new budget.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.dp_budget import (
    PrivacyLedger,
    mechanism_epsilon,
    parse_epsilon,
    split_epsilon,
)
from generation.synthesizers.dp_domain import NOWHERE, ColumnDomain, table_domain
from generation.synthesizers.options import (
    Options,
    checked_options,
    float_option,
    int_option,
    str_list_option,
)

DEFAULT_BINS, MAX_BINS = 20, 200
DEFAULT_CORRELATION_SHARE = 0.5
DEFAULT_SCORE_CLIP = 2.0
_EIGEN_FLOOR = 1e-6  # keeps the projected correlation matrix positive definite (Cholesky)


@contextmanager
def privacy_leaks_are_errors() -> Iterator[None]:
    """diffprivlib warns (PrivacyLeakWarning) when it falls back to bounds read from the data;
    inside a DP run that must stop the job, not scroll past in a log."""
    from diffprivlib.utils import PrivacyLeakWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        yield


@dataclass(frozen=True)
class Marginal:
    """A column's released distribution over its declared cells, and its noisy total count."""

    probabilities: np.ndarray
    noisy_total: float

    @property
    def cdf(self) -> tuple[np.ndarray, np.ndarray]:
        upper = np.cumsum(self.probabilities)
        # From the last cell with mass on, the CDF is exactly 1: every U < 1 then falls in a cell
        # with positive mass, never in an empty cell after it because of rounding in the cumsum.
        last = int(np.flatnonzero(self.probabilities)[-1])
        upper[last:] = 1.0
        return upper - np.where(np.arange(len(upper)) > last, 0.0, self.probabilities), upper


def noisy_marginals(
    domains: list[ColumnDomain], codes: np.ndarray, epsilon: Decimal, ledger: PrivacyLedger
) -> list[Marginal]:
    """Step 1: discrete (geometric) noise on every declared cell count."""
    from diffprivlib.mechanisms import Geometric

    sensitivity = len(domains)  # one record, one cell per column: L1 change of the whole vector <= d
    mechanism = Geometric(epsilon=mechanism_epsilon(epsilon), sensitivity=sensitivity)
    ledger.record("marginals", "Geometric", epsilon, sensitivity)  # spent once the data is touched
    released = []
    for j, domain in enumerate(domains):
        column = codes[:, j]
        counts = np.bincount(column[column != NOWHERE], minlength=domain.cells)
        noisy = np.array([mechanism.randomise(int(count)) for count in counts], dtype=np.int64)
        released.append(_normalised(noisy))
    return released


def _normalised(noisy: np.ndarray) -> Marginal:
    kept = np.maximum(noisy, 0).astype(float)
    total = kept.sum()
    if total == 0:  # all noise: nothing learnt, so no cell is preferred
        return Marginal(np.full(len(kept), 1.0 / len(kept)), 0.0)
    return Marginal(kept / total, float(total))


def cell_scores(marginal: Marginal, clip: float) -> np.ndarray:
    """Mean of a standard normal over each cell's quantile interval, clipped to [-clip, clip]."""
    lower, upper = marginal.cdf
    a, b = norm.ppf(lower), norm.ppf(np.minimum(upper, 1.0))
    mass = marginal.probabilities
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (norm.pdf(a) - norm.pdf(b)) / mass
    # An empty cell has no interval; score it at its position (no record of a neighbour moves it).
    edge = norm.ppf(np.clip(lower, 1e-12, 1 - 1e-12))
    return np.clip(np.where(mass > 1e-12, mean, edge), -clip, clip)


def noisy_correlation(
    codes: np.ndarray,
    marginals: list[Marginal],
    *,
    clip: float,
    epsilon: Decimal,
    ledger: PrivacyLedger,
) -> np.ndarray:
    """Step 2: Laplace noise on the pairwise sums of clipped normal scores, then a correlation."""
    from diffprivlib.mechanisms import Laplace

    scores = [cell_scores(m, clip) for m in marginals]
    z = np.column_stack(
        [np.where(codes[:, j] == NOWHERE, 0.0, s[np.maximum(codes[:, j], 0)]) for j, s in enumerate(scores)]
    )
    pairs = list(itertools.combinations(range(len(marginals)), 2))
    sensitivity = clip**2 * len(pairs)
    mechanism = Laplace(epsilon=mechanism_epsilon(epsilon), sensitivity=sensitivity)
    ledger.record("correlations", "Laplace", epsilon, sensitivity)
    sums = {(j, k): mechanism.randomise(float(z[:, j] @ z[:, k])) for j, k in pairs}
    return _correlation_from_sums(sums, marginals, scores)


def _correlation_from_sums(
    sums: Mapping[tuple[int, int], float], marginals: list[Marginal], scores: list[np.ndarray]
) -> np.ndarray:
    """Post-processing only: uses released sums and released marginals."""
    n = max(1.0, float(np.median([m.noisy_total for m in marginals])))
    mean = np.array([m.probabilities @ s for m, s in zip(marginals, scores, strict=True)])
    var = np.array([m.probabilities @ s**2 for m, s in zip(marginals, scores, strict=True)]) - mean**2
    matrix = np.eye(len(marginals))
    for (j, k), total in sums.items():
        spread = np.sqrt(max(var[j], 0.0) * max(var[k], 0.0))
        r = (total / n - mean[j] * mean[k]) / spread if spread > 1e-9 else 0.0
        matrix[j, k] = matrix[k, j] = np.clip(r, -1.0, 1.0)
    return nearest_correlation(matrix)


def nearest_correlation(matrix: np.ndarray) -> np.ndarray:
    """Clip eigenvalues to a small positive floor and rescale to a unit diagonal."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed = vectors @ np.diag(np.maximum(values, _EIGEN_FLOOR)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(fixed))
    return fixed * np.outer(scale, scale)


def sample_copula(
    domains: list[ColumnDomain],
    marginals: list[Marginal],
    correlation: np.ndarray,
    *,
    rows: int,
    seed: int,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((rows, len(domains))) @ np.linalg.cholesky(correlation).T
    uniform = np.minimum(norm.cdf(latent), np.nextafter(1.0, 0.0))
    columns = {}
    for j, (domain, marginal) in enumerate(zip(domains, marginals, strict=True)):
        lower, upper = marginal.cdf
        cells = np.searchsorted(upper, uniform[:, j], side="right")
        mass = np.maximum(marginal.probabilities[cells], 1e-300)
        within = np.clip((uniform[:, j] - lower[cells]) / mass, 0.0, np.nextafter(1.0, 0.0))
        columns[domain.name] = domain.decode(cells, within)
    return pd.DataFrame(columns)


def _mapping_option(options: Mapping[str, Any], key: str) -> dict[str, str]:
    value = options.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"Option {key!r} must map column names to one of their declared categories.")
    return dict(value)


class DPCopulaSynthesizer:
    """See the module docstring. One instance runs once: a second run would spend the budget again."""

    name: ClassVar[str] = "dp_copula"
    label: ClassVar[str] = "DP Gaussian copula (diffprivlib), epsilon-DP"
    is_dp: ClassVar[bool] = True

    def __init__(self, epsilon: float | int | str | Decimal, options: Options | None = None) -> None:
        self.epsilon = parse_epsilon(epsilon)
        given = checked_options(
            self.name,
            options,
            allowed=("bins", "integer_columns", "other_category", "correlation_share", "score_clip"),
        )
        self.bins = int_option(given, "bins", default=DEFAULT_BINS, low=2, high=MAX_BINS)
        self.integer_columns = str_list_option(given, "integer_columns")
        self.other_category = _mapping_option(given, "other_category")
        share = float_option(
            given, "correlation_share", default=DEFAULT_CORRELATION_SHARE, low=0.01, high=0.99
        )
        self.correlation_share = Decimal(str(share))
        self.score_clip = float_option(given, "score_clip", default=DEFAULT_SCORE_CLIP, low=0.5, high=5.0)
        self.ledger = PrivacyLedger()

    def epsilon_spent(self) -> Decimal:
        """Exactly the epsilon this instance's mechanisms consumed (0 before a run)."""
        return self.ledger.total()

    @property
    def privacy_statement(self) -> str:
        parts = "; ".join(
            f"{e.step}: {e.mechanism} mechanism, epsilon {e.epsilon}, L1 sensitivity {e.sensitivity:g}"
            for e in self.ledger.entries
        )
        return (
            f"epsilon-differential privacy (delta = 0) for adding or removing one record, "
            f"epsilon spent {self.epsilon_spent()} of {self.epsilon} requested, by sequential "
            f"composition of: {parts or 'nothing yet'}. Bounds and categories are the steward's "
            "declarations, not read from the data."
        )

    def fit_sample(
        self,
        frame: pd.DataFrame,
        *,
        columns: list[ColumnSpec],
        rows: int,
        seed: int,
        progress: ProgressFn,
    ) -> pd.DataFrame:
        if self.ledger.entries:
            raise RuntimeError("This DP synthesizer has already spent its budget; create a new one per job.")
        # Every refusal happens here, before any mechanism sees the data: a refused job spends nothing.
        domains = table_domain(
            columns, bins=self.bins, integer_columns=self.integer_columns, other_category=self.other_category
        )
        marginal_eps, correlation_eps = (
            split_epsilon(self.epsilon, self.correlation_share) if len(domains) > 1 else (self.epsilon, None)
        )
        progress(0.05, "mapping records into the declared domain")
        codes = np.column_stack([d.encode(frame[d.name]) for d in domains])
        with privacy_leaks_are_errors():
            marginals = noisy_marginals(domains, codes, marginal_eps, self.ledger)
            progress(0.4, "noisy marginals released")
            correlation = np.eye(1)
            if correlation_eps is not None:
                correlation = noisy_correlation(
                    codes, marginals, clip=self.score_clip, epsilon=correlation_eps, ledger=self.ledger
                )
            progress(0.7, "noisy correlations released")
        del codes  # nothing below may look at the data
        synthetic = sample_copula(domains, marginals, correlation, rows=rows, seed=seed)
        progress(1.0, "sampled")
        return synthetic

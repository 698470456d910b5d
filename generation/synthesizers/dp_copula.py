"""`dp_copula`: a differentially private Gaussian copula built on diffprivlib mechanisms.

Guarantee: pure epsilon-DP (delta = 0) with respect to adding or removing one unit, for exactly
the requested epsilon, by sequential composition of two mechanisms, three when missingness
patterns are modelled (docs/synthesizers.md has the full argument). The unit is one record, or one
patient when the job passes the entity column's values: each patient then keeps at most
k = `max_rows_per_entity` rows (dp_base) and every sensitivity below is multiplied by k (k rows
change each column's histogram by at most k, and each pairwise sum by at most k c^2).

0. The split. With two or more DECLARED-nullable columns, epsilon_p = floor(epsilon x 1/4)
   (PATTERN_SHARE, in micro-epsilon, at least 1; `pattern_split`) goes to the missingness patterns
   (step P) and the rest, epsilon' = epsilon - epsilon_p, is split between steps 1 and 2 as below.
   With fewer nullable columns (one column's missing rate is its marginal's missing cell), or an
   epsilon under 3 micro-epsilon, epsilon' = epsilon and step P does not run.
   epsilon_m + epsilon_p + epsilon_c = epsilon exactly; the ledger and the privacy statement list
   the three measurements ("marginals", "missingness patterns", "correlations").
1. Marginals, epsilon_m = epsilon' - epsilon_c. Every column's histogram over its DECLARED cells
   (dp_domain) is one vector; one record adds 1 to at most one cell of each column, so the
   concatenated histogram of d columns has L1 sensitivity d. Each count gets discrete noise from
   diffprivlib's Geometric mechanism with sensitivity d and epsilon_m (coordinate-wise geometric
   noise at scale d/epsilon_m is the vector geometric mechanism: epsilon_m-DP for the whole vector).
   Each noisy histogram is projected onto the nearest distribution (norm-sub): post-processing.
P. Missingness patterns, epsilon_p (measured between steps 1 and 2; step 2 uses its output). Why: per-column
   missing cells drawn through the copula lose which cells are missing TOGETHER (a lab panel
   missing as a block came out as scattered gaps; the gate's pattern similarity was 0.05-0.26 on
   pbc). The declared-nullable columns, in declared order, form G groups of at most
   missingness.MAX_GROUP_COLUMNS (20) (missingness.declared_pattern_groups); each group's domain is all 2^g subsets of its columns,
   from the declarations only, never from the patterns seen. Each record falls in exactly one
   pattern cell per group (a function of its own cells), so one unit moves the G histograms by at
   most G k in L1: geometric noise at sensitivity G k and epsilon_p (missingness
   .noisy_pattern_counts). Dropping cells below a public threshold set by that noise scale and
   the number of cells, and normalising, is post-processing (missingness.thresholded_distribution).
2. Correlations, epsilon_c = floor(epsilon' * correlation_share) (micro-epsilon). Each record's
   value in column j becomes a normal score z_j that is a function of that record's cell and of the
   RELEASED marginals only (the mean of a standard normal over the cell's quantile interval),
   clipped to [-c, c]; a record counting nowhere in j scores 0. The released statistic is the vector
   of sums S_jk = sum_i z_ij z_ik over the d(d-1)/2 column pairs. Adding or removing one record
   changes each S_jk by z_j z_k, |z_j z_k| <= c^2, so each sum has sensitivity c^2 (L1 over all
   sums: c^2 d(d-1)/2). Each sum is noised by diffprivlib's Snapping mechanism (Mironov's
   floating-point-safe Laplace) with sensitivity c^2 and epsilon_c / P (P = d(d-1)/2 sums, the
   per-sum share rounded down so that P shares add up to at most epsilon_c exactly): the same noise
   scale as the vector Laplace mechanism, accounted by basic composition over the P sums. Snapping
   clamps its input to public bounds, +/- c^2 x 10^9 (a row count no table here reaches), and
   rounds its output to a power of two; neither is read from the data. Turning the sums into a
   correlation matrix (dividing by the noisy row count from step 1, centring with the score
   moments implied by the released marginals, projecting to the nearest valid correlation matrix)
   is post-processing. Because step 2 is chosen after steps 1 and P are released, this is adaptive
   sequential composition, which holds for pure DP: epsilon_m + epsilon_p + epsilon_c = epsilon.
   With patterns, the d columns are scored against their released distributions over VALUE cells
   (a missing cell scores 0, like a record counting nowhere) and each pattern group is one more
   dimension, scored by its cell under the released pattern distribution (cells ordered by how
   many columns are missing): (d + G)(d + G - 1)/2 sums, same sensitivity c^2 k each.

Sampling (post-processing, seeded by the job's seed): Z ~ N(0, R), U = Phi(Z), each U read through
the column's released CDF to a cell; a numeric value is placed inside its bin by where U falls in
the cell's CDF interval. With patterns, each group's U picks the row's pattern, the columns' U pick
value cells, and the cells the pattern says are missing are blanked: a column declared
non-nullable is in no group and has no missing cell, so it is never blanked. The mechanisms' noise
is NOT seeded from the job seed, which is recorded on the receipt: a known seed would let anyone
subtract the noise. diffprivlib then draws from
`secrets.SystemRandom`. So the same seed does not reproduce a DP release; a new draw of noise is a
new release and spends new budget. `released_state()` saves the noisy counts, the noisy pattern
cells kept by the threshold with their probabilities (`missing_patterns`; a state saved before
patterns were modelled has none and samples as it did then), and the noisy sums (and nothing else from the
data); `from_released_state` rebuilds the marginals and the correlation from them, so a retried
job samples again without reading the data or spending anything.
"""

from __future__ import annotations

import functools
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

from generation.synthesizers.base import ProgressFn
from generation.synthesizers.dp_base import DPSynthesizer, library_version
from generation.synthesizers.dp_budget import (
    MICRO,
    PrivacyLedger,
    mechanism_epsilon,
    mechanism_epsilon_each,
    split_epsilon,
)
from generation.synthesizers.dp_domain import NOWHERE, ColumnDomain
from generation.synthesizers.missingness import (
    PatternGroup,
    ReleasedPatterns,
    declared_pattern_groups,
    laplace_threshold,
    missing_flags,
    noisy_pattern_counts,
)
from generation.synthesizers.options import float_option

DEFAULT_BINS, MAX_BINS = 20, 200
DEFAULT_CORRELATION_SHARE = 0.5
PATTERN_SHARE = Decimal("0.25")  # of epsilon, for the missingness patterns (when they are modelled)
DEFAULT_SCORE_CLIP = 2.0
_EIGEN_FLOOR = 1e-6  # keeps the projected correlation matrix positive definite (Cholesky)
SUM_ROWS_BOUND = 10**9  # Snapping's public clamp: |S_jk| <= c^2 x this many rows


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


def noisy_counts(
    domains: list[ColumnDomain], codes: np.ndarray, epsilon: Decimal, ledger: PrivacyLedger, *, k: int = 1
) -> list[np.ndarray]:
    """Step 1: discrete (geometric) noise on every declared cell count."""
    from diffprivlib.mechanisms import Geometric

    # One unit (k rows at most), one cell per row and column: the whole vector moves by <= d k in L1.
    sensitivity = len(domains) * k
    mechanism = Geometric(epsilon=mechanism_epsilon(epsilon), sensitivity=sensitivity)
    ledger.record(  # spent once the data is touched
        "marginals",
        "Geometric (two-sided geometric, integer counts)",
        epsilon,
        sensitivity,
        library="diffprivlib",
        version=library_version("diffprivlib"),
    )
    released = []
    for j, domain in enumerate(domains):
        column = codes[:, j]
        counts = np.bincount(column[column != NOWHERE], minlength=domain.cells)
        released.append(np.array([mechanism.randomise(int(count)) for count in counts], dtype=np.int64))
    return released


def marginals_from_counts(counts: list[np.ndarray]) -> list[Marginal]:
    """Post-processing: negative noisy counts set to 0, then normalised."""
    return [_normalised(np.asarray(c, dtype=np.int64)) for c in counts]


def _normalised(noisy: np.ndarray) -> Marginal:
    """Post-processing of one noisy histogram: the nearest distribution (Euclidean projection onto
    the simplex scaled to the noisy total, "norm-sub": subtract one threshold from every count and
    drop what falls below 0). Plain clipping at 0 would leave every empty cell the positive half
    of its noise; the projection removes that mass evenly."""
    counts = noisy.astype(float)
    total = float(counts.sum())
    if total <= 0:  # all noise: nothing learnt, so no cell is preferred
        return Marginal(np.full(len(counts), 1.0 / len(counts)), 0.0)
    ordered = np.sort(counts)[::-1]
    cumulative = np.cumsum(ordered) - total
    index = np.arange(1, len(counts) + 1)
    rho = int(np.flatnonzero(ordered - cumulative / index > 0)[-1])
    threshold = cumulative[rho] / (rho + 1)
    kept = np.maximum(counts - threshold, 0.0)
    return Marginal(kept / kept.sum(), total)


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


def normal_scores(codes: np.ndarray, marginals: list[Marginal], clip: float) -> np.ndarray:
    """Each record's clipped normal score per column (0 where it counts nowhere)."""
    scores = [cell_scores(m, clip) for m in marginals]
    return np.column_stack(
        [np.where(codes[:, j] == NOWHERE, 0.0, s[np.maximum(codes[:, j], 0)]) for j, s in enumerate(scores)]
    )


def noisy_correlation_sums(
    codes: np.ndarray,
    marginals: list[Marginal],
    *,
    clip: float,
    epsilon: Decimal,
    ledger: PrivacyLedger,
    k: int = 1,
) -> dict[tuple[int, int], float]:
    """Step 2: Snapping (floating-point-safe Laplace) noise on the pairwise sums of clipped normal
    scores, each sum with sensitivity k c^2 and an equal share of epsilon_c."""
    return noised_sums(normal_scores(codes, marginals, clip), clip=clip, epsilon=epsilon, ledger=ledger, k=k)


def noised_sums(
    z: np.ndarray, *, clip: float, epsilon: Decimal, ledger: PrivacyLedger, k: int = 1
) -> dict[tuple[int, int], float]:
    """Snapping noise on every pairwise sum of the columns of `z` (scores already in [-clip, clip])."""
    from diffprivlib.mechanisms import Snapping

    pairs = list(itertools.combinations(range(z.shape[1]), 2))
    sensitivity = clip**2 * k
    bound = clip**2 * SUM_ROWS_BOUND
    mechanism = Snapping(
        epsilon=mechanism_epsilon_each(epsilon, len(pairs)),
        sensitivity=sensitivity,
        lower=-bound,
        upper=bound,
    )
    ledger.record(
        "correlations",
        f"Snapping (floating-point-safe Laplace), {len(pairs)} sums, epsilon split equally",
        epsilon,
        sensitivity * len(pairs),
        library="diffprivlib",
        version=library_version("diffprivlib"),
    )
    return {(j, m): float(mechanism.randomise(float(z[:, j] @ z[:, m]))) for j, m in pairs}


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
    uniform = copula_uniforms(correlation, rows=rows, seed=seed)
    columns = {}
    for j, (domain, marginal) in enumerate(zip(domains, marginals, strict=True)):
        cells, within = cells_from_uniform(marginal, uniform[:, j])
        columns[domain.name] = domain.decode(cells, within)
    return pd.DataFrame(columns)


def copula_uniforms(correlation: np.ndarray, *, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((rows, len(correlation))) @ np.linalg.cholesky(correlation).T
    return np.minimum(norm.cdf(latent), np.nextafter(1.0, 0.0))


def cells_from_uniform(marginal: Marginal, uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each U read through the released CDF to a cell, and where in the cell it fell (in [0, 1))."""
    lower, upper = marginal.cdf
    cells = np.searchsorted(upper, uniform, side="right")
    mass = np.maximum(marginal.probabilities[cells], 1e-300)
    return cells, np.clip((uniform - lower[cells]) / mass, 0.0, np.nextafter(1.0, 0.0))


class DPCopulaSynthesizer(DPSynthesizer):
    """See the module docstring. One instance runs once: a second fit would spend the budget again."""

    name: ClassVar[str] = "dp_copula"
    label: ClassVar[str] = "DP Gaussian copula (diffprivlib), epsilon-DP"
    flavour: ClassVar[str] = "pure epsilon-DP (delta = 0)"
    default_bins: ClassVar[int] = DEFAULT_BINS
    max_bins: ClassVar[int] = MAX_BINS
    extra_options: ClassVar[tuple[str, ...]] = ("correlation_share", "score_clip")

    def _read_options(self, given: dict[str, Any]) -> None:
        share = float_option(
            given, "correlation_share", default=DEFAULT_CORRELATION_SHARE, low=0.01, high=0.99
        )
        self.correlation_share = Decimal(str(share))
        self.score_clip = float_option(given, "score_clip", default=DEFAULT_SCORE_CLIP, low=0.5, high=5.0)
        self.counts: list[np.ndarray] = []
        self.sums: dict[tuple[int, int], float] = {}
        self.patterns: ReleasedPatterns | None = None
        self.pattern_counts: list[np.ndarray] = []

    def settings(self) -> dict[str, Any]:
        # `delta` is accepted for a uniform interface but unused: this synthesizer spends delta = 0.
        return super().settings() | {
            "correlation_share": str(self.correlation_share),
            "score_clip": self.score_clip,
        }

    def _pattern_groups(self) -> list[PatternGroup]:
        """From the declarations only: which columns may be missing, never which are."""
        return declared_pattern_groups([d.name for d in self.domains if d.spec.nullable])

    def _measure(self, codes: np.ndarray, progress: ProgressFn) -> None:
        k = self.rows_per_unit
        groups = self._pattern_groups()
        epsilon, pattern_eps = pattern_split(self.epsilon) if groups else (self.epsilon, None)
        marginal_eps, correlation_eps = (
            split_epsilon(epsilon, self.correlation_share) if len(self.domains) > 1 else (epsilon, None)
        )
        with privacy_leaks_are_errors():
            self.counts = noisy_counts(self.domains, codes, marginal_eps, self.ledger, k=k)
            progress(0.4, "noisy marginals released")
            if pattern_eps is not None:
                cells = np.column_stack([g.cell_codes(missing_flags(codes, self.domains, g)) for g in groups])
                # Kept in memory only (tests read it); the release keeps the thresholded cells.
                self.pattern_counts = noisy_pattern_counts(groups, cells, pattern_eps, self.ledger, k=k)
                scale = len(groups) * k / float(pattern_eps)
                self.patterns = ReleasedPatterns.from_noisy(
                    groups, self.pattern_counts, functools.partial(laplace_threshold, scale)
                )
                progress(0.55, "noisy missingness patterns released")
            if correlation_eps is not None:
                self.sums = noised_sums(
                    self._scores(codes, marginals_from_counts(self.counts)),
                    clip=self.score_clip,
                    epsilon=correlation_eps,
                    ledger=self.ledger,
                    k=k,
                )
            progress(0.7, "noisy correlations released")

    def _scores(self, codes: np.ndarray, marginals: list[Marginal]) -> np.ndarray:
        """Each record's clipped normal scores: one per column, then one per pattern group. With
        patterns, a column is scored against its released distribution of present values and a
        missing cell scores 0 (its missingness is in the group's score). Each score is a function of
        the record and released outputs only, in [-c, c]: the sensitivity argument is unchanged."""
        if self.patterns is None:
            return normal_scores(codes, marginals, self.score_clip)
        present = codes.copy()
        for j, domain in enumerate(self.domains):
            if domain.missing_cell is not None:
                present[:, j] = np.where(codes[:, j] == domain.missing_cell, NOWHERE, codes[:, j])
        values = normal_scores(
            present,
            [value_marginal(m, d) for m, d in zip(marginals, self.domains, strict=True)],
            self.score_clip,
        )
        groups = self.patterns.groups
        cells = np.column_stack([g.cell_codes(missing_flags(codes, self.domains, g)) for g in groups])
        patterns = normal_scores(cells, pattern_marginals(self.patterns, marginals), self.score_clip)
        return np.column_stack([values, patterns])

    def _released_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "marginal_counts": [[int(v) for v in c] for c in self.counts],
            "correlation_sums": [[j, m, value] for (j, m), value in sorted(self.sums.items())],
        }
        if self.patterns is not None:
            payload["missing_patterns"] = self.patterns.to_json()
        return payload

    def _restore_payload(self, payload: dict[str, Any]) -> None:
        self.counts = [np.asarray(c, dtype=np.int64) for c in payload["marginal_counts"]]
        if [len(c) for c in self.counts] != [d.cells for d in self.domains]:
            raise ValueError("The saved DP state does not match its declared domain.")
        self.sums = {(int(j), int(m)): float(value) for j, m, value in payload["correlation_sums"]}
        # A state saved before patterns were modelled has none: it samples as it did then.
        saved = payload.get("missing_patterns")
        nullable = {d.name for d in self.domains if d.spec.nullable}
        self.patterns = None if saved is None else ReleasedPatterns.from_json(saved, nullable)

    def _sample(self, *, rows: int, seed: int) -> pd.DataFrame:
        marginals = marginals_from_counts(self.counts)
        if self.patterns is not None:
            return self._sample_with_patterns(marginals, rows=rows, seed=seed)
        correlation = np.eye(len(self.domains))
        if self.sums:
            scores = [cell_scores(m, self.score_clip) for m in marginals]
            correlation = _correlation_from_sums(self.sums, marginals, scores)
        return sample_copula(self.domains, marginals, correlation, rows=rows, seed=seed)

    def _sample_with_patterns(self, marginals: list[Marginal], *, rows: int, seed: int) -> pd.DataFrame:
        """Post-processing: one copula over the present values and the pattern groups; each row's
        sampled patterns then blank its cells (only declared-nullable columns are in a group)."""
        assert self.patterns is not None
        values = [value_marginal(m, d) for m, d in zip(marginals, self.domains, strict=True)]
        dims = values + pattern_marginals(self.patterns, marginals)
        correlation = np.eye(len(dims))
        if self.sums:
            scores = [cell_scores(m, self.score_clip) for m in dims]
            # Sums over records missing in a column (scored 0 there) are divided by all records,
            # not by those present: dividing by the released presence share was unbiased but
            # multiplied the noise, and lost more pair-trend fidelity than it gained (measured).
            correlation = _correlation_from_sums(self.sums, dims, scores)
        uniform = copula_uniforms(correlation, rows=rows, seed=seed)
        cells, within = zip(
            *(cells_from_uniform(m, uniform[:, j]) for j, m in enumerate(values)), strict=True
        )
        cells = np.column_stack(cells)
        index = {d.name: j for j, d in enumerate(self.domains)}
        for g, group in enumerate(self.patterns.groups):
            pattern, _ = cells_from_uniform(dims[len(values) + g], uniform[:, len(values) + g])
            missing = group.bits()[pattern]
            for b, name in enumerate(group.columns):
                j = index[name]
                gap = self.domains[j].missing_cell
                assert gap is not None  # a group holds declared-nullable columns only
                cells[:, j] = np.where(missing[:, b], gap, cells[:, j])
        return pd.DataFrame({d.name: d.decode(cells[:, j], within[j]) for j, d in enumerate(self.domains)})


def pattern_split(epsilon: Decimal) -> tuple[Decimal, Decimal | None]:
    """(epsilon', epsilon_p): floor(epsilon x PATTERN_SHARE) micro-epsilon, at least 1, for the
    patterns, when at least 2 micro-epsilon are left for the marginals and correlations. Below that
    (epsilon under 3 micro-epsilon) patterns are not modelled: a choice made from epsilon alone."""
    micro = int(epsilon / MICRO)
    part = max(1, int(Decimal(micro) * PATTERN_SHARE))
    if micro - part < 2:
        return epsilon, None
    return Decimal(micro - part) * MICRO, Decimal(part) * MICRO


def pattern_marginals(patterns: ReleasedPatterns, marginals: list[Marginal]) -> list[Marginal]:
    """The released pattern distributions, with the columns' median noisy total (none is saved)."""
    total = float(np.median([m.noisy_total for m in marginals]))
    return [Marginal(p, total) for p in patterns.distributions()]


def value_marginal(marginal: Marginal, domain: ColumnDomain) -> Marginal:
    """Post-processing: a column's released distribution over its value cells only (the missing
    cell's mass is the patterns' business). No mass left on any value: uniform over the values."""
    if domain.missing_cell is None:
        return marginal
    values = marginal.probabilities[: domain.value_cells]
    if values.sum() <= 0:
        values = np.ones(domain.value_cells)
    return Marginal(np.append(values / values.sum(), 0.0), marginal.noisy_total)

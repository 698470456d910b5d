"""`dp_copula`: a differentially private Gaussian copula built on diffprivlib mechanisms.

Guarantee: pure epsilon-DP (delta = 0) with respect to adding or removing one unit, for exactly
the requested epsilon, by sequential composition of two mechanisms, three when missingness
patterns are modelled (docs/synthesizers.md has the full argument). The unit is one record, or one
patient when the job passes the entity column's values: each patient then keeps at most
k = `max_rows_per_entity` rows (dp_base) and every sensitivity below is multiplied by k (k rows
change each column's histogram by at most k, and each pairwise sum by at most k times its per-record bound).

0. The split. With two or more DECLARED-nullable columns, epsilon_p = floor(epsilon x 1/4)
   (PATTERN_SHARE; WIDE_PATTERN_SHARE, 0.4, when a group has 8 declared-nullable columns or more;
   in micro-epsilon, at least 1; `pattern_split`) goes to the missingness patterns
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
   With a declared outcome and more than 5 columns, the outcome's histogram is a second measurement
   with OUTCOME_MARGINAL_SHARE of epsilon_m at sensitivity k, the others' at (d - 1) k with the rest.
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
   clipped to [-c, c]; a record counting nowhere in j scores 0. Scores are quantised to multiples of
   1/Q (SCORE_QUANTUM), |q_j| <= C = floor(cQ), and each record's vector is cut to an L1 norm of at
   most B (l1_bound: about 0.8 Q per dimension, scaled down toward 0 when above). The released
   statistics are integer sums S_jm = sum_i q_ij q_im in two measurements (`noised_sums`): the
   priority pairs (the declared outcome's pairs and the pairs between pattern groups; one record
   moves them by at most C B + C^2 per pattern pair in L1) with PRIORITY_SHARE of epsilon_c, and the
   other pairs (sum_{j<m} |q_j q_m| <= B^2 / 2) with the rest; each sensitivity is also at most C^2
   per pair and is multiplied by k. Each vector gets diffprivlib's Geometric noise at its L1
   sensitivity: the vector geometric mechanism, integers in and out, as in step 1. When the other
   pairs' noise would exceed MAX_OTHER_NOISE per correlation at the released count, they are not
   measured and the priority pairs get all of epsilon_c (a choice from released values only).
   Turning the sums into a correlation matrix (dividing by the noisy row count from step 1,
   centring with the score moments implied by the released marginals and dividing by their
   variances, shrinking each by SHRINK noise standard deviations, projecting to the nearest valid
   correlation matrix) is post-processing. Because step 2 is chosen after steps 1 and P are
   released, this is adaptive sequential composition, which holds for pure DP:
   epsilon_m + epsilon_p + epsilon_c = epsilon.
   With patterns, the d columns are scored against their released distributions over VALUE cells
   (a missing cell scores 0, like a record counting nowhere) and each pattern group is one more
   dimension, scored by its cell under the released pattern distribution (cells ordered by how
   many columns are missing): (d + G)(d + G - 1)/2 pairs over d + G dimensions.

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
from generation.synthesizers.dp_base import DPSynthesizer, recorded_geometric
from generation.synthesizers.dp_budget import (
    MICRO,
    PrivacyLedger,
    mechanism_epsilon,
    split_epsilon,
)
from generation.synthesizers.dp_domain import NOWHERE, ColumnDomain
from generation.synthesizers.missingness import (
    PatternGroup,
    ReleasedPatterns,
    declared_pattern_groups,
    laplace_threshold,
    missing_flags,
    nearest_correlation_matrix,
    noisy_pattern_counts,
)
from generation.synthesizers.options import float_option

DEFAULT_BINS, MAX_BINS = 20, 200
DEFAULT_CORRELATION_SHARE = 0.5
PATTERN_SHARE = Decimal("0.25")  # of epsilon, for the missingness patterns (when they are modelled)
# ... and when a pattern group has WIDE_PATTERN_GROUP declared-nullable columns or more (2^8 = 256
# declared patterns and up): the threshold that keeps empty cells out grows with the cells and
# shrinks with epsilon, and on a gappy ICU table (SUPPORT2, 34 nullable columns in two groups of 17)
# a quarter of epsilon kept only the patterns of 45% of one group's rows (docs/synthesizers.md).
WIDE_PATTERN_SHARE = Decimal("0.4")
WIDE_PATTERN_GROUP = 8
DEFAULT_SCORE_CLIP = 2.0
_EIGEN_FLOOR = 1e-6  # keeps the projected correlation matrix positive definite (Cholesky)
SCORE_QUANTUM = 16  # scores are quantised to 1/16 so the pairwise sums are integers (geometric noise)
L1_PER_SCORE = 0.8  # the per-record L1 bound on the scores: 0.8 per dimension (E|Z| = 0.798)
PRIORITY_SHARE = Decimal("0.5")  # of the correlations' epsilon: the outcome's and the pattern groups' pairs
PRIORITY_STEP = "correlations with the outcome and among missingness patterns"  # its ledger step
MAX_OTHER_NOISE = 0.25  # above this noise per correlation, the non-priority pairs are not measured
# Of the marginals' epsilon, for the declared outcome's histogram alone (when the table has more
# than 1 / this many columns; below that an equal split gives it as much). Split equally over d
# columns, a rare outcome's count drowned: on a generated 18-column ICU table (4,000 rows, 2.6%
# 30-day deaths, epsilon 1) its noise scale was 48 against 104 deaths, and releases held 1.3% deaths.
OUTCOME_MARGINAL_SHARE = Decimal("0.2")
OUTCOME_MARGINAL_STEP = "marginal of the declared outcome"  # its ledger step
SHRINK = 1.5  # noisy correlations are shrunk toward 0 by this many noise standard deviations


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
    domains: list[ColumnDomain],
    codes: np.ndarray,
    epsilon: Decimal,
    ledger: PrivacyLedger,
    *,
    k: int = 1,
    outcome: int | None = None,
) -> list[np.ndarray]:
    """Step 1: discrete (geometric) noise on every declared cell count. With a declared `outcome`
    column (public) and more than 1 / OUTCOME_MARGINAL_SHARE columns, its histogram is a second
    measurement with that share of `epsilon` (sensitivity k) and the other columns' the first (d - 1)
    k: sequential composition, the two epsilons add up to `epsilon` exactly."""
    measurements: list[tuple[str, list[int], Decimal]] = [("marginals", list(range(len(domains))), epsilon)]
    if outcome is not None and len(domains) * OUTCOME_MARGINAL_SHARE > 1:
        rest, own = split_epsilon(epsilon, OUTCOME_MARGINAL_SHARE)
        others = [j for j in range(len(domains)) if j != outcome]
        measurements = [("marginals", others, rest), (OUTCOME_MARGINAL_STEP, [outcome], own)]
    released: dict[int, np.ndarray] = {}
    for step, columns, share in measurements:
        # One unit (k rows at most), one cell per row and column: the vector moves by <= |columns| k in L1.
        mechanism = recorded_geometric(
            ledger, step, "Geometric (two-sided geometric, integer counts)", share, len(columns) * k
        )
        for j in columns:
            column = codes[:, j]
            counts = np.bincount(column[column != NOWHERE], minlength=domains[j].cells)
            released[j] = np.array([mechanism.randomise(int(count)) for count in counts], dtype=np.int64)
    return [released[j] for j in range(len(domains))]


def released_rows(marginals: list[Marginal]) -> float:
    """The row count step 2 and sampling use: the median of the columns' noisy totals (released)."""
    return float(np.median([m.noisy_total for m in marginals]))


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


@dataclass(frozen=True)
class SumRelease:
    """Step 2's output: each pair's noisy sum of score products (in score units) and the standard
    deviation of its noise (public: a function of epsilon, the sensitivity and the quantum only)."""

    sums: dict[tuple[int, int], float]
    noise: dict[tuple[int, int], float]


def quantised_scores(z: np.ndarray, *, clip: float) -> tuple[np.ndarray, int, int]:
    """Scores as whole multiples of 1/SCORE_QUANTUM, |each| <= C = floor(clip x Q), and each row's
    L1 norm cut to at most B = l1_bound(dims, clip) by scaling the row down (rounding toward 0,
    so both bounds still hold). A function of the record and of released outputs only."""
    per_score = int(np.floor(clip * SCORE_QUANTUM))
    bound = l1_bound(z.shape[1], clip)
    q = np.clip(np.rint(z * SCORE_QUANTUM), -per_score, per_score).astype(np.int64)
    norms = np.abs(q).sum(axis=1)
    over = norms > bound
    if over.any():
        scaled = q[over].astype(float) * (bound / norms[over])[:, None]
        q[over] = np.trunc(scaled).astype(np.int64)
    return q, per_score, bound


def l1_bound(dims: int, clip: float) -> int:
    """The public per-record bound B on the L1 norm of the quantised score vector: L1_PER_SCORE
    (about the mean |Z| of a standard normal) per dimension, never more than every score at its
    clip. Rows above it are scaled down (quantised_scores); most rows are under it."""
    per_score = int(np.floor(clip * SCORE_QUANTUM))
    return int(min(per_score * dims, max(per_score, np.ceil(L1_PER_SCORE * SCORE_QUANTUM * dims))))


def noised_sums(
    z: np.ndarray,
    *,
    clip: float,
    epsilon: Decimal,
    ledger: PrivacyLedger,
    k: int = 1,
    outcome: int | None = None,
    pattern_dims: int = 0,
    rows: float | None = None,
) -> SumRelease:
    """Geometric noise on the pairwise sums of the quantised scores of the columns of `z` (scores
    already in [-clip, clip]): the vector geometric mechanism with the L1 sensitivity the row bounds
    give (module docstring, step 2). The priority pairs (the declared `outcome` dimension's d - 1
    pairs, and the pairs among the last `pattern_dims` dimensions, the missingness pattern groups)
    are one measurement with PRIORITY_SHARE of epsilon, the other pairs a second with the rest,
    unless that second one would be noise: when, at `rows` records (the released noisy count), its
    noise alone would put a standard deviation above MAX_OTHER_NOISE on a correlation, the other
    pairs are not measured (their correlations stay 0) and the priority pairs get all of epsilon.
    Without priority pairs, all pairs are one measurement with all of epsilon."""
    q, per_score, bound = quantised_scores(z, clip=clip)
    dims = q.shape[1]
    pairs = list(itertools.combinations(range(dims), 2))
    first_pattern = dims - pattern_dims

    def priority(pair: tuple[int, int]) -> bool:
        return outcome in pair or pair[0] >= first_pattern

    chosen = [p for p in pairs if priority(p)]
    others = [p for p in pairs if not priority(p)]
    all_pairs = ("correlations", pairs, epsilon, min(per_score**2 * len(pairs), bound * bound // 2))
    if not chosen or not others:
        groups = [all_pairs]
    else:
        first_sensitivity = min(
            per_score**2 * len(chosen), _priority_bound(chosen, outcome, per_score, bound)
        )
        others_noise = (
            _correlation_noise(bound * bound // 2, epsilon * (1 - PRIORITY_SHARE), rows)
            if rows is not None
            else 0.0
        )
        if others_noise > MAX_OTHER_NOISE:
            groups = [(PRIORITY_STEP, chosen, epsilon, first_sensitivity)]
        elif epsilon < 2 * MICRO:
            groups = [all_pairs]
        else:
            rest, first = split_epsilon(epsilon, PRIORITY_SHARE)
            groups = [
                (PRIORITY_STEP, chosen, first, first_sensitivity),
                ("correlations", others, rest, min(per_score**2 * len(others), bound * bound // 2)),
            ]
    sums: dict[tuple[int, int], float] = {}
    noise: dict[tuple[int, int], float] = {}
    unit = float(SCORE_QUANTUM) ** 2
    for step, subset, share, per_row in groups:
        sums_q, std_q = _geometric_sums(q, subset, share, per_row * k, ledger, step)
        for pair, value in zip(subset, sums_q, strict=True):
            sums[pair] = value / unit
            noise[pair] = std_q / unit
    return SumRelease(sums, noise)


def _priority_bound(chosen: list[tuple[int, int]], outcome: int | None, per_score: int, bound: int) -> int:
    """|z_o| sum_j |z_j| <= C B over the outcome's pairs, plus C^2 for each pair of pattern groups."""
    among_patterns = sum(1 for p in chosen if outcome not in p)
    return (per_score * bound if outcome is not None else 0) + per_score**2 * among_patterns


def _correlation_noise(sensitivity: int, epsilon: Decimal, rows: float) -> float:
    """The standard deviation a measurement's noise puts on one correlation (scores of variance
    about 0.6, Laplace-sized noise): public, from the sensitivity, epsilon and the released count."""
    scale = sensitivity / float(SCORE_QUANTUM) ** 2 / max(float(epsilon), 1e-12)
    return float(np.sqrt(2) * scale / (max(rows, 1.0) * 0.6))


def _geometric_sums(
    q: np.ndarray,
    pairs: list[tuple[int, int]],
    epsilon: Decimal,
    sensitivity: int,
    ledger: PrivacyLedger,
    step: str,
) -> tuple[list[int], float]:
    """The integer sums of `pairs` with two-sided geometric noise at L1 sensitivity `sensitivity`
    and `epsilon` (diffprivlib, integer in and out); also the noise's standard deviation."""
    sensitivity = max(int(sensitivity), 1)
    mechanism = recorded_geometric(
        ledger,
        step,
        f"Geometric (two-sided geometric, integer sums), {len(pairs)} sums of quantised score products",
        epsilon,
        sensitivity,
    )
    released = [int(mechanism.randomise(int(q[:, j] @ q[:, m]))) for j, m in pairs]
    alpha = float(np.exp(-mechanism_epsilon(epsilon) / sensitivity))
    return released, float(np.sqrt(2 * alpha) / (1 - alpha))


def _correlation_from_sums(
    sums: Mapping[tuple[int, int], float],
    marginals: list[Marginal],
    scores: list[np.ndarray],
    noise: Mapping[tuple[int, int], float] | None = None,
) -> np.ndarray:
    """Post-processing only: uses released sums, released marginals and the public noise scales.
    With `noise`, each estimate is shrunk toward 0 by SHRINK noise standard deviations (soft
    thresholding): a pair the noise swamps adds nothing instead of a random correlation that the
    projection then spreads over every other pair, the outcome's included."""
    n = max(1.0, released_rows(marginals))
    mean = np.array([m.probabilities @ s for m, s in zip(marginals, scores, strict=True)])
    var = np.array([m.probabilities @ s**2 for m, s in zip(marginals, scores, strict=True)]) - mean**2
    matrix = np.eye(len(marginals))
    for (j, k), total in sums.items():
        # cov(E[Z_j | cell], E[Z_k | cell]) = rho var_j var_k to first order in the latent rho (Mehler's
        # expansion; var = the score variance, 1 for a continuous column, 0.64 for a 50/50 binary one):
        # dividing by var_j var_k, not by their square root, undoes what coarse cells attenuate
        # (a binary outcome's correlations came out at 0.6-0.8 of the real ones).
        spread = max(var[j], 0.0) * max(var[k], 0.0)
        r = (total / n - mean[j] * mean[k]) / spread if spread > 1e-9 else 0.0
        if noise is not None and spread > 1e-9:
            r = float(np.sign(r)) * max(abs(r) - SHRINK * noise.get((j, k), 0.0) / (n * spread), 0.0)
        matrix[j, k] = matrix[k, j] = np.clip(r, -1.0, 1.0)
    return nearest_correlation(matrix)


def nearest_correlation(matrix: np.ndarray) -> np.ndarray:
    """Clip eigenvalues to a small positive floor and rescale to a unit diagonal."""
    return nearest_correlation_matrix(matrix, floor=_EIGEN_FLOOR)


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
        # Each sum's noise standard deviation (public); empty for a state saved before it was kept.
        self.sum_noise: dict[tuple[int, int], float] = {}
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

    def _outcome_dimension(self) -> int | None:
        """The declared outcome's column (public: the steward's declaration), if exactly one."""
        flagged = [j for j, d in enumerate(self.domains) if d.spec.outcome]
        return flagged[0] if len(flagged) == 1 else None

    def _measure(self, codes: np.ndarray, progress: ProgressFn) -> None:
        k = self.rows_per_unit
        groups = self._pattern_groups()
        share = (
            WIDE_PATTERN_SHARE
            if max((len(g.columns) for g in groups), default=0) >= WIDE_PATTERN_GROUP
            else None
        )
        epsilon, pattern_eps = pattern_split(self.epsilon, share) if groups else (self.epsilon, None)
        marginal_eps, correlation_eps = (
            split_epsilon(epsilon, self.correlation_share) if len(self.domains) > 1 else (epsilon, None)
        )
        with privacy_leaks_are_errors():
            self.counts = noisy_counts(
                self.domains, codes, marginal_eps, self.ledger, k=k, outcome=self._outcome_dimension()
            )
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
                marginals = marginals_from_counts(self.counts)
                released = noised_sums(
                    self._scores(codes, marginals),
                    clip=self.score_clip,
                    epsilon=correlation_eps,
                    ledger=self.ledger,
                    k=k,
                    outcome=self._outcome_dimension(),
                    pattern_dims=len(self.patterns.groups) if self.patterns is not None else 0,
                    rows=released_rows(marginals),
                )
                self.sums, self.sum_noise = released.sums, released.noise
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
            "correlation_noise": [[j, m, value] for (j, m), value in sorted(self.sum_noise.items())],
        }
        if self.patterns is not None:
            payload["missing_patterns"] = self.patterns.to_json()
        return payload

    def _restore_payload(self, payload: dict[str, Any]) -> None:
        self.counts = [np.asarray(c, dtype=np.int64) for c in payload["marginal_counts"]]
        if [len(c) for c in self.counts] != [d.cells for d in self.domains]:
            raise ValueError("The saved DP state does not match its declared domain.")
        self.sums = {(int(j), int(m)): float(value) for j, m, value in payload["correlation_sums"]}
        noise = payload.get("correlation_noise", [])
        self.sum_noise = {(int(j), int(m)): float(value) for j, m, value in noise}
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
            correlation = _correlation_from_sums(self.sums, marginals, scores, self.sum_noise or None)
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
            correlation = _correlation_from_sums(self.sums, dims, scores, self.sum_noise or None)
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


def pattern_split(epsilon: Decimal, share: Decimal | None = None) -> tuple[Decimal, Decimal | None]:
    """(epsilon', epsilon_p): floor(epsilon x share) micro-epsilon (PATTERN_SHARE unless given; a
    choice made from the declarations only), at least 1, for the
    patterns, when at least 2 micro-epsilon are left for the marginals and correlations. Below that
    (epsilon under 3 micro-epsilon) patterns are not modelled: a choice made from epsilon alone."""
    micro = int(epsilon / MICRO)
    part = max(1, int(Decimal(micro) * (PATTERN_SHARE if share is None else share)))
    if micro - part < 2:
        return epsilon, None
    return Decimal(micro - part) * MICRO, Decimal(part) * MICRO


def pattern_marginals(patterns: ReleasedPatterns, marginals: list[Marginal]) -> list[Marginal]:
    """The released pattern distributions, with the columns' median noisy total (none is saved)."""
    total = released_rows(marginals)
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

"""What `dp_mst` and `dp_aim` share: SmartNoise's graphical-model synthesizers over the DECLARED domain.

Both measure marginals of the table with Gaussian noise, choose which to measure with the
exponential mechanism, and fit a graphical model to the noisy measurements (Private-PGM, `mbi`).
Budget: the requested (epsilon, delta) becomes rho-zCDP (SmartNoise's `cdp_rho`, an OpenDP binary
search); the mechanisms compose under zCDP; the result is (epsilon, delta)-DP.

What SynthGate changes in smartnoise-synth 1.0.8, and why (the installed source was read):
- Domain. SmartNoise's preprocessing learns categories from the data (LabelTransformer) and, unless
  given bounds, spends budget to estimate them. Here every column is first mapped to the cells of
  its declared domain (dp_domain), and the synthesizer gets a TableTransformer of LabelTransformers
  fitted on the declared cell numbers, not on the data: the cardinalities it sees are the declared
  ones (asserted), and the transformer spends nothing (its odometer is checked).
- Records with a value that counts in no declared cell (an undeclared category with no catch-all,
  a missing value in a non-nullable column) are left out: the models need a cell in every column,
  and leaving a record out depends on that record alone.
- Row count. MST passes the exact number of rows to Private-PGM as `known_total`, releasing it
  unprotected (fine for bounded DP, not for add/remove). Here it is never passed: the total is
  estimated from the noisy measurements. (AIM in 1.0.8 already leaves it out.)
- Randomness. Both draw the exponential mechanism from numpy's global generator (`np.random`, or
  `snsynth.utils.prng`, which is the same), which an earlier job in the worker may have seeded with
  its public seed. Here it is an OS-seeded generator. The Gaussian noise is OpenDP's discrete
  Gaussian on the integer counts (exact sampling, no floating-point attack surface).
- The patient unit. With k rows per patient, one unit moves a marginal by at most k in L2 and each
  quality score by at most k, so every mechanism runs at rho / k^2 of the budget (zCDP scales with
  the square of the sensitivity).
- Fit and sample are split. The noisy measurements (and, for MST, the selected cliques) are the
  released state; the model is re-estimated from them by mirror descent, which is post-processing,
  so a retried job can sample again without the data.
- MST's domain compression re-expressed the merged "rare cells" count with a scale factor but kept
  the unscaled query, biasing that cell; here the query carries the same factor (as in the reference
  implementation). This only touches post-processing.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.base import ProgressFn
from generation.synthesizers.dp_base import DPSynthesizer, library_version
from generation.synthesizers.dp_budget import mechanism_epsilon
from generation.synthesizers.dp_copula import privacy_leaks_are_errors
from generation.synthesizers.dp_domain import NOWHERE, ColumnDomain


def declared_transformer(domains: list[ColumnDomain]) -> Any:
    """LabelTransformers fitted on the declared cell numbers 0..cells-1 of each column, never on data."""
    from snsynth.transform import LabelTransformer, TableTransformer

    longest = max(d.cells for d in domains)
    cells = pd.DataFrame({d.name: [i % d.cells for i in range(longest)] for d in domains})
    transformer = TableTransformer([LabelTransformer(nullable=False) for _ in domains])
    transformer.fit(cells)
    if transformer.cardinality != [d.cells for d in domains]:
        raise RuntimeError("SmartNoise's transformer does not match the declared domain.")
    return transformer


def discrete_gaussian(counts: np.ndarray, sigma: float) -> tuple[np.ndarray, Any]:
    """OpenDP's discrete Gaussian on an integer count vector; returns (noisy counts, measurement)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), float(sigma)
    )
    noisy = np.asarray(measurement([int(v) for v in counts]), dtype=float)
    return noisy, measurement


def gaussian_rho(sigma: float, sensitivity: int) -> float:
    """rho of OpenDP's discrete Gaussian at this scale for an L2 change of `sensitivity`."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), float(sigma)
    )
    return float(measurement.map(sensitivity))


def exponential_mechanism(
    qualities: np.ndarray, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> int:
    """Index drawn with probability proportional to exp(epsilon q / (2 sensitivity)): epsilon-DP and
    epsilon^2/8-zCDP (bounded range). As smartnoise's, with an OS-seeded generator."""
    scores = 0.5 * epsilon / sensitivity * (qualities - qualities.max())
    p = np.exp(scores - np.logaddexp.reduce(scores))
    return int(rng.choice(len(p), p=p / p.sum()))


def measurement_to_json(m: Any) -> dict[str, Any]:
    return {
        "clique": list(m.clique),
        "stddev": float(m.stddev),
        "y": [float(v) for v in np.asarray(m.noisy_measurement)],
    }


def measurement_from_json(item: dict[str, Any]) -> Any:
    from mbi import LinearMeasurement

    return LinearMeasurement(np.asarray(item["y"], dtype=float), tuple(item["clique"]), float(item["stddev"]))


def estimate(sizes: dict[str, int], measurements: Sequence[Any], *, iters: int) -> Any:
    """Private-PGM's mirror descent on noisy measurements only (post-processing), total estimated."""
    from mbi import Domain, estimation, marginal_oracles

    domain = Domain(list(sizes), [sizes[name] for name in sizes])
    return estimation.mirror_descent(
        domain, list(measurements), iters=iters, marginal_oracle=marginal_oracles.message_passing_stable
    )


def sample_model(model: Any, attrs: Sequence[str], *, rows: int, seed: int) -> np.ndarray:
    """Cells drawn from the fitted model. mbi draws from numpy's global generator: seeded here with
    the public job seed, which is fine for post-processing (the noise is already in the model)."""
    np.random.seed(seed % 2**32)
    data = model.synthetic_data(rows=rows)
    cells = data.df[list(attrs)].to_numpy(dtype=np.int64)
    return cells[np.random.default_rng(seed).permutation(len(cells))]  # mbi emits rows in an order


@contextlib.contextmanager
def quiet() -> Any:
    """smartnoise prints diagnostics to stdout (AIM prints the width of the table)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Pandas dataframe inputs are deprecated")
        yield


# --- MST domain compression (a pure function of the noisy 1-way measurements) ------------------


def compress(one_way: Sequence[Any], sizes: dict[str, int]) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Cells whose noisy 1-way count is below 3 sigma are merged into one cell per column.

    Returns the kept cells per column (a boolean mask) and the 1-way measurements re-expressed over
    the compressed domain; the merged cell's measurement is scaled by 1/sqrt(merged + 1), and so is
    its query, so the measurement is unbiased with noise at most sigma (reference implementation).
    """
    from mbi import LinearMeasurement

    supports: dict[str, np.ndarray] = {}
    measurements = []
    for m in one_way:
        col = m.clique[0]
        y = np.asarray(m.noisy_measurement, dtype=float)
        sup = y >= 3 * m.stddev
        if sup.sum() < 2 or sup.all():
            supports[col] = np.ones(sizes[col], dtype=bool)
            measurements.append(m)
            continue
        supports[col] = sup
        scale = 1.0 / math.sqrt(float((~sup).sum()) + 1.0)
        y2 = np.append(y[sup], y[~sup].sum() * scale)
        factor = np.ones(len(y2))
        factor[-1] = scale
        measurements.append(LinearMeasurement(y2, m.clique, m.stddev, query=_scaled_query(factor)))
    return supports, measurements


def _scaled_query(factor: np.ndarray) -> Any:
    import jax.numpy as jnp

    weights = jnp.asarray(factor)

    def query(f: Any) -> Any:
        return f.datavector(flatten=True) * weights

    return query


def compressed_sizes(supports: dict[str, np.ndarray]) -> dict[str, int]:
    return {col: int(sup.sum()) + (0 if sup.all() else 1) for col, sup in supports.items()}


def compress_codes(codes: np.ndarray, attrs: Sequence[str], supports: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty_like(codes)
    for j, col in enumerate(attrs):
        sup = supports[col]
        mapping = np.full(len(sup), int(sup.sum()), dtype=np.int64)
        mapping[sup] = np.arange(int(sup.sum()))
        out[:, j] = mapping[codes[:, j]]
    return out


def expand_codes(
    codes: np.ndarray, attrs: Sequence[str], supports: dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Back to declared cells; a merged cell becomes one of its cells at random (post-processing)."""
    out = np.empty_like(codes)
    for j, col in enumerate(attrs):
        sup = supports[col]
        kept, merged = np.flatnonzero(sup), np.flatnonzero(~sup)
        column = codes[:, j]
        is_merged = column >= len(kept)
        values = kept[np.minimum(column, max(len(kept) - 1, 0))]
        if merged.size:
            values = np.where(is_merged, rng.choice(merged, size=len(column)), values)
        out[:, j] = values
    return out


def marginal(
    codes: np.ndarray, attrs: Sequence[str], sizes: dict[str, int], clique: Sequence[str]
) -> np.ndarray:
    """The count vector of `clique` (row-major over the clique's cells, as mbi's datavector)."""
    index = np.zeros(len(codes), dtype=np.int64)
    for col in clique:
        index = index * sizes[col] + codes[:, list(attrs).index(col)]
    total = int(np.prod([sizes[col] for col in clique]))
    return np.bincount(index, minlength=total)


def all_pairs(attrs: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(attrs, 2))


class SmartNoisePGMSynthesizer(DPSynthesizer):
    """What dp_mst and dp_aim share: SmartNoise fitted on the declared cells through a transformer
    fitted on the declared domain, one ledger entry for the whole zCDP run, the check that
    SmartNoise spent nothing on preprocessing, and the noisy measurements as the released state.
    Subclasses say which SmartNoise class to run (`_smartnoise`) and how to model and sample."""

    step: ClassVar[str]  # the ledger step: "MST" or "AIM"
    released: dict[str, Any]

    def _prepare(self, domains: list[ColumnDomain]) -> None:
        self._transformer = declared_transformer(domains)

    def _smartnoise(self, epsilon: float) -> Any:
        """A configured SmartNoise synthesizer for `epsilon` (and self.delta, self.rows_per_unit)."""
        raise NotImplementedError

    def _measure(self, codes: np.ndarray, progress: ProgressFn) -> None:
        cells = pd.DataFrame(codes[(codes != NOWHERE).all(axis=1)], columns=[d.name for d in self.domains])
        epsilon = mechanism_epsilon(self.epsilon)
        synth = self._smartnoise(epsilon)
        with privacy_leaks_are_errors(), quiet():
            self.ledger.record(
                self.step,
                "Gaussian + exponential mechanism (zCDP)",
                self.epsilon,
                float(self.rows_per_unit),
                self.delta,
                library="smartnoise-synth",
                version=library_version("smartnoise-synth"),
            )
            synth.fit(cells, transformer=self._transformer)
        if self._transformer.odometer.spent[0] or synth.epsilon != epsilon:
            raise RuntimeError("SmartNoise spent budget on preprocessing; the declared domain was not used.")
        del cells
        self.released = synth.released
        progress(0.6, "noisy marginals released")

    def _released_payload(self) -> dict[str, Any]:
        return self.released

    def _restore_payload(self, payload: dict[str, Any]) -> None:
        if payload["sizes"] != [d.cells for d in self.domains]:
            raise ValueError("The saved DP state does not match its declared domain.")
        self.released = payload

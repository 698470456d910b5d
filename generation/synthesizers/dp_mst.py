"""`dp_mst`: SmartNoise's MST (smartnoise-synth==1.0.8) over the DECLARED domain. (epsilon, delta)-DP.

Optional: it needs smartnoise-synth, which the project's pins do not install yet; the registry lists
`dp_mst` only when `snsynth` is importable (docs/synthesizers.md has the install line).

MST (McKenna et al., NIST 2018 winner) measures every 1-way marginal and a maximum-spanning-tree of
2-way marginals with Gaussian noise, picks the tree with the exponential mechanism, and fits a
graphical model to the noisy measurements (Private-PGM / mbi). Budget: rho-zCDP with rho from
(epsilon, delta), split in thirds (1-way, selection, 2-way); reported as (epsilon, delta)-DP.

What SynthGate changes, and why:
- Domain. SmartNoise's own preprocessing learns categories from the data (LabelTransformer) and,
  unless given bounds, spends budget to estimate them. Here every column is first mapped to the
  cells of its declared domain (dp_domain: declared bins/categories + missing cell), and MST gets a
  TableTransformer of LabelTransformers fitted on the list of declared cell numbers, not on the
  data. So the cardinalities MST sees are the declared ones (asserted before fitting), and the
  transformer spends nothing (checked on its odometer).
- Records with a value that counts in no declared cell (an undeclared category with no catch-all,
  a missing value in a non-nullable column) are left out before MST sees the table: MST needs a cell
  in every column, and leaving a record out depends on that record alone.
- Row count. smartnoise 1.0.8 passes the exact number of rows to Private-PGM as `known_total`,
  which releases it unprotected (fine for "bounded" DP, where n is public; not for the add/remove
  guarantee this portal states). The subclass below passes `known_total=None`, so the total is
  estimated from the noisy measurements, as in the reference implementation.
- Randomness. smartnoise's exponential mechanism draws from numpy's global generator, which a
  previous job in the same worker may have seeded with its (public) seed. The subclass draws from a
  generator seeded by the OS. The Gaussian noise comes from OpenDP's sampler, untouched.
"""

from __future__ import annotations

import functools
import importlib.util
import secrets
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.base import ColumnSpec, ProgressFn
from generation.synthesizers.dp_budget import PrivacyLedger, mechanism_epsilon, parse_epsilon
from generation.synthesizers.dp_copula import _mapping_option, privacy_leaks_are_errors
from generation.synthesizers.dp_domain import NOWHERE, ColumnDomain, table_domain
from generation.synthesizers.options import (
    Options,
    checked_options,
    float_option,
    int_option,
    str_list_option,
)

DEFAULT_BINS, MAX_BINS = 10, 100
DEFAULT_DELTA = 1e-9


def smartnoise_available() -> bool:
    return importlib.util.find_spec("snsynth") is not None


@functools.cache
def _mst_class() -> type:
    """smartnoise's MSTSynthesizer with the two fixes described in the module docstring."""
    import itertools

    import networkx as nx
    from disjoint_set import DisjointSet
    from mbi import estimation, marginal_oracles
    from snsynth.mst import MSTSynthesizer
    from snsynth.utils import cdp_rho

    class AddRemoveMST(MSTSynthesizer):  # type: ignore[misc]
        def MST(self, data: Any, epsilon: float, delta: float) -> None:  # noqa: N802 (library name)
            # Mirrors MSTSynthesizer.MST of smartnoise-synth 1.0.8 with known_total=None.
            rho = cdp_rho(epsilon, delta)
            sigma = np.sqrt(3 / (2 * rho))
            log1 = self.measure(data, [(col,) for col in data.domain], sigma)
            data, log1, self.undo_compress_fn = self.compress_domain(data, log1)
            cliques = self.select(data, rho / 3.0, log1)
            log2 = self.measure(data, cliques, sigma)
            self.synthesizer = estimation.mirror_descent(
                data.domain, log1 + log2, iters=5000, marginal_oracle=marginal_oracles.message_passing_stable
            )

        def select(
            self, data: Any, rho: float, measurement_log: Any, total: Any = None, cliques: Any = ()
        ) -> list:
            # Mirrors MSTSynthesizer.select of smartnoise-synth 1.0.8 with known_total=None and an
            # OS-seeded generator for the exponential mechanism.
            est = estimation.mirror_descent(
                data.domain,
                measurement_log,
                iters=1000,
                marginal_oracle=marginal_oracles.message_passing_stable,
            )
            candidates = list(itertools.combinations(data.domain.attrs, 2))
            weights = {
                (a, b): np.linalg.norm(
                    data.project([a, b]).datavector() - est.project([a, b]).datavector(), 1
                )
                for a, b in candidates
            }
            tree, components = nx.Graph(), DisjointSet()
            tree.add_nodes_from(data.domain.attrs)
            r = len(list(nx.connected_components(tree)))
            epsilon = np.sqrt(8 * rho / (r - 1))
            prng = np.random.default_rng(secrets.randbits(128))
            for _ in range(r - 1):
                candidates = [e for e in candidates if not components.connected(*e)]
                scores = np.array([weights[e] for e in candidates])
                edge = candidates[self.exponential_mechanism(scores, epsilon, sensitivity=1.0, prng=prng)]
                tree.add_edge(*edge)
                components.union(*edge)
            return list(tree.edges)

    return AddRemoveMST


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


class DPMSTSynthesizer:
    """See the module docstring. One instance runs once."""

    name: ClassVar[str] = "dp_mst"
    label: ClassVar[str] = "DP MST (SmartNoise), (epsilon, delta)-DP"
    is_dp: ClassVar[bool] = True

    def __init__(self, epsilon: float | int | str | Decimal, options: Options | None = None) -> None:
        if not smartnoise_available():
            raise ValueError("Synthesizer 'dp_mst' needs smartnoise-synth, which is not installed here.")
        self.epsilon = parse_epsilon(epsilon)
        given = checked_options(
            self.name, options, allowed=("bins", "integer_columns", "other_category", "delta")
        )
        self.bins = int_option(given, "bins", default=DEFAULT_BINS, low=2, high=MAX_BINS)
        self.integer_columns = str_list_option(given, "integer_columns")
        self.other_category = _mapping_option(given, "other_category")
        self.delta = Decimal(str(float_option(given, "delta", default=DEFAULT_DELTA, low=1e-12, high=1e-5)))
        self.ledger = PrivacyLedger()

    def epsilon_spent(self) -> Decimal:
        return self.ledger.total()

    @property
    def privacy_statement(self) -> str:
        return (
            f"(epsilon, delta)-differential privacy for adding or removing one record: epsilon spent "
            f"{self.epsilon_spent()} of {self.epsilon} requested, delta {self.ledger.total_delta()}, by "
            "SmartNoise MST (Gaussian noise on 1- and 2-way marginals, exponential-mechanism tree "
            "selection, composed under zero-concentrated DP). Domains are the steward's declarations."
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
        if len(columns) < 2:
            raise ValueError("Synthesizer 'dp_mst' needs at least two columns.")
        domains = table_domain(
            columns, bins=self.bins, integer_columns=self.integer_columns, other_category=self.other_category
        )
        transformer = declared_transformer(domains)
        progress(0.05, "mapping records into the declared domain")
        codes = np.column_stack([d.encode(frame[d.name]) for d in domains])
        cells = pd.DataFrame(codes[(codes != NOWHERE).all(axis=1)], columns=[d.name for d in domains])
        synth = _mst_class()(epsilon=mechanism_epsilon(self.epsilon), delta=float(self.delta))
        with privacy_leaks_are_errors():
            self.ledger.record("MST", "Gaussian + exponential (zCDP)", self.epsilon, 1.0, self.delta)
            synth.fit(cells, transformer=transformer)
        if transformer.odometer.spent[0] or synth.epsilon != mechanism_epsilon(self.epsilon):
            raise RuntimeError("SmartNoise spent budget on preprocessing; the declared domain was not used.")
        del codes, cells  # nothing below may look at the data
        progress(0.8, "sampling")
        return self._sample(synth, domains, rows=rows, seed=seed)

    @staticmethod
    def _sample(synth: Any, domains: list[ColumnDomain], *, rows: int, seed: int) -> pd.DataFrame:
        # Post-processing. mbi and smartnoise draw from numpy's global generator when sampling.
        np.random.seed(seed % 2**32)
        sampled = np.asarray(synth.sample(rows), dtype=np.int64).reshape(rows, len(domains))
        within = np.random.default_rng(seed).random((rows, len(domains)))
        return pd.DataFrame({d.name: d.decode(sampled[:, j], within[:, j]) for j, d in enumerate(domains)})

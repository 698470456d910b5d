"""`dp_mst`: SmartNoise's MST (smartnoise-synth==1.0.8) over the DECLARED domain. (epsilon, delta)-DP.

MST (McKenna et al., NIST 2018 winner) measures every 1-way marginal and a maximum-spanning tree of
2-way marginals with Gaussian noise, picks the tree with the exponential mechanism, and fits a
graphical model to the noisy measurements (Private-PGM / mbi). Budget: rho-zCDP with rho from
(epsilon, delta) (`snsynth.utils.cdp_rho`), split in thirds (1-way, tree selection, 2-way). What
SynthGate changes in smartnoise's MST (declared domain, no exact `known_total`, OS-seeded
exponential mechanism, OpenDP discrete Gaussian, k-scaled sensitivities, saved measurements) is
described in dp_pgm.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.dp_base import library_version, os_seeded_generator
from generation.synthesizers.dp_budget import mechanism_epsilon
from generation.synthesizers.dp_pgm import (
    SmartNoisePGMSynthesizer,
    all_pairs,
    compress,
    compress_codes,
    compressed_sizes,
    discrete_gaussian,
    estimate,
    expand_codes,
    exponential_mechanism,
    gaussian_rho,
    measurement_from_json,
    measurement_to_json,
    sample_model,
)
from generation.synthesizers.options import int_option

DEFAULT_BINS, MAX_BINS = 20, 100  # 20: see docs/benchmarks.md (10 capped univariate accuracy near 0.87)
DEFAULT_ITERS = 3000  # mirror descent on the final model (post-processing; smartnoise uses 5000)
SELECT_ITERS = 1000  # mirror descent on the 1-way model used to score candidate edges


def smartnoise_available() -> bool:
    return importlib.util.find_spec("snsynth") is not None


@functools.cache
def _mst_class() -> type:
    """smartnoise's MSTSynthesizer with SynthGate's changes (dp_pgm docstring)."""
    import networkx as nx
    from disjoint_set import DisjointSet
    from mbi import Dataset, Domain, LinearMeasurement
    from snsynth.mst import MSTSynthesizer
    from snsynth.utils import cdp_rho

    class SynthGateMST(MSTSynthesizer):  # type: ignore[misc]
        k: int = 1
        released: dict[str, Any]
        rho_budget: float
        rho_used: float

        def MST(self, data: Any, epsilon: float, delta: float) -> None:  # noqa: N802 (library name)
            # Mirrors MSTSynthesizer.MST of smartnoise-synth 1.0.8: rho in thirds, no known_total.
            self.rho_budget = cdp_rho(epsilon, delta)
            self.rho_used = 0.0
            rho = self.rho_budget / self.k**2  # each unit moves every marginal by <= k (L2)
            sigma = math.sqrt(3 / (2 * rho))
            attrs = list(data.domain.attrs)
            sizes = dict(zip(attrs, data.domain.shape, strict=True))
            one_way = self._measure(data, [(col,) for col in attrs], sigma)
            supports, one_way_c = compress(one_way, sizes)
            codes = np.column_stack([data.to_dict()[col] for col in attrs]).astype(np.int64)
            sizes_c = compressed_sizes(supports)
            data_c = Dataset(
                compress_codes(codes, attrs, supports), Domain(attrs, [sizes_c[c] for c in attrs])
            )
            cliques = self._select(data_c, rho / 3.0, one_way_c)
            two_way = self._measure(data_c, cliques, sigma)
            self.released = {
                "attrs": attrs,
                "sizes": [sizes[c] for c in attrs],
                "one_way": [measurement_to_json(m) for m in one_way],
                "two_way": [measurement_to_json(m) for m in two_way],
            }
            if self.rho_used > self.rho_budget * (1 + 1e-9):
                raise RuntimeError("MST spent more rho than (epsilon, delta) allows.")

        def _measure(self, data: Any, cliques: list[tuple[str, ...]], sigma: float) -> list[Any]:
            # As MSTSynthesizer.measure (equal weights, so sigma * sqrt(#cliques) each), with OpenDP's
            # discrete Gaussian on the integer counts.
            scale = sigma * math.sqrt(len(cliques))
            measurements = []
            for clique in cliques:
                counts = np.asarray(data.project(clique).datavector(), dtype=np.int64)
                noisy, _ = discrete_gaussian(counts, scale)
                self.rho_used += gaussian_rho(scale, self.k)
                measurements.append(LinearMeasurement(noisy, tuple(clique), scale))
            return measurements

        def _select(self, data: Any, rho: float, one_way: list[Any]) -> list[tuple[str, str]]:
            # Mirrors MSTSynthesizer.select: exponential mechanism over edges by L1 error of the
            # 1-way model, known_total=None, OS-seeded generator.
            est = estimate(
                dict(zip(data.domain.attrs, data.domain.shape, strict=True)), one_way, iters=SELECT_ITERS
            )
            candidates = all_pairs(data.domain.attrs)
            weights = {
                (a, b): float(
                    np.linalg.norm(
                        np.asarray(data.project([a, b]).datavector())
                        - np.asarray(est.project([a, b]).datavector()),
                        1,
                    )
                )
                for a, b in candidates
            }
            tree, components = nx.Graph(), DisjointSet()
            tree.add_nodes_from(data.domain.attrs)
            r = len(list(nx.connected_components(tree)))
            epsilon = math.sqrt(8 * rho / (r - 1))
            rng = os_seeded_generator()
            for _ in range(r - 1):
                candidates = [e for e in candidates if not components.connected(*e)]
                scores = np.array([weights[e] for e in candidates])
                edge = candidates[exponential_mechanism(scores, epsilon, 1.0, rng)]
                self.rho_used += (self.k * epsilon) ** 2 / 8  # a unit moves each score by <= k
                tree.add_edge(*edge)
                components.union(*edge)
            return [tuple(e) for e in tree.edges]

    return SynthGateMST


class DPMSTSynthesizer(SmartNoisePGMSynthesizer):
    """See the module docstring. One instance runs once."""

    name: ClassVar[str] = "dp_mst"
    step: ClassVar[str] = "MST"
    label: ClassVar[str] = "DP MST (SmartNoise), (epsilon, delta)-DP"
    flavour: ClassVar[str] = "approximate (epsilon, delta)-DP via zero-concentrated DP"
    default_bins: ClassVar[int] = DEFAULT_BINS
    max_bins: ClassVar[int] = MAX_BINS
    extra_options: ClassVar[tuple[str, ...]] = ("iters",)
    min_columns: ClassVar[int] = 2

    def _read_options(self, given: dict[str, Any]) -> None:
        if not smartnoise_available():
            raise ValueError("Synthesizer 'dp_mst' needs smartnoise-synth, which is not installed here.")
        self.iters = int_option(given, "iters", default=DEFAULT_ITERS, low=100, high=10000)
        self.released: dict[str, Any] = {}
        self._model: Any = None
        self._supports: dict[str, np.ndarray] = {}

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"iters": self.iters}

    def _mechanism_facts(self) -> list[dict[str, Any]]:
        return super()._mechanism_facts() + [
            {
                "step": step,
                "mechanism": mechanism,
                "library": library,
                "version": library_version(library),
                "epsilon": None,  # composed in rho (zCDP); the whole run is the entry above
                "delta": None,
                "sensitivity": sensitivity,
            }
            for step, mechanism, library, sensitivity in (
                ("1-way marginals", "discrete Gaussian, rho/3", "opendp", f"{self.rows_per_unit} (L2)"),
                (
                    "tree selection",
                    "exponential mechanism, rho/3",
                    "smartnoise-synth",
                    f"{self.rows_per_unit}",
                ),
                ("2-way marginals", "discrete Gaussian, rho/3", "opendp", f"{self.rows_per_unit} (L2)"),
                ("model", "Private-PGM mirror descent (post-processing)", "mbi", "-"),
            )
        ]

    def _smartnoise(self, epsilon: float) -> Any:
        synth = _mst_class()(epsilon=epsilon, delta=mechanism_epsilon(self.delta))
        synth.k = self.rows_per_unit
        return synth

    def _fitted_model(self) -> Any:
        if self._model is None:
            attrs = self.released["attrs"]
            one_way = [measurement_from_json(m) for m in self.released["one_way"]]
            two_way = [measurement_from_json(m) for m in self.released["two_way"]]
            self._supports, one_way_c = compress(
                one_way, dict(zip(attrs, self.released["sizes"], strict=True))
            )
            self._model = estimate(compressed_sizes(self._supports), one_way_c + two_way, iters=self.iters)
        return self._model

    def _sample(self, *, rows: int, seed: int) -> pd.DataFrame:
        model = self._fitted_model()
        attrs = self.released["attrs"]
        rng = np.random.default_rng(seed)
        cells = expand_codes(sample_model(model, attrs, rows=rows, seed=seed), attrs, self._supports, rng)
        within = rng.random((rows, len(self.domains)))
        return pd.DataFrame({d.name: d.decode(cells[:, j], within[:, j]) for j, d in enumerate(self.domains)})

"""`dp_mst`: SmartNoise's MST (smartnoise-synth==1.0.8) over the DECLARED domain. (epsilon, delta)-DP.

MST (McKenna et al., NIST 2018 winner) measures every 1-way marginal and a maximum-spanning tree of
2-way marginals with Gaussian noise, picks the tree with the exponential mechanism, and fits a
graphical model to the noisy measurements (Private-PGM / mbi). Budget: rho-zCDP with rho from
(epsilon, delta) (`snsynth.utils.cdp_rho`), split in thirds (1-way, tree selection, 2-way). What
SynthGate changes in smartnoise's MST (declared domain, no exact `known_total`, OS-seeded
exponential mechanism, OpenDP discrete Gaussian, k-scaled sensitivities, saved measurements) is
described in dp_pgm.

Joint missingness (issue 12). With two or more declared-nullable columns, rho is split in quarters
instead: the fourth quarter measures the missingness patterns, each group of declared-nullable
columns (missingness.declared_pattern_groups: every subset of them is a declared cell, nothing is
read from the data) as one histogram with OpenDP's discrete Gaussian. One unit (k rows) moves each
group's histogram by at most k in L2; the G histograms are measured separately at a scale giving
each rho_p / G, so they compose to rho_p = rho / 4 (checked with the other measurements against the
whole rho). Why a histogram of its own and not one more attribute of the model: MST's 1-way noise
(a third of rho shared by every column) on 2^g cells buries every pattern but the commonest on a
table the size of pbc, and its domain compression then draws the rest uniformly from thousands
of patterns. Sampling (post-processing): each row's patterns are drawn from the released
histograms (cells below a public noise threshold dropped, missingness.thresholded_distribution;
only the kept cells are saved),
the model's rows are drawn four times over and each pattern gets a model row whose own missing
cells are nearest to it, so the values still follow the model given the pattern; its cells are
then blanked or, where the model had a gap the pattern does not, filled with one of the model's own
draws of that column that is not a gap.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.base import ProgressFn
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
from generation.synthesizers.missingness import (
    PatternGroup,
    ReleasedPatterns,
    declared_pattern_groups,
    gaussian_threshold,
    missing_flags,
)
from generation.synthesizers.options import int_option

DEFAULT_BINS, MAX_BINS = 20, 100  # 20: see docs/benchmarks.md (10 capped univariate accuracy near 0.87)
DEFAULT_ITERS = 3000  # mirror descent on the final model (post-processing; smartnoise uses 5000)
SELECT_ITERS = 1000  # mirror descent on the 1-way model used to score candidate edges
OVERSAMPLE = 4  # model rows drawn per released row, to find one whose gaps match its pattern


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
        pattern_groups: list[PatternGroup] = []
        pattern_cells: np.ndarray | None = None  # rows x groups: each record's pattern cell

        def MST(self, data: Any, epsilon: float, delta: float) -> None:  # noqa: N802 (library name)
            # Mirrors MSTSynthesizer.MST of smartnoise-synth 1.0.8: rho in thirds, no known_total;
            # with declared-nullable columns, a quarter first goes to the missingness patterns.
            self.rho_budget = cdp_rho(epsilon, delta)
            self.rho_used = 0.0
            rho = self.rho_budget / self.k**2  # each unit moves every marginal by <= k (L2)
            patterns = None
            if self.pattern_groups:
                patterns = self._measure_patterns(rho / 4)
                rho -= rho / 4
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
            if patterns is not None:
                self.released["missing_patterns"] = patterns
            if self.rho_used > self.rho_budget * (1 + 1e-9):
                raise RuntimeError("MST spent more rho than (epsilon, delta) allows.")

        def _measure_patterns(self, rho: float) -> dict[str, Any]:
            # G histograms, each at rho / G (rho already divided by k^2): scale sqrt(G / (2 rho)).
            assert self.pattern_cells is not None
            scale = math.sqrt(len(self.pattern_groups) / (2 * rho))
            counts = []
            for g, group in enumerate(self.pattern_groups):
                exact = np.bincount(self.pattern_cells[:, g], minlength=group.cells).astype(np.int64)
                noisy, _ = discrete_gaussian(exact, scale)
                self.rho_used += gaussian_rho(scale, self.k)
                counts.append(noisy)
            threshold = functools.partial(gaussian_threshold, scale)
            return ReleasedPatterns.from_noisy(self.pattern_groups, counts, threshold).to_json()

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
        self._pattern_cells: np.ndarray | None = None

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"iters": self.iters}

    def _mechanism_facts(self) -> list[dict[str, Any]]:
        share = "rho/4" if "missing_patterns" in self.released else "rho/3"
        patterns = (
            [("missingness patterns", "discrete Gaussian, rho/4", "opendp", f"{self.rows_per_unit} (L2)")]
            if "missing_patterns" in self.released
            else []
        )
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
                *patterns,
                ("1-way marginals", f"discrete Gaussian, {share}", "opendp", f"{self.rows_per_unit} (L2)"),
                (
                    "tree selection",
                    f"exponential mechanism, {share}",
                    "smartnoise-synth",
                    f"{self.rows_per_unit}",
                ),
                ("2-way marginals", f"discrete Gaussian, {share}", "opendp", f"{self.rows_per_unit} (L2)"),
                ("model", "Private-PGM mirror descent (post-processing)", "mbi", "-"),
            )
        ]

    def _pattern_groups(self) -> list[PatternGroup]:
        """From the declarations only: which columns may be missing, never which are."""
        return declared_pattern_groups([d.name for d in self.domains if d.spec.nullable])

    def _measure(self, codes: np.ndarray, progress: ProgressFn) -> None:
        # Every record counts in the patterns, also one the model leaves out (a value in no
        # declared cell): its pattern is read from its own cells alone.
        groups = self._pattern_groups()
        self._pattern_cells = (
            np.column_stack([g.cell_codes(missing_flags(codes, self.domains, g)) for g in groups])
            if groups
            else None
        )
        super()._measure(codes, progress)
        self._pattern_cells = None

    def _smartnoise(self, epsilon: float) -> Any:
        synth = _mst_class()(epsilon=epsilon, delta=mechanism_epsilon(self.delta))
        synth.k = self.rows_per_unit
        synth.pattern_groups = self._pattern_groups() if self._pattern_cells is not None else []
        synth.pattern_cells = self._pattern_cells
        return synth

    def _restore_payload(self, payload: dict[str, Any]) -> None:
        super()._restore_payload(payload)
        saved = payload.get("missing_patterns")  # absent in a state saved before patterns were modelled
        if saved is not None:  # checked against the declarations now, not when sampling
            ReleasedPatterns.from_json(saved, {d.name for d in self.domains if d.spec.nullable})

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
        patterns = self.released.get("missing_patterns")
        drawn = rows * (OVERSAMPLE if patterns else 1)
        cells = expand_codes(sample_model(model, attrs, rows=drawn, seed=seed), attrs, self._supports, rng)
        if patterns:
            cells = self._cells_with_patterns(cells, patterns, rows=rows, rng=rng)
        within = rng.random((rows, len(self.domains)))
        return pd.DataFrame({d.name: d.decode(cells[:, j], within[:, j]) for j, d in enumerate(self.domains)})

    def _cells_with_patterns(
        self, cells: np.ndarray, patterns: dict[str, Any], *, rows: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Post-processing (module docstring): released patterns, a model row nearest to each, and
        its cells made to agree with the pattern."""
        released = ReleasedPatterns.from_json(patterns, {d.name for d in self.domains if d.spec.nullable})
        index = {d.name: j for j, d in enumerate(self.domains)}
        columns = [name for group in released.groups for name in group.columns]
        wanted = [
            group.bits()[rng.choice(group.cells, size=rows, p=p)]
            for group, p in zip(released.groups, released.distributions(), strict=True)
        ]
        target = np.column_stack(wanted)
        gaps = np.column_stack([cells[:, index[c]] == self.domains[index[c]].missing_cell for c in columns])
        out = cells[nearest_rows(gaps, target)]
        for b, name in enumerate(columns):
            j, domain = index[name], self.domains[index[name]]
            gap = domain.missing_cell
            assert gap is not None  # a group holds declared-nullable columns only
            filled = out[:, j] == gap
            out[:, j] = np.where(
                target[:, b], gap, np.where(filled, self._fill(cells[:, j], gap, j, rows, rng), out[:, j])
            )
        return out

    def _fill(self, drawn: np.ndarray, gap: int, j: int, rows: int, rng: np.random.Generator) -> np.ndarray:
        """A value cell for every row: one of the model's own draws of column j that is not a gap
        (the model's distribution of j among present values); the noisy 1-way if it drew none."""
        present = drawn[drawn != gap]
        if present.size:
            return rng.choice(present, size=rows)
        return rng.choice(gap, size=rows, p=self._value_distribution(j, gap))

    def _value_distribution(self, j: int, cells: int) -> np.ndarray:
        """Column j's noisy 1-way measurement over its value cells, negatives at 0 (post-processing)."""
        attr = self.released["attrs"][j]  # SmartNoise's name for the column
        (item,) = [m for m in self.released["one_way"] if m["clique"] == [attr]]
        values = np.maximum(np.asarray(item["y"], dtype=float)[:cells], 0.0)
        return values / values.sum() if values.sum() > 0 else np.full(cells, 1.0 / cells)


def nearest_rows(gaps: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each target pattern, a distinct candidate row whose own gaps differ from it in the fewest
    columns (candidates are in random order; the commonest target patterns choose first)."""
    keys, inverse, counts = np.unique(target, axis=0, return_inverse=True, return_counts=True)
    free = np.ones(len(gaps), dtype=bool)
    chosen = np.empty(len(target), dtype=np.int64)
    for k in np.argsort(-counts, kind="stable"):
        rows = np.flatnonzero(inverse.reshape(-1) == k)
        pool = np.flatnonzero(free)
        distance = (gaps[pool] != keys[k]).sum(axis=1)
        picked = pool[np.argsort(distance, kind="stable")[: len(rows)]]
        chosen[rows] = picked
        free[picked] = False
    return chosen

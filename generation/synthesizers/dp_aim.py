"""`dp_aim`: SmartNoise's AIM (smartnoise-synth==1.0.8) over the DECLARED domain. (epsilon, delta)-DP.

AIM (McKenna et al., 2022) measures every 1-way marginal, then round by round picks the worst
approximated 2-way marginal of the workload with the exponential mechanism, measures it with
Gaussian noise, and refits a graphical model (Private-PGM / mbi); the noise shrinks when a round
no longer improves the model. Budget: rho-zCDP from (epsilon, delta) (`snsynth.utils.cdp_rho`),
90% to measurements and 10% to selection, spent exactly by the last round.

What SynthGate changes (dp_pgm has the full list): the declared domain only; the exponential
mechanism draws from an OS-seeded generator (smartnoise uses numpy's global one); OpenDP's discrete
Gaussian on the integer counts; every mechanism at rho / k^2 for k rows per patient; the noisy
measurements are the released state and the model is re-estimated from them. Not changed, because
it was already right in 1.0.8: AIM never passes the exact row count (`known_total`) to mbi.

Cost on 2 cores: each round refits the model, so time grows with the rounds. `rounds` is AIM's
planning horizon T (budget per round ~ rho / T; smartnoise's default 16 x columns); `round_iters`
is the mirror-descent iterations per round (post-processing; smartnoise uses 1000) and `iters`
those of the final model. Fewer rounds means fewer but less noisy measurements; none of these
settings changes the privacy guarantee.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generation.synthesizers.dp_base import library_version, os_seeded_generator
from generation.synthesizers.dp_budget import mechanism_epsilon
from generation.synthesizers.dp_domain import ColumnDomain
from generation.synthesizers.dp_mst import smartnoise_available
from generation.synthesizers.dp_pgm import (
    SmartNoisePGMSynthesizer,
    discrete_gaussian,
    estimate,
    exponential_mechanism,
    gaussian_rho,
    measurement_from_json,
    measurement_to_json,
    sample_model,
)
from generation.synthesizers.options import int_option

DEFAULT_BINS, MAX_BINS = 20, 100  # 20: see docs/benchmarks.md (10 capped univariate accuracy near 0.87)
DEFAULT_ROUNDS_PER_COLUMN = 4  # smartnoise: 16
DEFAULT_ROUND_ITERS = 100  # smartnoise: 1000
DEFAULT_ITERS = 1000
DEFAULT_MAX_MODEL_SIZE = 20  # MB of model (smartnoise: 80)
MAX_CELLS = 10000  # workload marginals larger than this are left out (smartnoise's default)


@functools.cache
def _aim_class() -> type:
    """smartnoise's AIMSynthesizer with SynthGate's changes (dp_pgm docstring)."""
    from mbi import LinearMeasurement
    from snsynth.aim.aim import AIMSynthesizer, compile_workload, filter_candidates

    class SynthGateAIM(AIMSynthesizer):  # type: ignore[misc]
        k: int = 1
        round_iters: int = DEFAULT_ROUND_ITERS
        released: dict[str, Any]
        rho_used: float

        def AIM(self, data: Any, workload: list[Any]) -> None:  # noqa: N802, C901 (library name)
            # Mirrors AIMSynthesizer.AIM of smartnoise-synth 1.0.8 (itself mbi's mechanisms/aim.py).
            budget = self.rho  # set by fit() from (epsilon, delta)
            rho = budget / self.k**2  # each unit moves a marginal by <= k (L2) and a score by <= k wgt
            self.rho_used = 0.0
            rng = os_seeded_generator()
            attrs = list(data.domain.attrs)
            sizes = dict(zip(attrs, data.domain.shape, strict=True))
            rounds = self.rounds or 16 * len(attrs)
            candidates = compile_workload(workload)
            answers = {cl: np.asarray(data.project(cl).datavector()) for cl in candidates}
            oneway = [cl for cl in candidates if len(cl) == 1]
            sigma = math.sqrt(rounds / (2 * 0.9 * rho))
            epsilon = math.sqrt(8 * 0.1 * rho / rounds)
            measurements = []
            rho_used = len(oneway) * 0.5 / sigma**2
            for cl in oneway:
                measurements.append(self._measure(answers[cl], cl, sigma))
            model = estimate(sizes, measurements, iters=self.round_iters)
            terminate = False
            while not terminate:
                if rho - rho_used < 2 * (0.5 / sigma**2 + 1.0 / 8 * epsilon**2):
                    remaining = rho - rho_used  # use up what is left in one last round
                    sigma = math.sqrt(1 / (2 * 0.9 * remaining))
                    epsilon = math.sqrt(8 * 0.1 * remaining)
                    terminate = True
                rho_used += 1.0 / 8 * epsilon**2 + 0.5 / sigma**2
                size_limit = self.max_model_size * rho_used / rho
                small = filter_candidates(candidates, model, size_limit)
                cl = self._worst_approximated(small, answers, model, epsilon, sigma, rng)
                n = data.domain.size(cl)
                z = np.asarray(model.project(cl).datavector())
                measurements.append(self._measure(answers[cl], cl, sigma))
                model = estimate(sizes, measurements, iters=self.round_iters)
                w = np.asarray(model.project(cl).datavector())
                if np.linalg.norm(w - z, 1) <= sigma * math.sqrt(2 / math.pi) * n:
                    sigma /= 2
                    epsilon *= 2
            self.released = {
                "attrs": attrs,
                "sizes": [sizes[c] for c in attrs],
                "measurements": [measurement_to_json(m) for m in measurements],
            }
            if self.rho_used > budget * (1 + 1e-9):
                raise RuntimeError("AIM spent more rho than (epsilon, delta) allows.")

        def _measure(self, counts: np.ndarray, clique: tuple[str, ...], sigma: float) -> Any:
            noisy, _ = discrete_gaussian(np.asarray(counts, dtype=np.int64), sigma)
            self.rho_used += gaussian_rho(sigma, self.k)
            return LinearMeasurement(noisy, tuple(clique), sigma)

        def _worst_approximated(  # type: ignore[override]
            self,
            candidates: dict[Any, float],
            answers: dict[Any, np.ndarray],
            model: Any,
            eps: float,
            sigma: float,
            rng: np.random.Generator,
        ) -> Any:
            keys = list(candidates)
            errors = []
            for cl in keys:
                wgt = candidates[cl]
                bias = math.sqrt(2 / math.pi) * sigma * model.domain.size(cl)
                xest = np.asarray(model.project(cl).datavector())
                errors.append(wgt * (np.linalg.norm(answers[cl] - xest, 1) - bias))
            sensitivity = max(abs(candidates[cl]) for cl in keys)
            self.rho_used += (self.k * eps) ** 2 / 8
            return keys[exponential_mechanism(np.asarray(errors), eps, sensitivity, rng)]

    return SynthGateAIM


class DPAIMSynthesizer(SmartNoisePGMSynthesizer):
    """See the module docstring. One instance runs once."""

    name: ClassVar[str] = "dp_aim"
    step: ClassVar[str] = "AIM"
    label: ClassVar[str] = "DP AIM (SmartNoise), (epsilon, delta)-DP"
    flavour: ClassVar[str] = "approximate (epsilon, delta)-DP via zero-concentrated DP"
    default_bins: ClassVar[int] = DEFAULT_BINS
    max_bins: ClassVar[int] = MAX_BINS
    extra_options: ClassVar[tuple[str, ...]] = ("rounds", "round_iters", "iters", "max_model_size")
    min_columns: ClassVar[int] = 2

    def _read_options(self, given: dict[str, Any]) -> None:
        if not smartnoise_available():
            raise ValueError("Synthesizer 'dp_aim' needs smartnoise-synth, which is not installed here.")
        self.rounds = int_option(given, "rounds", default=0, low=0, high=2000)  # 0: 4 x columns
        self.round_iters = int_option(given, "round_iters", default=DEFAULT_ROUND_ITERS, low=10, high=5000)
        self.iters = int_option(given, "iters", default=DEFAULT_ITERS, low=100, high=10000)
        self.max_model_size = int_option(
            given, "max_model_size", default=DEFAULT_MAX_MODEL_SIZE, low=1, high=200
        )
        self.released: dict[str, Any] = {}
        self._model: Any = None

    def settings(self) -> dict[str, Any]:
        return super().settings() | {
            "rounds": self.rounds,
            "round_iters": self.round_iters,
            "iters": self.iters,
            "max_model_size": self.max_model_size,
        }

    def _mechanism_facts(self) -> list[dict[str, Any]]:
        k = self.rows_per_unit
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
                (
                    "marginals (1-way, then one per round)",
                    "discrete Gaussian, 90% of rho",
                    "opendp",
                    f"{k} (L2)",
                ),
                (
                    "marginal selection per round",
                    "exponential mechanism, 10% of rho",
                    "smartnoise-synth",
                    f"{k} x weight",
                ),
                ("model", "Private-PGM mirror descent (post-processing)", "mbi", "-"),
            )
        ]

    def _prepare(self, domains: list[ColumnDomain]) -> None:
        super()._prepare(domains)
        rounds = self.rounds or DEFAULT_ROUNDS_PER_COLUMN * len(domains)
        if rounds < 2 * len(domains):
            raise ValueError(
                f"Option 'rounds' must be at least twice the number of columns ({2 * len(domains)})."
            )

    def _smartnoise(self, epsilon: float) -> Any:
        synth = _aim_class()(
            epsilon=epsilon,
            delta=mechanism_epsilon(self.delta),
            rounds=self.rounds or DEFAULT_ROUNDS_PER_COLUMN * len(self.domains),
            max_model_size=self.max_model_size,
            max_cells=MAX_CELLS,
        )
        synth.k, synth.round_iters = self.rows_per_unit, self.round_iters
        return synth

    def _fitted_model(self) -> Any:
        if self._model is None:
            sizes = dict(zip(self.released["attrs"], self.released["sizes"], strict=True))
            measurements = [measurement_from_json(m) for m in self.released["measurements"]]
            self._model = estimate(sizes, measurements, iters=self.iters)
        return self._model

    def _sample(self, *, rows: int, seed: int) -> pd.DataFrame:
        cells = sample_model(self._fitted_model(), self.released["attrs"], rows=rows, seed=seed)
        within = np.random.default_rng(seed).random((rows, len(self.domains)))
        return pd.DataFrame({d.name: d.decode(cells[:, j], within[:, j]) for j, d in enumerate(self.domains)})

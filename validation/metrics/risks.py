"""Anonymeter's three attacks (Giomi et al. 2023), the holdout as the control set.

Each risk is the attack's success on training rows in excess of its success on holdout rows,
normalized: 0 means the release helps the attacker no more than knowing the population does.
Targets and the control set are equal-sized random samples, each capped (anonymeter's cost grows
with both), and every risk carries anonymeter's confidence interval.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from validation.metrics.columns import ColumnInfo, as_labels, as_numbers, quasi_identifiers, sensitive_columns
from validation.metrics.stats import rounded, rounded_pair

logger = logging.getLogger(__name__)
REFERENCE_CAP = 2_000  # original and control rows per attack
SYNTHETIC_CAP = 5_000
N_ATTACKS = 500
# Below anonymeter's default of 500 attacks its intervals span about +-0.3: the risks are still
# measured and shown, but a gate verdict on them would be a coin toss (a GaussianCopula release
# of a 600-row table breached 0.15 "significantly" in 4 of 30 random splits), so they are not gated.
MIN_GATED_ROWS = 500


def _cache_compiled_kernels() -> None:
    """Keep anonymeter's numba kernels compiled on disk (numba's own cache, keyed by the source
    file and numba version): compiling them costs about 7 s in every new worker process, more than
    all three attacks on a 5,000 x 40 release. Where no cache folder is writable numba refuses,
    and the kernels compile in memory as before."""
    try:
        import anonymeter.evaluators  # noqa: F401  (imports the kernels' module without a cycle)
        from anonymeter.neighbors import mixed_types_kneighbors as kernels

        for kernel in (kernels.gower_distance, kernels._nearest_neighbors):
            if getattr(kernel, "_cache", None) is None or type(kernel._cache).__name__ == "NullCache":
                kernel.enable_caching()
    except Exception as exc:  # noqa: BLE001 - caching is an optimisation; never fail a run on it
        logger.info("anonymeter kernels not cached: %s", type(exc).__name__)


def _prepared(frame: pd.DataFrame, infos: list[ColumnInfo]) -> pd.DataFrame:
    """Floats for continuous columns, string labels for the rest: one dtype per column, so
    anonymeter's type detection cannot read a 0/1 flag as a measurement."""
    return pd.DataFrame(
        {
            i.name: as_numbers(frame[i.name], i.kind) if i.continuous else as_labels(frame[i.name])
            for i in infos
        }
    ).reset_index(drop=True)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """anonymeter draws targets with pandas' default generator: seed it, then put it back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(state)


def _risk(evaluator: Any, n_attacks: int) -> dict[str, Any]:
    risk = evaluator.risk(confidence_level=0.95)
    return {"risk": rounded(risk.value), "ci": rounded_pair(risk.ci), "n_attacks": n_attacks}


def anonymeter_risks(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    infos: list[ColumnInfo],
    *,
    seed: int = 0,
    guard: Callable[[str, Callable[[], Any]], Any] | None = None,
) -> dict[str, Any]:
    """Singling-out, linkability and inference risks; each attack runs under `guard` if given
    (so one failing attack fails its own check, not the others)."""
    _cache_compiled_kernels()
    rng = np.random.default_rng(seed)
    n = min(len(training), len(holdout), REFERENCE_CAP)
    ori = _prepared(training.sample(n=n, random_state=seed), infos)
    control = _prepared(holdout.sample(n=n, random_state=seed + 1), infos)
    syn = _prepared(synthetic.sample(n=min(len(synthetic), SYNTHETIC_CAP), random_state=seed), infos)
    n_attacks = max(1, min(N_ATTACKS, n))
    run = guard or (lambda _name, compute: compute())
    return {
        "n_reference": n,
        "n_synthetic": len(syn),
        "gated": n >= MIN_GATED_ROWS,
        "singling_out": run("singling_out", lambda: singling_out(ori, syn, control, n_attacks, rng)),
        "linkability": run("linkability", lambda: linkability(ori, syn, control, infos, n_attacks, seed)),
        "inference": run("inference", lambda: inference(ori, syn, control, infos, n_attacks, seed)),
    }


def singling_out(
    ori: pd.DataFrame, syn: pd.DataFrame, control: pd.DataFrame, n_attacks: int, rng: np.random.Generator
) -> dict[str, Any]:
    from anonymeter.evaluators import SinglingOutEvaluator

    # Univariate predicates ("the only record with creatinine = 9.1"): multivariate mode costs
    # ten times as much here and rarely changes the verdict on tables this narrow.
    evaluator = SinglingOutEvaluator(
        ori=ori, syn=syn, control=control, n_attacks=n_attacks, seed=int(rng.integers(2**31))
    )
    with _seeded(0):
        evaluator.evaluate(mode="univariate")
    return {**_risk(evaluator, n_attacks), "mode": "univariate"}


def linkability(
    ori: pd.DataFrame,
    syn: pd.DataFrame,
    control: pd.DataFrame,
    infos: list[ColumnInfo],
    n_attacks: int,
    seed: int,
) -> dict[str, Any]:
    """The attacker holds the quasi-identifiers of some patients (a registry) and the remaining
    columns of the same patients (a lab extract), and links them through the release."""
    from anonymeter.evaluators import LinkabilityEvaluator

    qis = quasi_identifiers(infos)
    rest = [i.name for i in infos if i.name not in qis]
    if not qis or not rest:
        return {"status": "not_applicable", "reason": "Needs quasi-identifiers and other columns."}
    evaluator = LinkabilityEvaluator(
        ori=ori, syn=syn, control=control, aux_cols=(qis, rest), n_attacks=n_attacks, n_neighbors=1
    )
    with _seeded(seed):
        evaluator.evaluate(n_jobs=1)
    return {"status": "ok", **_risk(evaluator, n_attacks), "aux_columns": [qis, rest]}


def inference(
    ori: pd.DataFrame,
    syn: pd.DataFrame,
    control: pd.DataFrame,
    infos: list[ColumnInfo],
    n_attacks: int,
    seed: int,
) -> dict[str, Any]:
    """For each secret (the declared outcome and every sensitive column), guess its value from
    every other column via the release's nearest record. The reported risk is the worst secret's
    (the highest estimate; among equal estimates, the one with the highest upper bound).

    The outcome is a secret even when nobody classified it sensitive: "died during follow-up" is
    what an attacker would most like to learn, and the steward's declaring it says it matters.

    Why 500 attacks a side and not every row (tried, issue 12): the risk is (a - c) / (1 - c), and
    anonymeter's interval propagates each rate's error linearly. For a secret the other columns
    nearly fix (c 0.97-0.99: a rare flag always guessed "no") that interval is too narrow on the low
    side once it shrinks: attacking all of flchain's 2,000 / 1,575 rows made a release fail on mgus
    (0.31 [0.05, 0.57]) where the attack named 1 carrier in either set and the "risk" was only the
    carriers' share differing between the samples (1.2% vs 1.9%; Fisher's exact p = 0.07). More
    attacks need a better interval first (docs/benchmarks.md)."""
    from anonymeter.evaluators import InferenceEvaluator

    secrets = inference_secrets(infos)
    if not secrets or len(infos) < 2:
        return {
            "status": "not_applicable",
            "reason": "No requested column is classified sensitive or declared the outcome.",
        }
    kinds = {i.name: i.continuous for i in infos}
    per_secret: dict[str, Any] = {}
    for secret in secrets:
        aux = [i.name for i in infos if i.name != secret]
        evaluator = InferenceEvaluator(
            ori=ori,
            syn=syn,
            control=control,
            aux_cols=aux,
            secret=secret,
            regression=kinds[secret],
            n_attacks=n_attacks,
        )
        with _seeded(seed):
            evaluator.evaluate(n_jobs=1)
        per_secret[secret] = _risk(evaluator, n_attacks)
    worst = max(per_secret, key=lambda s: _severity(per_secret[s]))
    return {"status": "ok", **per_secret[worst], "secret": worst, "secrets": per_secret}


def _severity(result: dict[str, Any]) -> tuple[float, float]:
    """Estimate, then upper bound: most secrets estimate 0 (clipped), and the reported one should
    then be the least certain of them, not whichever came first in the list."""
    upper = (result.get("ci") or [None, None])[1]
    return (result.get("risk") or 0.0, upper or 0.0)


def inference_secrets(infos: list[ColumnInfo]) -> list[str]:
    """The declared outcome first, then the sensitive columns, each once."""
    outcome = [i.name for i in infos if i.outcome]
    return list(dict.fromkeys(outcome + sensitive_columns(infos)))

"""The whole validation suite as one pure function: tables in, metrics and gate checks out.

No database here, so the benchmark and the tests run exactly what the worker runs. Every metric is
guarded: an exception records its type (never its message, which can quote data values) and the
checks that depend on it fail, so an error can only ever block a release.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from validation.gate import (
    PRIVACY,
    UTILITY,
    Check,
    apply_required,
    check_estimate_max,
    check_estimate_min,
    check_max,
    check_min,
    not_run,
    thresholds_with_defaults,
)
from validation.metrics.columns import ColumnInfo
from validation.metrics.overlays import distribution_overlays
from validation.metrics.privacy import (
    SAMPLE_CAP,
    dcr_summary,
    distance_samples,
    empirical_epsilon,
    exact_copies,
    membership_inference,
    qi_replicated_uniques,
    replicated_uniques,
)
from validation.metrics.risks import anonymeter_risks
from validation.metrics.stats import rounded
from validation.metrics.tstr import choose_outcome, tstr
from validation.metrics.utility import (
    bound_violations,
    category_coverage,
    column_pair_trends,
    column_shapes,
    mean_score,
    missingness,
    outcome_prevalence,
    pair_trend_score,
)

logger = logging.getLogger(__name__)
SUITE_VERSION = 3  # bump when a metric's definition changes, so old reports can be told apart

# Value-free reasons for checks that were not run (every viewer may see them).
REASON_NO_PAIR_TREND = (
    "No pair of requested columns shows a relationship in the source data, so there is no trend to preserve."
)
REASON_NO_OUTCOME = (
    "No requested column is declared the outcome (or is a two-valued sensitive column), so there is "
    "nothing to predict; a data steward can declare the outcome on the dataset's review page."
)
REASON_OUTCOME_ONLY = "The outcome is the only requested column, so there is nothing to predict it from."
REASON_ONE_OUTCOME_VALUE = "The real test rows hold only one outcome value, so prediction cannot be scored."
REASON_RELEASE_ONE_OUTCOME_VALUE = (
    "The release holds only one value of the outcome, so no model can learn to predict it from the "
    "release; its ratio is that of a constant guess. Choose another synthesizer, or a bake-off."
)
REASON_TOO_FEW_EVENTS = (
    "Too few outcome events among the real test rows to score prediction (at least 10 of each outcome "
    "value are needed); request more rows or a more common outcome."
)
REASON_ANONYMETER_SMALL = (
    "Too few rows for this attack to give a verdict: it needs at least 500 training and 500 holdout rows "
    "(with fewer its 95% interval spans about +-0.3). The risk measured anyway is shown to reviewers."
)
REASON_NO_QUASI = (
    "No requested column is classified a quasi-identifier, so there is nothing an attacker could link on."
)
REASON_NO_SECRET = (
    "No requested column is classified sensitive or declared the outcome, so there is no secret to infer."
)
# The suite's steps, in the order it runs them: a worker records the one starting (job stage
# STEP_STAGE_PREFIX + key, through run_suite's `on_step`) so the request page can show which
# checks have run. Labels are value-free.
VALIDATION_STEPS: tuple[tuple[str, str], ...] = (
    ("utility", "Utility: column shapes, pair trends, missingness, bounds, train-on-synthetic"),
    ("distributions", "Per-column distributions"),
    ("privacy", "Privacy: exact copies, replicated uniques, distances, membership inference"),
    ("attacks", "Attacks: singling out, linkability, inference (and the DP audit)"),
)
STEP_STAGE_PREFIX = "validating: "


def step_stage(key: str) -> str:
    """The job stage recorded while step `key` runs."""
    return STEP_STAGE_PREFIX + key


def step_progress(key: str) -> float:
    """The job progress while step `key` runs: validation takes the last fifth (0.8 to 1.0)."""
    keys = [k for k, _ in VALIDATION_STEPS]
    return round(0.8 + 0.2 * keys.index(key) / len(keys), 3)


def validation_steps(*, stage: str, final: bool, validated: bool) -> list[dict[str, str]]:
    """Each step with its status ("done", "running", "pending", "interrupted", "not_run") for a
    job whose last recorded stage is `stage`; `final`: the job has ended; `validated`: its report
    is stored."""
    keys = [k for k, _ in VALIDATION_STEPS]
    current = keys.index(stage[len(STEP_STAGE_PREFIX) :]) if stage.startswith(STEP_STAGE_PREFIX) else None
    steps = []
    for i, (key, label) in enumerate(VALIDATION_STEPS):
        if validated:
            status = "done"
        elif current is None or i > current:
            status = "not_run" if final else "pending"
        elif i < current:
            status = "done"
        else:
            status = "interrupted" if final else "running"
        steps.append({"key": key, "label": label, "status": status})
    return steps


# The metrics (timed in metrics["seconds"]) each check reads, for its `seconds`.
CHECK_METRICS = {
    "column_shape_similarity": ("column_shapes",),
    "column_pair_trend_similarity": ("column_pair_trends",),
    "missingness_similarity": ("missingness",),
    "bound_violation_rate": ("bounds",),
    "tstr_auc_ratio": ("tstr",),
    "exact_copy_rate": ("exact_copies", "exact_copies_holdout"),
    "replicated_uniques_rate": ("replicated_uniques",),
    "membership_inference_auc": ("distances", "membership_inference"),
    "singling_out_risk": ("singling_out",),
    "linkability_risk": ("linkability",),
    "inference_risk": ("inference",),
    "dp_empirical_epsilon": ("dp_audit",),
}


class HoldoutUnavailable(Exception):
    """The dataset has no locked holdout, so tests that need non-members cannot run (fail closed)."""


@dataclass
class SuiteResult:
    metrics: dict[str, Any]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def needs_acknowledgement(self) -> list[str]:
        """Required checks that did not run (they block until a privacy officer acknowledges)."""
        return [c.name for c in self.checks if c.status == "not_run" and not c.passed]


@dataclass
class _Run:
    """Collects errors and timings while the metrics run."""

    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def guard(self, name: str, compute: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - fail closed on any metric error
            logger.warning("metric %s failed: %s", name, type(exc).__name__)
            self.errors[name] = type(exc).__name__
            return None
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)


def run_suite(
    *,
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    infos: list[ColumnInfo],
    thresholds: dict[str, Any] | None = None,
    dp_epsilon: float | None = None,
    seed: int = 0,
    small_cell_k: int = 5,
    sample_cap: int = SAMPLE_CAP,
    on_step: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Run every utility and privacy test and the gate's checks on them.

    `dp_epsilon` is the epsilon a DP synthesizer claims (None for non-DP releases): the empirical
    audit then checks the attack cannot prove a larger one. `sample_cap` bounds the rows per side of
    the nearest-neighbour work (distances, membership inference, DP audit); the benchmark raises it
    to compare with SDMetrics on identical samples. `on_step` is called with each step's key
    (VALIDATION_STEPS) as it starts, outside the metric guards: what it raises stops the suite.
    """
    step = on_step or (lambda key: None)
    run = _Run()
    step("utility")
    utility = _utility(run, training, synthetic, holdout, infos, seed)
    step("distributions")
    utility["distributions"] = run.guard(
        "distributions", lambda: distribution_overlays(training, synthetic, infos, k=small_cell_k)
    )
    step("privacy")
    privacy = _privacy(run, training, synthetic, holdout, infos, seed, dp_epsilon, sample_cap, step)
    present = sum(1 for i in infos if i.name in synthetic.columns) / len(infos) if infos else 0.0
    metrics = {
        "suite_version": SUITE_VERSION,
        "rows_training": len(training),
        "rows_synthetic": len(synthetic),
        "rows_holdout": len(holdout) if holdout is not None else None,
        "columns": [{"name": i.name, "kind": i.kind, "classification": i.classification} for i in infos],
        "requested_columns_present": round(present, 6),
        **utility,
        **privacy,
        "errors": run.errors,
        "seconds": run.seconds,
    }
    metrics["warnings"] = _warnings(metrics)
    return SuiteResult(metrics=metrics, checks=gate_checks(metrics, thresholds, dp_epsilon=dp_epsilon))


def gate_checks(
    metrics: dict[str, Any], thresholds: dict[str, Any] | None, *, dp_epsilon: float | None = None
) -> list[Check]:
    """The gate's checks for stored metrics under a policy's thresholds.

    Separate from measuring, so a report can be re-judged under another tier's thresholds (for
    example after a policy change) without reading any table again.
    """
    limits = thresholds_with_defaults(thresholds)
    errors = metrics.get("errors") or {}
    checks = [check_min("requested_columns_present", metrics.get("requested_columns_present"), 1.0)]
    checks += _utility_checks(metrics, limits, errors)
    checks += _privacy_checks(metrics, limits, errors, dp_epsilon)
    checks = apply_required(checks, (thresholds or {}).get("required_checks"))
    return [_timed(check, metrics.get("seconds") or {}) for check in checks]


def _timed(check: Check, seconds: dict[str, float]) -> Check:
    spent = [seconds[name] for name in CHECK_METRICS.get(check.name, ()) if name in seconds]
    return replace(check, seconds=round(sum(spent), 3) if spent else 0.0)


# --- Utility ----------------------------------------------------------------------------------


def _utility(
    run: _Run,
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    infos: list[ColumnInfo],
    seed: int,
) -> dict[str, Any]:
    shapes = run.guard("column_shapes", lambda: column_shapes(training, synthetic, infos))
    pairs = run.guard("column_pair_trends", lambda: column_pair_trends(training, synthetic, infos))
    outcome = run.guard("outcome", lambda: choose_outcome(training, infos))
    return {
        "column_shapes": shapes or {},
        "column_shape_similarity": mean_score(shapes) if shapes else None,
        "column_pair_trends": pairs or [],
        "column_pair_trend_similarity": pair_trend_score(pairs) if pairs else None,
        "column_pairs_counted": sum(1 for p in pairs if p["counts"]) if pairs else 0,
        # SDMetrics 0.32 QualityReport's number (own-range binning; see validation.metrics.utility).
        "column_pair_trend_similarity_sdmetrics": pair_trend_score(pairs, sdmetrics=True) if pairs else None,
        "missingness": run.guard(
            "missingness", lambda: missingness(training, synthetic, infos, holdout=holdout, seed=seed)
        ),
        "category_coverage": run.guard(
            "category_coverage", lambda: category_coverage(training, synthetic, infos)
        ),
        "bounds": run.guard("bounds", lambda: bound_violations(training, synthetic, infos)),
        "outcome": (
            run.guard("outcome", lambda: outcome_prevalence(training, synthetic, holdout, outcome))
            if outcome
            else None
        ),
        "tstr": run.guard("tstr", lambda: tstr(training, synthetic, holdout, infos, seed=seed)),
    }


def _utility_checks(metrics: dict[str, Any], limits: dict[str, float], errors: dict[str, str]) -> list[Check]:
    checks = [
        check_min(
            "column_shape_similarity",
            metrics.get("column_shape_similarity"),
            limits["column_shape_min"],
            error=errors.get("column_shapes", ""),
        )
    ]
    # Without a pair that shows a trend in the real data (or with a single column) there is no
    # trend to preserve: the check does not apply. An error computing the pairs still fails.
    if errors.get("column_pair_trends") or metrics.get("column_pairs_counted"):
        checks.append(
            check_min(
                "column_pair_trend_similarity",
                metrics.get("column_pair_trend_similarity"),
                limits["column_pair_trend_min"],
                error=errors.get("column_pair_trends", ""),
            )
        )
    else:
        checks.append(
            not_run(
                "column_pair_trend_similarity",
                limits["column_pair_trend_min"],
                "min",
                UTILITY,
                REASON_NO_PAIR_TREND,
                applicable=False,
            )
        )
    checks.append(
        check_min(
            "missingness_similarity",
            (metrics.get("missingness") or {}).get("pattern_similarity"),
            limits["missingness_similarity_min"],
            error=errors.get("missingness", ""),
        )
    )
    checks.append(
        check_max(
            "bound_violation_rate",
            (metrics.get("bounds") or {}).get("rate"),
            limits["bound_violation_rate_max"],
            kind=UTILITY,
            error=errors.get("bounds", ""),
        )
    )
    checks.append(_tstr_check(metrics.get("tstr"), limits["tstr_auc_ratio_min"], errors.get("tstr", "")))
    return checks


def _tstr_check(result: dict[str, Any] | None, floor: float, error: str) -> Check:
    """Judged on the ratio's interval (Hanley-McNeil with 100+ events and non-events, a paired
    bootstrap below); not run, with the reason, when there is no outcome or too few events."""
    status = (result or {}).get("status")
    if result is not None and status != "ok":
        reason = {
            "too_few_events": REASON_TOO_FEW_EVENTS,
            "one_outcome_value": REASON_ONE_OUTCOME_VALUE,
        }.get(str(result.get("reason_code")), REASON_NO_OUTCOME)
        if result.get("reason_code") == "outcome_only":
            reason = REASON_OUTCOME_ONLY
        applicable = result.get("reason_code") in ("too_few_events", "one_outcome_value")
        return not_run("tstr_auc_ratio", floor, "min", UTILITY, reason, applicable=applicable)
    if result is not None and result.get("gated") is False:
        # Reports from suite version 2 and before: shown, not gated, below 100 events.
        return not_run(
            "tstr_auc_ratio", floor, "min", UTILITY, REASON_TOO_FEW_EVENTS,
            value=result.get("ratio"), ci=result.get("ratio_ci"),
        )  # fmt: skip
    if result is not None and result.get("synthetic_outcome_values") == 1 and floor > 0 and not error:
        # A constant guess scores AUC 0.5, and 0.5 / a weak reference's AUC can have an interval
        # reaching the floor: a TVAE release of Framingham with no ten-year CHD at all published so.
        # A floor of 0 is a tier that does not ask for prediction: it is not enforced then either.
        return Check(
            "tstr_auc_ratio", result.get("ratio"), floor, False, "min", UTILITY,
            ci=result.get("ratio_ci") and (result["ratio_ci"][0], result["ratio_ci"][1]),
            reason=REASON_RELEASE_ONE_OUTCOME_VALUE,
        )  # fmt: skip
    return check_estimate_min(
        "tstr_auc_ratio", (result or {}).get("ratio"), floor, ci=(result or {}).get("ratio_ci"), error=error
    )


# --- Privacy ----------------------------------------------------------------------------------


def _privacy(
    run: _Run,
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    infos: list[ColumnInfo],
    seed: int,
    dp_epsilon: float | None,
    sample_cap: int,
    step: Callable[[str], None],
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    copies = run.guard("exact_copies", lambda: exact_copies(training, synthetic, infos))
    baseline = run.guard("exact_copies_holdout", lambda: _holdout_copy_rate(training, holdout, infos))
    uniques = run.guard("replicated_uniques", lambda: replicated_uniques(training, synthetic, infos))
    qi_uniques = run.guard(
        "qi_replicated_uniques", lambda: qi_replicated_uniques(training, synthetic, holdout, infos, rng)
    )
    samples = run.guard(
        "distances", lambda: distance_samples(training, synthetic, _need(holdout), infos, rng, sample_cap)
    )
    result: dict[str, Any] = {
        "exact_copies": copies,
        "exact_copy_rate": rounded(copies / len(synthetic))
        if copies is not None and len(synthetic)
        else None,
        "exact_copy_rate_holdout": baseline,
        "replicated_uniques": uniques,
        "qi_replicated_uniques": qi_uniques,
        "dcr": run.guard("dcr", lambda: dcr_summary(samples)) if samples else None,
        "membership_inference": run.guard("membership_inference", lambda: membership_inference(samples))
        if samples
        else None,
    }
    if samples is None:
        run.errors.setdefault("membership_inference", run.errors.get("distances", "Error"))
    step("attacks")
    result["anonymeter"] = run.guard(
        "anonymeter",
        lambda: anonymeter_risks(training, synthetic, _need(holdout), infos, seed=seed, guard=run.guard),
    )
    if dp_epsilon is not None:
        result["dp_audit"] = run.guard("dp_audit", lambda: _dp_audit(_need_samples(samples), dp_epsilon, rng))
    return result


def _need(holdout: pd.DataFrame | None) -> pd.DataFrame:
    if holdout is None or len(holdout) == 0:
        raise HoldoutUnavailable
    return holdout


def _need_samples(samples: Any) -> Any:
    if samples is None:
        raise HoldoutUnavailable
    return samples


def _holdout_copy_rate(
    training: pd.DataFrame, holdout: pd.DataFrame | None, infos: list[ColumnInfo]
) -> float | None:
    """How often an unseen real row equals a training row: the chance level for exact copies."""
    if holdout is None or len(holdout) == 0:
        return None
    return rounded(exact_copies(training, holdout, infos) / len(holdout))


def _dp_audit(samples: Any, claimed: float, rng: np.random.Generator) -> dict[str, Any]:
    audit = empirical_epsilon(-samples.training_to_synthetic, -samples.holdout_to_synthetic, rng=rng)
    return {**audit, "claimed_epsilon": claimed}


def _privacy_checks(
    metrics: dict[str, Any], limits: dict[str, float], errors: dict[str, str], dp_epsilon: float | None
) -> list[Check]:
    uniques = metrics.get("replicated_uniques") or {}
    attack = metrics.get("membership_inference") or {}
    checks = [
        check_max(
            "exact_copy_rate",
            metrics.get("exact_copy_rate"),
            limits["exact_copy_rate_max"],
            error=errors.get("exact_copies", ""),
        ),
        check_max(
            "replicated_uniques_rate",
            uniques.get("rate"),
            limits["replicated_uniques_rate_max"],
            error=errors.get("replicated_uniques", ""),
        ),
        check_estimate_max(
            "membership_inference_auc",
            attack.get("auc"),
            limits["mia_auc_max"],
            ci=attack.get("auc_ci"),
            null=0.5,
            error=errors.get("membership_inference", "") or errors.get("distances", ""),
        ),
    ]
    checks += _anonymeter_checks(metrics.get("anonymeter"), limits, errors)
    if dp_epsilon is not None:
        audit = metrics.get("dp_audit") or {}
        checks.append(
            Check(
                "dp_empirical_epsilon",
                audit.get("epsilon_lower_bound"),
                float(dp_epsilon),
                audit.get("epsilon_lower_bound") is not None and audit["epsilon_lower_bound"] <= dp_epsilon,
                "max",
                PRIVACY,
                errors.get("dp_audit", "") or errors.get("distances", ""),
            )
        )
    return checks


_ANONYMETER_CHECKS = (
    ("singling_out", "singling_out_risk", "singling_out_risk_max"),
    ("linkability", "linkability_risk", "linkability_risk_max"),
    ("inference", "inference_risk", "inference_risk_max"),
)


def _anonymeter_checks(
    risks: dict[str, Any] | None, limits: dict[str, float], errors: dict[str, str]
) -> list[Check]:
    checks: list[Check] = []
    for attack, name, key in _ANONYMETER_CHECKS:
        result = (risks or {}).get(attack)
        # An attack that needs quasi-identifiers or secrets the request lacks does not apply.
        if result is not None and result.get("status") == "not_applicable":
            reason = REASON_NO_QUASI if attack == "linkability" else REASON_NO_SECRET
            checks.append(not_run(name, limits[key], "max", PRIVACY, reason, applicable=False))
            continue
        error = errors.get(attack, "") or errors.get("anonymeter", "")
        # Too few rows for the attacks to mean anything: measured and shown, not judged.
        if risks is not None and risks.get("gated") is False and result is not None and not error:
            checks.append(
                not_run(
                    name,
                    limits[key],
                    "max",
                    PRIVACY,
                    REASON_ANONYMETER_SMALL,
                    value=result.get("risk"),
                    ci=result.get("ci"),
                )  # fmt: skip
            )
            continue
        checks.append(
            check_estimate_max(
                name,
                (result or {}).get("risk"),
                limits[key],
                ci=(result or {}).get("ci"),
                null=0.0,
                error=error,
            )
        )
    return checks


# --- Warnings -----------------------------------------------------------------------------------


def _warnings(metrics: dict[str, Any]) -> list[str]:
    """Findings worth a reviewer's eye that are deliberately not pass criteria."""
    found = []
    if (metrics.get("dcr") or {}).get("warning"):
        found.append("dcr_closer_to_training")
    if (metrics.get("qi_replicated_uniques") or {}).get("warning"):
        found.append("qi_uniques_above_holdout")
    if (metrics.get("anonymeter") or {}).get("gated") is False:
        found.append("anonymeter_too_few_holdout_rows")
    tstr_result = metrics.get("tstr") or {}
    if tstr_result.get("test_rows") == "training_split":
        found.append("tstr_tested_on_training_rows")
    if tstr_result.get("interval") == "bootstrap" or tstr_result.get("reason_code") == "too_few_events":
        found.append("tstr_too_few_test_events")
    return found

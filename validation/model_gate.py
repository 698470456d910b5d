"""The release gate for a trained model, and the charts of its card.

A model is judged on the locked holdout like a synthetic table, with checks shaped like the suite's
(`validation.gate.Check`), so the report and outcome pages show them with the same glossary:

- `model_auc` (utility): the lower end of the AUC's 95% interval must reach `model_auc_lower_min`;
- `model_auc_vs_baseline` (utility): AUC over the AUC of a non-private baseline trained in the same
  job, at least `model_auc_ratio_min`;
- `model_calibration` (utility): expected calibration error at most `calibration_ece_max`, failed
  only when the excess is also significant (beyond what a perfectly calibrated model shows on this
  many rows: `ece_p_value` below 0.05), so a small holdout does not fail good models at random;
- `model_membership_auc` (privacy): the upper end of the loss-attack AUC's 95% interval must stay
  at or below `membership_auc_upper_max`;
- `model_empirical_epsilon` (privacy, DP models only): the attack's 95%-confidence lower bound on
  epsilon must not exceed the claimed epsilon; if it does, the DP claim is refuted.

Every model check is required: one that cannot run (too few holdout rows, one outcome class) has
status `not_run`, `required: true` and `passed: false`, so it blocks the gate (and is listed by
`validation.gate.needs_acknowledgement`). An error computing a metric fails its check closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from validation.gate import NOT_RUN, PRIVACY, UTILITY, Check
from validation.metrics.model import (
    MIN_ATTACK_ROWS,
    MIN_CALIBRATION_ROWS,
    MIN_CLASS_ROWS,
    MIN_HOLDOUT_ROWS,
    NO_BASELINE,
    ONE_CLASS,
    TOO_FEW_EVENTS,
)
from validation.report import HOLDOUT_COLOUR, SYNTHETIC_COLOUR, TRAINING_COLOUR

# Defaults when the tier's `gate` controls set none; every value is in [0, 1] like the suite's.
DEFAULT_MODEL_THRESHOLDS: dict[str, float] = {
    "model_auc_lower_min": 0.60,
    "model_auc_ratio_min": 0.80,
    "calibration_ece_max": 0.10,
    "membership_auc_upper_max": 0.60,
}
MODEL_CHECK_NAMES = (
    "model_auc",
    "model_auc_vs_baseline",
    "model_calibration",
    "model_membership_auc",
    "model_empirical_epsilon",
)
MODEL_PRIVACY_CHECK_NAMES = frozenset({"model_membership_auc", "model_empirical_epsilon"})
CALIBRATION_SIGNIFICANCE = 0.05

# Value-free reasons for checks that could not run (every viewer may see them).
REASON_TOO_FEW_ROWS = (
    f"The locked holdout has too few rows to score the model (at least {MIN_HOLDOUT_ROWS} are needed), "
    "so the check could not run and the model is blocked."
)
REASON_ONE_CLASS = (
    "The locked holdout holds only one outcome value, so the model's discrimination cannot be scored "
    "and the model is blocked."
)
REASON_TOO_FEW_EVENTS = (
    f"Too few outcome events among the holdout rows to score the model (at least {MIN_CLASS_ROWS} of "
    "each outcome value are needed), so the model is blocked."
)
REASON_NO_BASELINE = (
    "No non-private baseline was trained in the job, so the model cannot be compared with one; "
    "the model is blocked."
)
REASON_CALIBRATION_ROWS = (
    f"The locked holdout has too few rows to judge calibration (at least {MIN_CALIBRATION_ROWS} are "
    "needed), so the model is blocked."
)
REASON_ATTACK_ROWS = (
    f"Too few training or holdout rows for the membership attack (at least {MIN_ATTACK_ROWS} of each "
    "are needed), so the model is blocked."
)
_REASONS = {
    ONE_CLASS: REASON_ONE_CLASS,
    TOO_FEW_EVENTS: REASON_TOO_FEW_EVENTS,
    NO_BASELINE: REASON_NO_BASELINE,
}


@dataclass
class ModelGateReport:
    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def model_thresholds(thresholds: Mapping[str, Any] | None) -> dict[str, float]:
    """The defaults, with each known key the tier's gate sets replaced; unknown keys (the table
    gate's, required_checks) are ignored."""
    merged = dict(DEFAULT_MODEL_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key in merged and value is not None:
            merged[key] = float(value)
    return merged


def _blocked(
    name: str, threshold: float, direction: str, kind: str, reason: str, *, value: Any = None, ci: Any = None
) -> Check:
    """A check that could not run: required, so it blocks the model gate."""
    interval = (ci[0], ci[1]) if ci is not None and len(ci) == 2 else None
    return Check(name, value, threshold, False, direction, kind, "", interval, NOT_RUN, reason, required=True)


def _failed_closed(
    name: str, threshold: float, direction: str, kind: str, error: str, value: Any = None
) -> Check:
    return Check(name, value, threshold, False, direction, kind, error or "MissingValue", required=True)


def _interval(ci: Any) -> tuple[float, float] | None:
    if ci is None or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return None
    return (float(ci[0]), float(ci[1]))


def _reason(code: str | None, default: str = REASON_TOO_FEW_ROWS) -> str:
    return _REASONS.get(str(code), default)


def _auc_check(metrics: dict[str, Any], floor: float, errors: dict[str, str]) -> Check:
    name, status = "model_auc", (metrics.get("status") or {}).get("auc", "ok")
    if status != "ok":
        return _blocked(name, floor, "min", UTILITY, _reason(status))
    auc = metrics.get("auc") or {}
    interval = _interval(auc.get("ci"))
    if auc.get("value") is None or interval is None:
        return _failed_closed(name, floor, "min", UTILITY, errors.get("auc", ""))
    return Check(
        name, float(auc["value"]), floor, interval[0] >= floor, "min", UTILITY, ci=interval, required=True
    )


def _baseline_check(metrics: dict[str, Any], floor: float, errors: dict[str, str]) -> Check:
    name, status = "model_auc_vs_baseline", (metrics.get("status") or {}).get("baseline", "ok")
    if status != "ok":
        return _blocked(name, floor, "min", UTILITY, _reason(status))
    ratio = metrics.get("auc_ratio")
    if ratio is None:
        return _failed_closed(name, floor, "min", UTILITY, errors.get("baseline", ""))
    interval = _interval(metrics.get("auc_ratio_ci"))
    return Check(name, float(ratio), floor, float(ratio) >= floor, "min", UTILITY, ci=interval, required=True)


def _calibration_check(metrics: dict[str, Any], ceiling: float, errors: dict[str, str]) -> Check:
    name, status = "model_calibration", (metrics.get("status") or {}).get("calibration", "ok")
    if status != "ok":
        return _blocked(name, ceiling, "max", UTILITY, REASON_CALIBRATION_ROWS)
    result = metrics.get("calibration") or {}
    ece, p_value = result.get("ece"), result.get("ece_p_value")
    if ece is None or p_value is None:
        return _failed_closed(name, ceiling, "max", UTILITY, errors.get("calibration", ""))
    breached = float(ece) > ceiling and float(p_value) < CALIBRATION_SIGNIFICANCE
    return Check(name, float(ece), ceiling, not breached, "max", UTILITY, required=True)


def _membership_check(metrics: dict[str, Any], ceiling: float, errors: dict[str, str]) -> Check:
    name, status = "model_membership_auc", (metrics.get("status") or {}).get("membership", "ok")
    if status != "ok":
        return _blocked(name, ceiling, "max", PRIVACY, REASON_ATTACK_ROWS)
    attack = metrics.get("membership") or {}
    interval = _interval(attack.get("ci"))
    if attack.get("auc") is None or interval is None:
        return _failed_closed(name, ceiling, "max", PRIVACY, errors.get("membership", ""))
    return Check(
        name,
        float(attack["auc"]),
        ceiling,
        interval[1] <= ceiling,
        "max",
        PRIVACY,
        ci=interval,
        required=True,
    )


def _epsilon_check(metrics: dict[str, Any], claimed: float, errors: dict[str, str]) -> Check:
    name, status = "model_empirical_epsilon", (metrics.get("status") or {}).get("membership", "ok")
    if status != "ok":
        return _blocked(name, claimed, "max", PRIVACY, REASON_ATTACK_ROWS)
    bound = (metrics.get("membership") or {}).get("empirical_epsilon_lower")
    if bound is None:
        return _failed_closed(name, claimed, "max", PRIVACY, errors.get("membership", ""))
    return Check(name, float(bound), claimed, float(bound) <= claimed, "max", PRIVACY, required=True)


def model_gate(
    metrics: dict[str, Any], *, epsilon: float | None, thresholds: Mapping[str, Any] | None = None
) -> ModelGateReport:
    """Judge `validation.metrics.model.compute_model_metrics` output under the tier's thresholds.

    `epsilon` is the epsilon a DP model claims (None for a non-private model: no epsilon check).
    `thresholds` is the tier's `gate` controls; keys of DEFAULT_MODEL_THRESHOLDS override the
    defaults, other keys are ignored. Returns the verdict, each check as a dict
    (`validation.gate.Check.as_dict`) and the metrics judged.
    """
    limits = model_thresholds(thresholds)
    errors = metrics.get("errors") or {}
    checks = [
        _auc_check(metrics, limits["model_auc_lower_min"], errors),
        _baseline_check(metrics, limits["model_auc_ratio_min"], errors),
        _calibration_check(metrics, limits["calibration_ece_max"], errors),
        _membership_check(metrics, limits["membership_auc_upper_max"], errors),
    ]
    if epsilon is not None:
        checks.append(_epsilon_check(metrics, float(epsilon), errors))
    return ModelGateReport(
        passed=all(c.passed for c in checks), checks=[c.as_dict() for c in checks], metrics=metrics
    )


# --- Charts ------------------------------------------------------------------------------------


def _layout(figure: go.Figure, title: str, height: int = 320) -> go.Figure:
    # As validation.report lays out the release report's charts.
    figure.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        plot_bgcolor="#ffffff",
    )
    return figure


def _calibration_figure(result: dict[str, Any]) -> go.Figure | None:
    curve = result.get("curve") or []
    if not curve:
        return None
    figure = go.Figure(
        [
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                name="perfect calibration",
                line={"dash": "dot", "color": "#57606a"},
            ),
            go.Scatter(
                x=[b["mean_predicted"] for b in curve],
                y=[b["observed"] for b in curve],
                mode="lines+markers",
                name="model (bins of 10+ holdout rows)",
                marker_color=SYNTHETIC_COLOUR,
                hovertemplate="predicted %{x:.2f}, observed %{y:.2f}<extra></extra>",
            ),
        ]
    )
    figure.update_xaxes(title="mean predicted probability", range=[0, 1])
    figure.update_yaxes(title="observed share of events", range=[0, 1])
    return _layout(figure, f"Calibration on the holdout (ECE {result.get('ece')})")


def _membership_figure(attack: dict[str, Any], ceiling: float) -> go.Figure | None:
    auc, ci = attack.get("auc"), _interval(attack.get("ci"))
    if auc is None or ci is None:
        return None
    figure = go.Figure(
        go.Scatter(
            x=[auc],
            y=["membership attack"],
            mode="markers",
            name="attack AUC (95% interval)",
            marker={"color": SYNTHETIC_COLOUR, "size": 12},
            error_x={"type": "data", "array": [ci[1] - auc], "arrayminus": [auc - ci[0]], "visible": True},
        )
    )
    figure.add_vrect(x0=ceiling, x1=1.0, fillcolor=SYNTHETIC_COLOUR, opacity=0.12, line_width=0)
    figure.add_vline(x=0.5, line_dash="dot", annotation_text="chance")
    figure.add_vline(x=ceiling, line_dash="dash", annotation_text="ceiling")
    figure.update_xaxes(title="membership AUC (0.5 = members look like non-members)", range=[0.3, 1])
    return _layout(figure, "Membership inference on the model's outputs", 240)


def _auc_figure(metrics: dict[str, Any], floor: float) -> go.Figure | None:
    bars = []
    for label, result, colour in (
        ("model", metrics.get("auc") or {}, SYNTHETIC_COLOUR),
        ("non-private baseline", metrics.get("baseline_auc") or {}, TRAINING_COLOUR),
    ):
        value, ci = result.get("value"), _interval(result.get("ci"))
        if value is None or ci is None:
            continue
        bars.append(
            go.Bar(
                x=[label],
                y=[value],
                name=label,
                marker_color=colour,
                error_y={
                    "type": "data",
                    "array": [ci[1] - value],
                    "arrayminus": [value - ci[0]],
                    "visible": True,
                },
            )
        )
    if not bars:
        return None
    figure = go.Figure(bars)
    figure.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    figure.add_hline(
        y=floor, line_dash="dash", line_color=HOLDOUT_COLOUR, annotation_text="floor (lower bound)"
    )
    figure.update_yaxes(title="ROC AUC on the locked holdout", range=[0, 1])
    return _layout(figure, "Model vs non-private baseline")


def model_report_charts(
    metrics: dict[str, Any], *, thresholds: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Plotly JSON (figure.to_json()) for the model card: "calibration" (reliability curve over the
    bins with 10 or more holdout rows, no ROC), "membership" (the attack's AUC and interval against
    the ceiling band) and "auc" (model and baseline AUCs with intervals). Only stored aggregates
    are drawn, never a row value; a chart without data is left out."""
    limits = model_thresholds(thresholds)
    figures = {
        "calibration": _calibration_figure(metrics.get("calibration") or {}),
        "membership": _membership_figure(metrics.get("membership") or {}, limits["membership_auc_upper_max"]),
        "auc": _auc_figure(metrics, limits["model_auc_lower_min"]),
    }
    return {key: figure.to_json() for key, figure in figures.items() if figure is not None}

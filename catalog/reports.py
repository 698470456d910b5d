"""What a validation report shows a given user, assembled once for the page, the HTML export and
the API, so the three can never disagree about who sees values."""

from __future__ import annotations

import json
from typing import Any

from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to, is_custodian
from catalog.models import Release
from catalog.privacy import release_privacy_of
from validation.model_gate import model_report_charts
from validation.report import glossary_rows, report_charts
from validation.selectors import sees_full_report


def report_visible_to(
    *, user: Any, gate: dict[str, Any], metrics: dict[str, Any], is_dp: bool = False, charts: bool = True
) -> dict[str, Any]:
    """Everything for oversight roles, pass/fail and reasons otherwise; for a DP request, values
    only for custodians (they are computed on the real rows). `charts=False` skips building the
    plots for callers that do not draw them (the API)."""
    full = sees_full_report(user) and (not is_dp or is_custodian(user))
    checks = list(gate.get("checks") or [])
    return {
        "full_report": full,
        "is_dp": is_dp,
        "gate": dp_gate_visible_to(user=user, gate=gate, is_dp=is_dp),
        "metrics": dp_metrics_visible_to(user=user, metrics=metrics, checks=checks, is_dp=is_dp),
        "charts": report_charts(metrics, checks) if full and charts else [],
        "glossary": glossary_rows(metrics, checks) if full else [],
    }


def release_report_context(*, user: Any, release: Release) -> dict[str, Any]:
    """The release page's and the exported report's context: the release, its privacy block and
    the report as `user` may see it (a model release's: the model gate on the holdout)."""
    if release.is_model:
        return {
            "release": release,
            "privacy": release_privacy_of(release),
            **model_report_visible_to(user=user, release=release),
        }
    return {
        "release": release,
        "privacy": release_privacy_of(release),
        **report_visible_to(user=user, gate=release.gate, metrics=release.metrics, is_dp=release.is_dp),
    }


def model_report_visible_to(*, user: Any, release: Release, charts: bool = True) -> dict[str, Any]:
    """A model release's evaluation as `user` may see it. The figures are computed on the real
    training rows and the locked holdout, outside the DP guarantee: custodians see them (and the
    charts); everyone else sees each check's status, threshold and reason, as for a DP table.
    The glossary of table metrics does not apply (a model's checks explain themselves)."""
    full = sees_full_report(user) and is_custodian(user)
    checks = list(release.gate.get("checks") or [])
    return {
        "full_report": full,
        "is_dp": True,
        "gate": dp_gate_visible_to(user=user, gate=release.gate, is_dp=True),
        "metrics": dp_metrics_visible_to(user=user, metrics=release.metrics, checks=checks, is_dp=True),
        "charts": model_charts(release.metrics, thresholds=_tier_gate(release)) if full and charts else [],
        "glossary": [],
    }


_MODEL_CHART_TITLES = {
    "auc": "Model and non-private baseline AUC on the holdout",
    "calibration": "Calibration on the holdout",
    "membership": "Membership inference on the model's outputs",
}


def model_charts(
    metrics: dict[str, Any], *, thresholds: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """validation.model_gate's figures (plotly JSON) as the page's chart entries, drawn against
    the thresholds the gate applied (the tier's)."""
    return [
        {
            "id": f"model-chart-{name}",
            "title": _MODEL_CHART_TITLES.get(name, name.capitalize()),
            "figure": json.loads(figure),
        }
        for name, figure in model_report_charts(metrics, thresholds=thresholds).items()
    ]


def _tier_gate(release: Release) -> dict[str, Any] | None:
    return release.tier_controls.get("gate")

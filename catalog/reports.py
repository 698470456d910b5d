"""What a validation report shows a given user, assembled once for the page, the HTML export and
the API, so the three can never disagree about who sees values."""

from __future__ import annotations

from typing import Any

from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to, is_custodian
from catalog.models import Release
from catalog.privacy import release_privacy_of
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
    the report as `user` may see it."""
    return {
        "release": release,
        "privacy": release_privacy_of(release),
        **report_visible_to(user=user, gate=release.gate, metrics=release.metrics, is_dp=release.is_dp),
    }

"""Who sees how much of a validation report.

Privacy officers, auditors and admins answer for releases and see every metric. Everyone else who
may see a release (requesters, teammates, stewards) sees whether each check passed and a coarse
reason, never values: a value computed on the training rows is itself information about them, and
with bring-your-own uploads exact values would make the gate a membership oracle.
"""

from __future__ import annotations

from typing import Any

from core.roles import SEES_FULL_REPORTS, has_role
from validation.gate import check_status, needs_acknowledgement
from validation.glossary import reason_for, title_for

# Aggregates that say nothing about the source rows beyond what the release card already shows.
_COARSE_METRIC_KEYS = ("suite_version", "rows_synthetic")


def sees_full_report(user: Any) -> bool:
    return has_role(user, *SEES_FULL_REPORTS)


def gate_visible_to(*, user: Any, gate: dict[str, Any]) -> dict[str, Any]:
    """The gate as `user` may see it: all of it, or names, status, thresholds and reasons.

    Either way each check carries its glossary `title`, its `status` ("passed", "failed",
    "not_run") and a value-free `reason`, and the gate lists the required checks that did not run
    (`needs_acknowledgement`). The sentence with numbers (glossary.check_explanation) is rendered
    from the copy the viewer finally gets (a DP release's values are withheld after this)."""
    checks = list(gate.get("checks") or [])
    # A release published despite a failed gate says so to everyone who can see it, with who
    # approved it and why (a requester needs that as much as a reviewer).
    overridden = {"overridden": True, "override": gate.get("override")} if gate.get("overridden") else {}
    if sees_full_report(user):
        shown = [{**c, **_words(c)} for c in checks]
    else:
        shown = []
        for c in checks:
            coarse = {
                "name": c.get("name"),
                "value": None,
                "threshold": c.get("threshold"),
                "passed": bool(c.get("passed")),
                "direction": c.get("direction"),
                "kind": c.get("kind"),
                "status": check_status(c),
                "required": bool(c.get("required")),
                "reason": _coarse_reason(c),
            }
            shown.append({**coarse, **_words(coarse)})
    return {
        "passed": bool(gate.get("passed")),
        "checks": shown,
        "needs_acknowledgement": needs_acknowledgement(checks),
        **overridden,
    }


def _coarse_reason(check: dict[str, Any]) -> str:
    """Value-free: why it did not run or could not be computed, or what a failure means."""
    if check_status(check) == "not_run" or check.get("error"):
        return str(check.get("reason") or "")
    # A failure's own reason is value-free by construction (validation.suite), so it is shown as is.
    return "" if check.get("passed") else str(check.get("reason") or reason_for(str(check.get("name"))))


def _words(check: dict[str, Any]) -> dict[str, str]:
    return {"title": title_for(str(check.get("name"))), "status": check_status(check)}


def metrics_visible_to(*, user: Any, metrics: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    """All metrics for oversight roles; otherwise a coarse summary by kind, with reasons."""
    if sees_full_report(user):
        return metrics
    summary: dict[str, bool] = {}
    for check in checks:
        kind = str(check.get("kind") or "utility")
        summary[kind] = summary.get(kind, True) and bool(check.get("passed"))
    failed = [reason_for(str(c.get("name"))) for c in checks if not c.get("passed")]
    return {
        **{k: metrics[k] for k in _COARSE_METRIC_KEYS if k in metrics},
        "summary": {f"{kind}_passed": ok for kind, ok in sorted(summary.items())},
        "reasons": list(dict.fromkeys(failed)),
        "detail": "Privacy officers, auditors and admins see every metric of this report.",
    }


def report_for_job(*, job_id: Any) -> Any:
    """The job's validation report, or None. Callers authorize the job first."""
    from validation.models import ValidationReport

    return ValidationReport.objects.filter(job_id=job_id).first()

"""The governance dashboard: one page of charts (each with its data as a table) for privacy
officers, auditors and admins. Reads come from catalog.governance; this module parses the period,
authorizes, draws and renders."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import plotly.graph_objects as go
from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals.charts import TIER_COLOURS
from catalog import governance as gov
from core.roles import AUDIT_READERS, has_role

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "font": {"family": "system-ui, sans-serif", "size": 13},
    "legend": {"orientation": "h", "y": -0.25},
    "height": 340,
}
# Colours that stay apart for common colour-vision deficiencies (Okabe-Ito), in category order.
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
_OUTCOME_COLOURS = {
    "approve": "#1a7f37", "request_changes": "#9a6700", "reject": "#cf222e",
    "approved": "#1a7f37", "pending": "#9a6700", "declined": "#57606a",
}  # fmt: skip
_LABELS = {"approve": "Approved", "request_changes": "Changes requested", "reject": "Rejected"}


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False, label="To (included)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        default = gov.default_period()
        end: date = cleaned.get("end") or default.end
        start: date = cleaned.get("start") or end - (default.end - default.start)
        if start > end:
            raise forms.ValidationError("The start date is after the end date; swap them.")
        if (end - start).days >= gov.MAX_PERIOD_DAYS:
            raise forms.ValidationError(
                f"Choose at most {gov.MAX_PERIOD_DAYS} days; narrow the dates to look further back."
            )
        cleaned["period"] = gov.Period(start, end)
        return cleaned

    def period(self) -> gov.Period:
        """The chosen period, or the default one when the input is invalid (errors are shown)."""
        return self.cleaned_data["period"] if self.is_valid() else gov.default_period()


@require_GET
def governance_dashboard(request: HttpRequest) -> HttpResponse:
    """Cycle times, decisions, gate failures, exceptions, privacy budget and downloads."""
    if not has_role(request.user, *AUDIT_READERS):
        raise Http404("No such page.")
    default = gov.default_period()
    form = PeriodForm(request.GET or None, initial={"start": default.start, "end": default.end})
    period = form.period() if form.is_bound else default
    user = request.user
    context = {
        "form": form,
        "period": period,
        "charts": [
            _cycle_chart(gov.cycle_time_by_tier(user=user, period=period)),
            _weekly_chart(
                "chart-decisions", "Review decisions per week, by outcome", "Decisions",
                gov.decisions_per_week(user=user, period=period), "No decision was recorded in this period.",
            ),
            _weekly_chart(
                "chart-gate-failures", "Checks that blocked a release, per week, by check", "Failed checks",
                gov.gate_failures_per_week(user=user, period=period),
                "No job failed the release gate in this period.",
            ),
            _weekly_chart(
                "chart-overrides", "Gate-override proposals per month, by status", "Proposals",
                gov.overrides_per_month(user=user, period=period),
                "No gate override was proposed in this period.", monthly=True,
            ),
            _budget_chart(gov.epsilon_per_source(user=user, period=period)),
            _downloads_chart(gov.downloads_per_release(user=user, period=period)),
        ],
        "overrides": gov.overrides_in(user=user, period=period),
        "access_grants": gov.access_grants_in(user=user, period=period),
    }  # fmt: skip
    return render(request, "catalog/governance.html", context)


# --- Figures: one dict per chart, {id, title, figure, columns, rows, empty} ---------------------


def _chart(
    chart_id: str, title: str, figure: go.Figure | None, columns: list[str], rows: list[list[Any]], empty: str
) -> dict[str, Any]:
    """`figure` None (nothing to plot) leaves only `empty`, said in words; never an empty axis."""
    if figure is not None:
        figure.update_layout(title=title, **_LAYOUT)
    return {
        "id": chart_id,
        "title": title,
        # Through JSON so dates and Decimals become plain values json_script can carry.
        "figure": json.loads(figure.to_json()) if figure is not None else None,
        "columns": columns,
        "rows": rows,
        "empty": empty,
    }


def _cycle_chart(summary: list[dict[str, Any]]) -> dict[str, Any]:
    figure = None
    if summary:
        figure = go.Figure()
        for stat, pattern in (("median", ""), ("longest", "/")):
            figure.add_bar(
                name=f"{stat} hours",
                x=[s["tier"] for s in summary],
                y=[round(s[stat], 1) for s in summary],
                marker={"color": [TIER_COLOURS.get(s["tier"], "#57606a") for s in summary],
                        "pattern": {"shape": pattern}},
            )  # fmt: skip
        figure.update_layout(barmode="group", xaxis_title="Tier", yaxis_title="Hours")
    rows = [[s["tier"], s["count"], round(s["median"], 1), round(s["longest"], 1)] for s in summary]
    return _chart(
        "chart-cycle-time", "Approval cycle time by tier (hours, submission to decision)", figure,
        ["Tier", "Requests decided", "Median hours", "Longest hours"], rows,
        "No request was decided in this period.",
    )  # fmt: skip


def _weekly_chart(
    chart_id: str, title: str, y_title: str, series: gov.Series, empty: str, *, monthly: bool = False
) -> dict[str, Any]:
    labels = [_LABELS.get(c, c.replace("_", " ")) for c in series.categories]
    figure = None
    if series.total:
        figure = go.Figure()
        x = [b.isoformat() for b in series.buckets]
        for i, (category, label) in enumerate(zip(series.categories, labels, strict=True)):
            colour = _OUTCOME_COLOURS.get(category, _PALETTE[i % len(_PALETTE)])
            figure.add_bar(name=label, x=x, y=series.counts[category], marker_color=colour)
        figure.update_layout(
            barmode="stack",
            xaxis={"title": "Month starting" if monthly else "Week starting (Monday)", "type": "date"},
            yaxis={"title": y_title, "rangemode": "tozero"},
        )
    bucket = "Month starting" if monthly else "Week starting"
    return _chart(chart_id, title, figure, [bucket, *labels], series.rows(), empty)


def _budget_chart(budgets: list[gov.SourceBudget]) -> dict[str, Any]:
    figure = None
    if budgets:
        names = [b.name for b in budgets]
        figure = go.Figure()
        figure.add_bar(
            name="spent",
            y=names,
            x=[float(b.spent) for b in budgets],
            orientation="h",
            marker_color="#0072B2",
        )
        figure.add_bar(name="remaining", y=names, x=[float(b.remaining) for b in budgets], orientation="h",
                       marker_color="#d0d7de")  # fmt: skip
        figure.update_layout(
            barmode="stack", xaxis_title="Epsilon (spent + remaining = cap)", yaxis_title="Source"
        )
    rows = [
        [b.name, b.status, b.cap, b.spent, b.remaining, f"{b.share:.0%}", b.spent_in_period] for b in budgets
    ]
    return _chart(
        "chart-epsilon", "Epsilon spent per source against its cap", figure,
        ["Source", "Status", "Cap", "Spent", "Remaining", "Share of cap spent", "Spent in this period (net)"],
        rows, "No source is registered.",
    )  # fmt: skip


def _downloads_chart(downloads: list[dict[str, Any]]) -> dict[str, Any]:
    labels = [f"{d['title'][:40]} ({str(d['pk'])[:8]})" for d in downloads]
    figure = None
    if downloads:
        figure = go.Figure()
        figure.add_bar(name="served", x=labels, y=[d["served"] for d in downloads], marker_color="#0072B2")
        if any(d["failed"] for d in downloads):
            figure.add_bar(name="failed (file unreadable)", x=labels, y=[d["failed"] for d in downloads],
                           marker_color="#D55E00")  # fmt: skip
        figure.update_layout(
            barmode="stack", xaxis={"title": "Release", "type": "category"}, yaxis_title="Downloads"
        )
    rows = [
        [label, d["audience"], d["served"], d["failed"]] for label, d in zip(labels, downloads, strict=True)
    ]
    return _chart(
        "chart-downloads", "Downloads per release", figure,
        ["Release", "Audience", "Downloads served", "Downloads failed"], rows,
        "No release was downloaded in this period.",
    )  # fmt: skip

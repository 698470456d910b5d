"""Plotly figures for the review-evidence page, as JSON-ready dicts.

The page embeds each figure in a <script type="application/json"> tag and static/js/charts.js
draws it with the locally served plotly.js: no inline script, so the strict CSP holds.
"""

from __future__ import annotations

import json
from statistics import median
from typing import Any

import plotly.graph_objects as go

from approvals.selectors import CycleTime

TIER_ORDER = ["low", "medium", "high"]
TIER_COLOURS = {"low": "#1a7f37", "medium": "#9a6700", "high": "#cf222e"}
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "font": {"family": "system-ui, sans-serif", "size": 13},
}


def cycle_time_figures(times: list[CycleTime]) -> list[dict[str, Any]]:
    """[{id, title, figure}] for the template; empty when there is nothing to plot."""
    if not times:
        return []
    return [
        {"id": "chart-cycle-per-request", "title": "Cycle time per request", "figure": _per_request(times)},
        {"id": "chart-cycle-per-tier", "title": "Cycle time per tier", "figure": _per_tier(times)},
    ]


def _as_dict(figure: go.Figure) -> dict[str, Any]:
    # Through JSON so numpy values become plain numbers that json_script can serialize.
    return json.loads(figure.to_json())


def _per_request(times: list[CycleTime]) -> dict[str, Any]:
    # One category per request, in submission order (a date axis makes a single bar span it).
    labels = [f"{t.submitted_at:%Y-%m-%d} {t.title[:28]} #{i + 1}" for i, t in enumerate(times)]
    figure = go.Figure()
    for tier in TIER_ORDER:
        chosen = [(label, t) for label, t in zip(labels, times, strict=True) if t.tier == tier]
        if not chosen:
            continue
        figure.add_bar(
            name=f"{tier} tier",
            x=[label for label, _ in chosen],
            y=[round(t.hours, 2) for _, t in chosen],
            marker_color=TIER_COLOURS[tier],
            text=[t.outcome for _, t in chosen],
            hovertemplate="%{x}<br>%{y:.1f} h (%{text})<extra></extra>",
        )
    figure.update_layout(
        title="Hours from first submission to final decision, by request",
        xaxis={"title": "Request (first submitted, UTC)", "type": "category", "categoryorder": "array",
               "categoryarray": labels},
        yaxis_title="Hours",
        barmode="relative",
        **_LAYOUT,
    )  # fmt: skip
    return _as_dict(figure)


def _per_tier(times: list[CycleTime]) -> dict[str, Any]:
    figure = go.Figure()
    for tier in TIER_ORDER:
        hours = [round(t.hours, 2) for t in times if t.tier == tier]
        if hours:
            figure.add_box(name=tier, y=hours, boxpoints="all", marker_color=TIER_COLOURS[tier])
    figure.update_layout(
        title="Hours from first submission to final decision, by tier",
        xaxis_title="Tier",
        yaxis_title="Hours",
        showlegend=False,
        **_LAYOUT,
    )
    return _as_dict(figure)


def tier_summary(times: list[CycleTime]) -> list[dict[str, Any]]:
    """Count, median and longest cycle time per tier, for the table beside the charts."""
    summary = []
    for tier in TIER_ORDER:
        hours = [t.hours for t in times if t.tier == tier]
        if hours:
            summary.append(
                {"tier": tier, "count": len(hours), "median": median(hours), "longest": max(hours)}
            )
    return summary


# --- Bake-off -----------------------------------------------------------------------------------

PASS_COLOUR, FAIL_COLOUR = "#1a7f37", "#cf222e"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower risk, higher utility),
    ordered by risk: the frontier a requester trades along."""
    front = []
    for i, (risk, utility) in enumerate(points):
        dominated = any(
            r <= risk and u >= utility and (r, u) != (risk, utility)
            for j, (r, u) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def pareto_figure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Privacy risk (x, lower is better) against utility (y, higher is better), one point per
    candidate with both scores, coloured by the gate's verdict; the Pareto front as a line and
    the recommended candidate as a star. None when no candidate has both scores to plot."""
    plotted = [r for r in rows if r["risk"] is not None and r["utility"] is not None]
    if not plotted:
        return None
    figure = go.Figure()
    points = [(r["risk"], r["utility"]) for r in plotted]
    front = pareto_front(points)
    figure.add_scatter(
        name="Pareto front",
        x=[points[i][0] for i in front],
        y=[points[i][1] for i in front],
        mode="lines",
        line={"color": "#57606a", "dash": "dot"},
        hoverinfo="skip",
    )
    for passed, label, colour in (
        (True, "passed the gate", PASS_COLOUR),
        (False, "failed the gate", FAIL_COLOUR),
    ):
        chosen = [r for r in plotted if r["passed"] == passed]
        if chosen:
            figure.add_scatter(
                name=label,
                x=[r["risk"] for r in chosen],
                y=[r["utility"] for r in chosen],
                mode="markers+text",
                text=[r["label"] for r in chosen],
                textposition="top center",
                marker={
                    "color": colour,
                    "size": 12,
                    "symbol": ["star" if r["recommended"] else "circle" for r in chosen],
                },
                hovertemplate="%{text}<br>risk %{x:.3f}, utility %{y:.3f}<extra></extra>",
            )
    figure.update_layout(
        title="Bake-off: privacy risk against utility (recommended: star)",
        xaxis_title="Privacy risk (worst attack advantage; lower is better)",
        yaxis_title="Utility (mean of the utility checks; higher is better)",
        **_LAYOUT,
    )
    return _as_dict(figure)

"""Plotly figures for dataset pages. Built from stored aggregates only (suppressed small cells)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from generation.models import MICRO


def histogram_figure(name: str, histogram: dict[str, Any], k: int) -> go.Figure:
    edges, counts = histogram["edges"], histogram["counts"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    shown = [c if c is not None else 0 for c in counts]
    hidden = [f"fewer than {k} rows (suppressed)" if c is None else f"{c} rows" for c in counts]
    figure = go.Figure(
        go.Bar(
            x=centers,
            y=shown,
            width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)],
            hovertext=hidden,
            hoverinfo="x+text",
            marker_color="#1f6feb",
        )
    )
    figure.update_layout(
        height=220,
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
        title={"text": name, "font": {"size": 13}},
        bargap=0.02,
        yaxis_title="rows",
    )
    return figure


def category_figure(name: str, top: list[list[Any]]) -> go.Figure:
    figure = go.Figure(go.Bar(x=[str(v) for v, _ in top], y=[c for _, c in top], marker_color="#8250df"))
    figure.update_layout(
        height=220,
        margin={"l": 40, "r": 10, "t": 30, "b": 60},
        title={"text": name, "font": {"size": 13}},
        yaxis_title="rows",
    )
    return figure


def budget_figure(entries: list[Any], cap: float) -> go.Figure:
    """Cumulative epsilon spent over time (a step line), against the cap."""
    times = [e.at for e in entries]
    spent = [e.spent_after_micro / MICRO for e in entries]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=times, y=spent, mode="lines+markers", line_shape="hv", name="spent", line={"color": "#1f6feb"}
        )
    )
    if times:
        figure.add_trace(
            go.Scatter(
                x=[times[0], times[-1]],
                y=[cap, cap],
                mode="lines",
                name="cap",
                line={"color": "#cf222e", "dash": "dash"},
            )
        )
    figure.update_layout(
        height=300,
        margin={"l": 50, "r": 10, "t": 20, "b": 40},
        yaxis_title="epsilon spent",
        yaxis={"rangemode": "tozero"},
        legend={"orientation": "h"},
    )
    return figure

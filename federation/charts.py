"""The study page's per-round chart, as a JSON-ready plotly figure (drawn by static/js/charts.js)."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from federation.models import StudyRound


def rounds_figure(rounds: list[StudyRound]) -> dict[str, Any] | None:
    """Epsilon so far (left axis: per record, what each site's ledger is debited, and the
    accountant's per site) and the update norms' median and max (right axis) per round."""
    if not rounds:
        return None
    x = [r.number for r in rounds]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Scatter(
            x=x,
            y=[float(r.epsilon) if r.epsilon is not None else None for r in rounds],
            name="epsilon so far (per record, debited)",
            mode="lines+markers",
        ),
        secondary_y=False,
    )
    if any(r.epsilon_per_site is not None for r in rounds):
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[float(r.epsilon_per_site) if r.epsilon_per_site is not None else None for r in rounds],
                name="epsilon so far (per site)",
                mode="lines+markers",
            ),
            secondary_y=False,
        )
    for key in ("median", "max"):
        values = [r.norm_summary.get(key) for r in rounds]
        if any(v is not None for v in values):
            figure.add_trace(
                go.Scatter(
                    x=x, y=values, name=f"update norm ({key})", mode="lines+markers", line={"dash": "dot"}
                ),
                secondary_y=True,
            )
    figure.update_layout(
        margin={"l": 60, "r": 60, "t": 30, "b": 50},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        font={"family": "system-ui, sans-serif", "size": 13},
        legend={"orientation": "h"},
    )
    figure.update_xaxes(title_text="round", dtick=1)
    figure.update_yaxes(title_text="epsilon", secondary_y=False)
    figure.update_yaxes(title_text="update norm", secondary_y=True)
    result: dict[str, Any] = json.loads(figure.to_json())
    return result

"""The lineage page of a release: the graph (plotly), then every node in order with its link."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.lineage import STAGE_LABELS, STAGES, release_lineage
from catalog.services import release_get_for
from core.errors import NotFound


@require_GET
def release_lineage_view(request: HttpRequest, release_id: str) -> HttpResponse:
    try:
        release = release_get_for(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    graph = release_lineage(release=release, user=request.user)
    labels = {node["id"]: node["label"] for node in graph["nodes"]}
    parents: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        parents.setdefault(edge["to"], []).append(labels[edge["from"]])
    rows = [
        {
            **node,
            "stage": STAGE_LABELS.get(node["kind"], node["kind"]),
            "parents": parents.get(node["id"], []),
        }
        for node in graph["nodes"]
    ]
    context = {"release": release, "rows": rows, "figure": lineage_figure(graph)}
    return render(request, "catalog/lineage.html", context)


# --- The picture ----------------------------------------------------------------------------------

STAGE_COLOURS = {
    "source": "#0969da",
    "signoff": "#0969da",
    "request": "#8250df",
    "policy": "#9a6700",
    "tier": "#9a6700",
    "decision": "#8250df",
    "ledger": "#bf3989",
    "job": "#57606a",
    "candidate": "#57606a",
    "attempt": "#57606a",
    "override": "#cf222e",
    "release": "#1a7f37",
    "download": "#1a7f37",
    "grant": "#1a7f37",
    "withdrawal": "#cf222e",
}


def lineage_figure(graph: dict[str, Any]) -> dict[str, Any]:
    """Nodes in one column per stage present (left to right), stacked by time; edges as lines;
    hover shows the label and time. A JSON-ready dict for `{% plotly_figure %}`."""
    kinds = [k for k in STAGES if any(n["kind"] == k for n in graph["nodes"])]
    position: dict[str, tuple[int, int]] = {}
    for column, kind in enumerate(kinds):
        for row, node in enumerate(n for n in graph["nodes"] if n["kind"] == kind):
            position[node["id"]] = (column, -row)
    figure = go.Figure()
    figure.add_scatter(
        x=list(_edge_coords(graph["edges"], position, 0)),
        y=list(_edge_coords(graph["edges"], position, 1)),
        mode="lines",
        line={"color": "#8c959f", "width": 1},
        hoverinfo="skip",
        showlegend=False,
    )
    for kind in kinds:
        members = [n for n in graph["nodes"] if n["kind"] == kind]
        figure.add_scatter(
            name=STAGE_LABELS[kind],
            x=[position[n["id"]][0] for n in members],
            y=[position[n["id"]][1] for n in members],
            mode="markers",
            marker={
                "size": 14,
                "color": STAGE_COLOURS.get(kind, "#57606a"),
                "line": {"color": "#ffffff", "width": 1},
            },
            hovertext=[_hover(n) for n in members],
            hoverinfo="text",
        )
    deepest = max((-y for _, y in position.values()), default=0)
    figure.update_layout(
        title="Lineage, left to right",
        showlegend=False,
        height=260 + 40 * deepest,
        margin={"l": 20, "r": 20, "t": 50, "b": 90},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        font={"family": "system-ui, sans-serif", "size": 13},
        xaxis={"tickmode": "array", "tickvals": list(range(len(kinds))),
               "ticktext": [STAGE_LABELS[k] for k in kinds], "tickangle": -35,
               "showgrid": False, "zeroline": False, "fixedrange": True},
        yaxis={"visible": False, "fixedrange": True},
    )  # fmt: skip
    return json.loads(figure.to_json())


def _edge_coords(
    edges: Iterable[dict[str, str]], position: dict[str, tuple[int, int]], axis: int
) -> Iterable[Any]:
    for edge in edges:
        if edge["from"] in position and edge["to"] in position:
            yield position[edge["from"]][axis]
            yield position[edge["to"]][axis]
            yield None  # breaks the line between edges


def _hover(node: dict[str, Any]) -> str:
    # Plotly reads a few HTML tags in hover text: escape the label so a title stays text.
    at = node["at"]
    when = f"<br>{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(at, datetime) else ""
    return f"{html.escape(node['label'])}{when}"

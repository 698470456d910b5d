"""The reviewer's report: plotly figures and glossary rows built from a report's stored JSON.

Only the stored aggregates are used (no table is read), so the page, the API and the HTML export
show the same numbers. Figures are plotly objects; pages embed them as JSON data for
static/js/charts.js (CSP-safe), the export inlines plotly.js.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import plotly.graph_objects as go

from validation.gate import DEFAULT_THRESHOLDS
from validation.glossary import GLOSSARY, Entry

TRAINING_COLOUR = "#1f6feb"
SYNTHETIC_COLOUR = "#d1242f"
HOLDOUT_COLOUR = "#8250df"
DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]  # -1 blue, 0 white, +1 red
_MARGIN = {"l": 50, "r": 20, "t": 40, "b": 40}


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class GlossaryRow:
    name: str
    entry: Entry
    value: Any
    threshold: Any
    passed: bool | None


def report_charts(metrics: dict[str, Any], checks: list[dict[str, Any]]) -> list[Chart]:
    """Every chart the report has data for, in reading order (overview first)."""
    charts: list[Chart] = []
    for build in (_risks_chart, _tstr_chart, _shapes_chart, _pairs_heatmap, _dcr_chart):
        chart = build(metrics, checks)
        if chart is not None:
            charts.append(chart)
    charts += _distribution_charts(metrics)
    return charts


def glossary_rows(metrics: dict[str, Any], checks: list[dict[str, Any]]) -> list[GlossaryRow]:
    by_name = {c["name"]: c for c in checks}
    extras = {
        "dcr_share_closer_to_training": (metrics.get("dcr") or {}).get("share_closer_to_training"),
        "qi_replicated_uniques": (metrics.get("qi_replicated_uniques") or {}).get("synthetic"),
        "rare_category_coverage": (metrics.get("category_coverage") or {}).get("rare_coverage"),
        "outcome_prevalence": (metrics.get("outcome") or {}).get("synthetic"),
    }
    rows = []
    for name, entry in GLOSSARY.items():
        entry = _for_this_report(name, entry, metrics)
        check = by_name.get(name)
        if check is not None:
            # A check that was not run has no verdict to show beside its glossary entry.
            verdict = None if check.get("status") == "not_run" else check.get("passed")
            rows.append(GlossaryRow(name, entry, check.get("value"), check.get("threshold"), verdict))
        elif name in extras:
            rows.append(GlossaryRow(name, entry, extras[name], None, None))
    return rows


def _for_this_report(name: str, entry: Entry, metrics: dict[str, Any]) -> Entry:
    # The glossary's outcome rule has two branches; a reviewer needs to know which one this
    # report took, or a TSTR ratio on a by-convention outcome reads like one on the study's.
    chosen = outcome_chosen(metrics.get("tstr") or {})
    if name == "tstr_auc_ratio" and chosen:
        return replace(entry, measures=f"{entry.measures} This report: {chosen}.")
    return entry


def outcome_chosen(result: dict[str, Any]) -> str:
    """Which outcome TSTR predicted and how it was chosen, in words ("" when it had none)."""
    outcome = result.get("outcome")
    if not outcome:
        return ""
    # Reports from before outcomes could be declared have no source: they all used the convention.
    if result.get("outcome_source") == "declared":
        return f"outcome {outcome}, declared by the data steward"
    return (
        f"outcome {outcome}, chosen by convention (no requested column is declared the outcome, so "
        "the first requested sensitive column with two values)"
    )


def _layout(figure: go.Figure, title: str, height: int = 320) -> go.Figure:
    figure.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin=_MARGIN,
        legend={"orientation": "h", "y": -0.2},
        plot_bgcolor="#ffffff",
    )
    return figure


# --- Overview charts --------------------------------------------------------------------------


def _risk_rows(
    metrics: dict[str, Any], checks: list[dict[str, Any]]
) -> list[tuple[str, float, list[Any], float]]:
    """(label, value, [lo, hi], ceiling) on one 0..1 'attacker advantage' scale."""
    thresholds = {c["name"]: c.get("threshold") for c in checks}
    rows: list[tuple[str, float, list[Any], float]] = []
    anonymeter = metrics.get("anonymeter") or {}
    for attack, name in (
        ("singling_out", "singling_out_risk"),
        ("linkability", "linkability_risk"),
        ("inference", "inference_risk"),
    ):
        result = anonymeter.get(attack) or {}
        if result.get("risk") is not None:
            ceiling = float(thresholds.get(name) or DEFAULT_THRESHOLDS[f"{name}_max"])
            rows.append(
                (GLOSSARY[name].title, float(result["risk"]), result.get("ci") or [None, None], ceiling)
            )
    mia = metrics.get("membership_inference") or {}
    if mia.get("auc") is not None:
        # AUC on the same scale as the risks: advantage = 2 * AUC - 1 (0 = chance).
        auc = float(mia["auc"])
        lo, hi = mia.get("auc_ci") or [auc, auc]
        ceiling = float(thresholds.get("membership_inference_auc") or DEFAULT_THRESHOLDS["mia_auc_max"])
        rows.append(
            (
                "Membership inference (advantage = 2 AUC - 1)",
                2 * auc - 1,
                [2 * lo - 1, 2 * hi - 1],
                2 * ceiling - 1,
            )
        )
    return rows


def _risks_chart(metrics: dict[str, Any], checks: list[dict[str, Any]]) -> Chart | None:
    rows = _risk_rows(metrics, checks)
    if not rows:
        return None
    labels = [r[0] for r in rows]
    values = [r[1] for r in rows]
    plus = [max(0.0, (r[2][1] if r[2][1] is not None else r[1]) - r[1]) for r in rows]
    minus = [max(0.0, r[1] - (r[2][0] if r[2][0] is not None else r[1])) for r in rows]
    figure = go.Figure(
        [
            go.Bar(
                y=labels,
                x=values,
                orientation="h",
                name="estimate (95% interval)",
                marker_color=SYNTHETIC_COLOUR,
                error_x={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
            ),
            go.Scatter(
                y=labels,
                x=[r[3] for r in rows],
                mode="markers",
                name="ceiling",
                marker={"symbol": "line-ns-open", "size": 22, "color": "#24292f", "line": {"width": 3}},
            ),
        ]
    )
    figure.update_xaxes(title="risk (0 = no better than chance)", range=[-0.2, 1])
    return Chart(
        "chart-risks",
        "Privacy risks with 95% intervals",
        _layout(figure, "Privacy risks", 300),
        "Each bar is an attack's success beyond chance; the mark is the gate's ceiling.",
    )


def _tstr_chart(metrics: dict[str, Any], _checks: list[dict[str, Any]]) -> Chart | None:
    result = metrics.get("tstr") or {}
    if result.get("status") != "ok":
        return None
    bars = []
    for label, key, colour in (
        ("Train real, test real (TRTR)", "auc_trtr", TRAINING_COLOUR),
        ("Train synthetic, test real (TSTR)", "auc_tstr", SYNTHETIC_COLOUR),
    ):
        value, (lo, hi) = result[key], result[f"{key}_ci"]
        bars.append(
            go.Bar(
                x=[label],
                y=[value],
                name=label,
                marker_color=colour,
                error_y={"type": "data", "array": [hi - value], "arrayminus": [value - lo], "visible": True},
            )
        )
    figure = go.Figure(bars)
    figure.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    figure.update_yaxes(title=f"ROC AUC predicting {result['outcome']}", range=[0, 1])
    return Chart(
        "chart-tstr",
        "TSTR vs TRTR",
        _layout(figure, f"TSTR vs TRTR (ratio {result['ratio']:.2f})"),
        f"Tested on {result['n_test']} {str(result['test_rows']).replace('_', ' ')} rows; "
        f"{outcome_chosen(result)}.",
    )


def _shapes_chart(metrics: dict[str, Any], checks: list[dict[str, Any]]) -> Chart | None:
    shapes = metrics.get("column_shapes") or {}
    if not shapes:
        return None
    names = sorted(shapes, key=lambda n: shapes[n])
    figure = go.Figure(go.Bar(x=names, y=[shapes[n] for n in names], marker_color=TRAINING_COLOUR))
    threshold = next((c["threshold"] for c in checks if c["name"] == "column_shape_similarity"), None)
    if threshold is not None:
        figure.add_hline(y=threshold, line_dash="dash", annotation_text="floor (mean)")
    figure.update_yaxes(range=[0, 1], title="similarity (1 = same shape)")
    return Chart("chart-shapes", "Column shapes", _layout(figure, "Per-column shape similarity"))


def _pairs_heatmap(metrics: dict[str, Any], _checks: list[dict[str, Any]]) -> Chart | None:
    """A heatmap drawn as coloured square markers: plotly's Heatmap trace and its colour bar set
    inline style attributes, which our CSP (style-src 'self') blocks; markers do not."""
    pairs = [
        p
        for p in metrics.get("column_pair_trends") or []
        if p.get("real") is not None and p.get("synthetic") is not None
    ]
    if not pairs:
        return None
    names = [c["name"] for c in metrics.get("columns") or []]
    x, y, values = [], [], []
    for pair in pairs:
        a, b = pair["columns"]
        difference = round(pair["real"] - pair["synthetic"], 3)
        for first, second in ((a, b), (b, a)):
            x.append(first)
            y.append(second)
            values.append(difference)
    size = max(12, min(40, int(360 / max(1, len(names)))))
    figure = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            text=[f"{v:+.2f}" for v in values],
            textfont={"size": 9},
            marker={
                "symbol": "square",
                "size": size,
                "color": values,
                "colorscale": DIVERGING,
                "cmin": -1,
                "cmax": 1,
            },
            hovertemplate="%{x} / %{y}: real - synthetic = %{text}<extra></extra>",
        )
    )
    figure.update_xaxes(categoryorder="array", categoryarray=names, tickangle=-45)
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(names)))
    return Chart(
        "chart-pairs",
        "Correlation difference",
        _layout(figure, "Correlation difference (real - synthetic)", 460),
        "Pearson correlation for two continuous columns, Cramér's V otherwise; 0 = same strength. "
        "Red (positive): the real data's relationship is stronger; blue: the synthetic data's is.",
    )


def _dcr_chart(metrics: dict[str, Any], _checks: list[dict[str, Any]]) -> Chart | None:
    histogram = (metrics.get("dcr") or {}).get("histogram")
    if not histogram or not histogram.get("edges"):
        return None
    edges = histogram["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    figure = go.Figure(
        [
            go.Bar(
                x=centres,
                y=histogram["synthetic_to_training"],
                name="synthetic to training",
                marker_color=TRAINING_COLOUR,
                opacity=0.6,
            ),
            go.Bar(
                x=centres,
                y=histogram["synthetic_to_holdout"],
                name="synthetic to holdout",
                marker_color=HOLDOUT_COLOUR,
                opacity=0.6,
            ),
        ]
    )
    figure.update_layout(barmode="overlay", bargap=0.02)
    figure.update_xaxes(title="distance to closest record (mean per column)")
    figure.update_yaxes(title="synthetic rows")
    share = (metrics.get("dcr") or {}).get("share_closer_to_training")
    return Chart(
        "chart-dcr",
        "Distance to closest record",
        _layout(figure, "Distances to closest record"),
        f"Share of synthetic rows closer to training than to holdout: {share} (0.5 is ideal).",
    )


def _distribution_charts(metrics: dict[str, Any]) -> list[Chart]:
    charts = []
    for position, (name, summary) in enumerate((metrics.get("distributions") or {}).items()):
        figure = _overlay(summary)
        if figure is not None:
            charts.append(
                Chart(f"chart-dist-{position}", f"Distribution of {name}", _layout(figure, name, 260))
            )
    return charts


def _overlay(summary: dict[str, Any]) -> go.Figure | None:
    if summary.get("type") == "bar":
        x = summary["categories"]
    else:
        edges = summary.get("edges") or []
        if not edges:
            return None
        x = [round((a + b) / 2, 6) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    figure = go.Figure(
        [
            go.Bar(
                x=x,
                y=summary["training"],
                name="training (small cells hidden)",
                marker_color=TRAINING_COLOUR,
                opacity=0.6,
            ),
            go.Bar(x=x, y=summary["synthetic"], name="synthetic", marker_color=SYNTHETIC_COLOUR, opacity=0.6),
        ]
    )
    figure.update_layout(barmode="overlay" if summary.get("type") != "bar" else "group", bargap=0.05)
    figure.update_yaxes(title="share of rows")
    return figure

"""`{% plotly_figure fig "id" %}`: embed a plotly figure as JSON data for static/js/charts.js."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def plotly_figure(figure: Any, element_id: str, label: str = "") -> SafeString:
    payload = figure.to_plotly_json() if hasattr(figure, "to_plotly_json") else figure
    # json_script-style escaping keeps "</script>" and friends inert inside the tag.
    text = (
        json.dumps(payload, default=str)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return format_html(
        '<div id="{}" class="chart" role="img" aria-label="{}"></div>'
        '<script type="application/json" class="plotly-figure" data-target="{}">{}</script>',
        element_id,
        label or element_id,
        element_id,
        SafeString(text),
    )

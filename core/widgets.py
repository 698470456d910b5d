"""Form widgets that render what Django's do, faster.

Django renders a <select> through a template that includes another template for each <option>
(`django/forms/widgets/select_option.html`, itself including `attrs.html`): about 0.1 ms an
option. A list page's filter names every dataset and team its user may see (100 datasets at
10,000 requests), so the catalog's filter form cost more than its 25 rows (bench/pages.py profile,
issue 16). FastSelect builds the same HTML, byte for byte, in Python
(tests/test_widgets.py renders both over choices, groups, attributes and markup in values).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import conditional_escape
from django.utils.safestring import SafeData, SafeString, mark_safe


def _text(value: Any) -> str:
    """`{{ value|stringformat:'s' }}`: the filter keeps a safe value safe, so it is not escaped."""
    text = str(value)  # what "%s" % value gives for one value
    return conditional_escape(mark_safe(text) if isinstance(value, SafeData) else text)


def _attrs(attrs: dict[str, Any]) -> str:
    """`django/forms/widgets/attrs.html`: ` name="value"`, ` name` for True, nothing for False."""
    parts = []
    for name, value in attrs.items():
        if value is False:
            continue
        if value is True:
            parts.append(f" {conditional_escape(name)}")
        else:
            parts.append(f' {conditional_escape(name)}="{_text(value)}"')
    return "".join(parts)


class FastSelect(forms.Select):
    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        # django/forms/widgets/select.html and select_option.html, whitespace included (the option
        # template's own final newline too).
        html = [f'<select name="{conditional_escape(widget["name"])}"{_attrs(widget["attrs"])}>']
        for group_name, group_choices, _index in widget["optgroups"]:
            if group_name:
                html.append(f'\n  <optgroup label="{conditional_escape(group_name)}">')
            for option in group_choices:
                html.append(
                    f'\n  <option value="{_text(option["value"])}"'
                    f"{_attrs(option['attrs'])}>{conditional_escape(option['label'])}</option>\n"
                )
            if group_name:
                html.append("\n  </optgroup>")
        html.append("\n</select>")
        return mark_safe("".join(html))

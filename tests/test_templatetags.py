"""The shared display filters (core.templatetags.synthgate), the rule that pages use them, and
the one form-field include (templates/includes/field.html)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.conf import settings
from django.template import Context, Template
from django.template.loader import get_template, render_to_string
from django.utils import timezone

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Owned elsewhere for now; it moves to the filters in its own change.
NOT_YET_SWITCHED = {TEMPLATES / "approvals" / "request_detail.html"}
MOMENT = dt.datetime(2026, 3, 1, 23, 5, 9, tzinfo=dt.UTC)


def render(source: str, **context: Any) -> str:
    return Template("{% load synthgate %}" + source).render(Context(context))


def test_each_filter_writes_its_one_format() -> None:
    assert render("{{ v|when }}", v=MOMENT) == "2026-03-01 23:05"
    assert render("{{ v|day }}", v=MOMENT) == "2026-03-01"
    assert render("{{ v|when_exact }}", v=MOMENT) == "2026-03-01 23:05:09"
    assert render("{{ v|day }}", v=dt.date(2026, 3, 1)) == "2026-03-01"


@pytest.mark.parametrize("value", [None, ""])
def test_no_value_renders_nothing_like_django_s_date(value: Any) -> None:
    assert render("[{{ v|when }}][{{ v|day }}][{{ v|when_exact }}]", v=value) == "[][][]"
    assert render('{{ v|when|default:"never" }}', v=value) == "never"


def test_the_filters_show_the_current_time_zone_as_date_does() -> None:
    with timezone.override("Asia/Tokyo"):  # UTC+9: the day changes too
        assert render("{{ v|when }}", v=MOMENT) == "2026-03-02 08:05"
        assert render("{{ v|day }}", v=MOMENT) == "2026-03-02"
        assert render("{{ v|when_exact }}", v=MOMENT) == "2026-03-02 08:05:09"
        same = '{{ v|date:"Y-m-d H:i" }}|{{ v|date:"Y-m-d" }}|{{ v|date:"Y-m-d H:i:s" }}'
        assert render("{{ v|when }}|{{ v|day }}|{{ v|when_exact }}", v=MOMENT) == render(same, v=MOMENT)
        assert (
            render("{% load tz %}{% localtime off %}{{ v|when }}{% endlocaltime %}", v=MOMENT)
            == "2026-03-01 23:05"
        )


def _page_templates() -> list[Path]:
    return sorted(p for p in TEMPLATES.rglob("*") if p.is_file() and p.suffix in {".html", ".txt"})


def test_no_page_spells_out_a_date_format() -> None:
    """`|when`, `|day` and `|when_exact` keep each format in one place."""
    literal = re.compile(r"""\|\s*date\s*:\s*["']""")
    offenders = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in _page_templates()
        if path not in NOT_YET_SWITCHED
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if literal.search(line)
    ]
    assert offenders == [], f"use |when, |day or |when_exact instead of |date:'...': {offenders}"


def test_every_template_compiles() -> None:
    """A filter used without `{% load synthgate %}` fails here rather than on the page."""
    for path in _page_templates():
        get_template(str(path.relative_to(TEMPLATES)))


# --- The one form-field include -------------------------------------------------------------------


def test_the_field_include_gives_the_ids_the_widget_s_aria_describedby_names() -> None:
    class Form(forms.Form):
        name = forms.CharField(label="Team name", help_text="Shown on releases.")
        token = forms.CharField(widget=forms.HiddenInput)

        def clean(self) -> None:
            raise forms.ValidationError("That team already exists.")

    form = Form({"name": "", "token": "x"})
    form.is_valid()
    html = render_to_string("includes/form_fields.html", {"form": form})

    described_by = re.search(r'aria-describedby="([^"]+)"', html)
    assert described_by is not None
    for element_id in described_by.group(1).split():
        assert f'id="{element_id}"' in html, element_id
    assert '<label for="id_name">Team name</label>' in html
    assert "This field is required." in html and "That team already exists." in html
    assert '<input type="hidden" name="token"' in html and 'for="id_token"' not in html


def test_can_asks_core_roles_and_refuses_an_unknown_capability(alice: Any, olivia: Any) -> None:
    from django.template import TemplateSyntaxError

    page = Template('{% load synthgate %}{% if user|can:"AUDIT_READERS" %}audit{% endif %}')
    assert page.render(Context({"user": olivia})) == "audit"
    assert page.render(Context({"user": alice})) == ""
    with pytest.raises(TemplateSyntaxError):
        Template('{% load synthgate %}{{ user|can:"NO_SUCH_POWER" }}').render(Context({"user": alice}))

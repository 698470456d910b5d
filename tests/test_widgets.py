"""core.widgets.FastSelect renders exactly what Django's Select renders (issue 16: the catalog's
filter form rendered each of up to 100 dataset options through two template includes)."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from core.widgets import FastSelect

CHOICES: list[Any] = [
    ("", "Any dataset"),
    ("a1", "whas500 v1"),
    ("b&2", 'quotes " and <tags> & ampersands'),
    (3, 3),
    ("lazy", gettext_lazy("Any team")),
    ("safe", mark_safe("<b>bold</b>")),
    ("Group", [("g1", "in a group"), ("g2", "also <grouped>")]),
]


@pytest.mark.parametrize("value", [None, "", "a1", "b&2", 3, "3", "g2", "missing"])
@pytest.mark.parametrize(
    "attrs",
    [None, {"id": "id_dataset"}, {"id": "x", "required": True, "disabled": False, "data-x": 'a"b<'}],
)
def test_fast_select_renders_what_djangos_select_renders(value: Any, attrs: Any) -> None:
    django_html = forms.Select(choices=CHOICES).render("dataset", value, attrs)
    fast_html = FastSelect(choices=CHOICES).render("dataset", value, attrs)
    assert fast_html == django_html


def test_a_form_field_renders_the_same_through_the_bound_field() -> None:
    class Plain(forms.Form):
        team = forms.ChoiceField(choices=CHOICES, required=False)

    class Fast(forms.Form):
        team = forms.ChoiceField(choices=CHOICES, required=False, widget=FastSelect)

    for data in ({}, {"team": "g1"}, {"team": "nope"}):
        assert str(Fast(data)["team"]) == str(Plain(data)["team"])

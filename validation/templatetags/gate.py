"""Template filters for the validation report: glossary titles, sentences and warnings in words."""

from __future__ import annotations

from typing import Any

from django import template

from validation.glossary import GLOSSARY, Entry, check_explanation, title_for, warning_text

register = template.Library()


@register.filter
def check_title(name: str) -> str:
    """`missingness_similarity` -> "Missingness pattern"."""
    return title_for(str(name))


@register.filter
def explain_check(check: dict[str, Any]) -> str:
    """One sentence: what the check found, value against threshold (when this copy has a value),
    and a next step. Rendered from the copy the viewer gets, so withheld values stay withheld."""
    return check_explanation(check)


@register.filter
def warning_words(code: str) -> str:
    return warning_text(str(code))


@register.simple_tag
def gate_glossary(checks: list[dict[str, Any]]) -> list[tuple[str, Entry]]:
    """The glossary entries of the checks this gate lists (no values: safe for every viewer)."""
    names = [str(c.get("name")) for c in checks or []]
    return [(name, GLOSSARY[name]) for name in names if name in GLOSSARY]

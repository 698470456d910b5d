"""Gate outcomes in plain words for the request page: which checks failed, by how much (when the
viewer may see values), and what to do next, each linked to its glossary entry.

The sentences are validation.glossary's (`check_explanation`, one source for every page). When
this viewer's copy of a check carries no value (values computed on the real rows go to oversight
roles only), the same finding and next step are given around the threshold instead. The
workflow's own consequence (a retry after a privacy failure needs a privacy officer) is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from approvals.selectors import failed_privacy_checks
from validation.glossary import FINDINGS, GLOSSARY, check_explanation, failure_sentence, title_for

PRIVACY_RETRY_NOTE = "A new attempt after this failure needs a privacy officer's approval."


@dataclass(frozen=True)
class Outcome:
    """One failed (or not run) check, as the request page shows it."""

    name: str
    title: str
    sentence: str
    note: str  # the workflow consequence, if any
    anchor: str  # the glossary entry's fragment id on the check glossary page


def _threshold_only(check: dict[str, Any]) -> str:
    threshold = check.get("threshold")
    if threshold is None:
        return "the value is shown to privacy officers"
    if check.get("direction") == "max":
        return f"at most {float(threshold):.3g} allowed; the value is shown to privacy officers"
    return f"at least {float(threshold):.3g} needed; the value is shown to privacy officers"


def _sentence(check: dict[str, Any]) -> str:
    hidden = check.get("value") is None and check.get("status") != "not_run" and not check.get("error")
    if not hidden:
        return check_explanation(check)
    return failure_sentence(check, _threshold_only(check))


def explain_failed(checks: list[dict[str, Any]]) -> list[Outcome]:
    """The checks that did not pass, in gate order, in plain words with a next step."""
    privacy = set(failed_privacy_checks(checks))
    return [
        Outcome(
            name=str(c.get("name")),
            title=title_for(str(c.get("name"))),
            sentence=_sentence(c),
            note=PRIVACY_RETRY_NOTE if c.get("name") in privacy else "",
            anchor=f"check-{c.get('name')}",
        )
        for c in checks
        if not c.get("passed")
    ]


def glossary_entries() -> list[dict[str, Any]]:
    """Every glossary entry with its anchor and next step, for the page the outcomes link to."""
    return [
        {
            "name": name,
            "anchor": f"check-{name}",
            "entry": entry,
            "next_step": FINDINGS[name][1].capitalize() + "." if name in FINDINGS else "",
        }
        for name, entry in GLOSSARY.items()
    ]

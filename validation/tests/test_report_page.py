"""The report as each viewer reads it: check titles from the glossary, one click to the entry, what
was not run and why, in words, and each check's time for reviewers (issue 12, items 5, 7 and 9)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from django.template.loader import render_to_string

from validation.gate import REQUIRED_CHECKS_KEY
from validation.glossary import GLOSSARY, check_explanation
from validation.metrics.columns import ColumnInfo
from validation.report import glossary_rows
from validation.selectors import gate_visible_to, metrics_visible_to, sees_full_report
from validation.suite import run_suite
from validation.tests.planted import smooth_marginals


@pytest.fixture
def small_release(training: pd.DataFrame, holdout: pd.DataFrame, infos: list[ColumnInfo]) -> Any:
    """A 600-row table judged at a tier that requires the attacks to run (they cannot here)."""
    return run_suite(
        training=training, synthetic=smooth_marginals(training, 600, 5), holdout=holdout, infos=infos,
        thresholds={REQUIRED_CHECKS_KEY: ["singling_out_risk", "linkability_risk", "inference_risk"]},
    )  # fmt: skip


def _page(user: Any, result: Any) -> str:
    checks = [c.as_dict() for c in result.checks]
    gate = {"passed": result.passed, "checks": checks}
    full = sees_full_report(user)
    context = {
        "full_report": full,
        "is_dp": False,
        "gate": gate_visible_to(user=user, gate=gate),
        "metrics": metrics_visible_to(user=user, metrics=result.metrics, checks=checks),
        "charts": [],
        "glossary": glossary_rows(result.metrics, checks) if full else [],
    }
    return render_to_string("validation/_report.html", context)


def test_a_requester_sees_titles_linked_to_the_glossary_and_what_was_not_run(
    alice: Any, small_release: Any
) -> None:
    page = _page(alice, small_release)

    for name in ("singling_out_risk", "missingness_similarity", "exact_copy_rate"):
        assert f'href="#glossary-{name}"' in page and f'id="glossary-{name}"' in page, name
        assert GLOSSARY[name].title in page
    assert "not run: blocks" in page
    assert 'data-testid="gate-needs-acknowledgement"' in page
    assert "at least 500 training and 500 holdout rows" in page
    assert "anonymeter_too_few" not in page  # codes never reach this viewer
    # Values stay withheld from the requester, in the sentence as in the table.
    value = next(c.value for c in small_release.checks if c.name == "column_shape_similarity")
    assert f"{value:.2f}" not in page


def test_a_privacy_officer_sees_values_times_and_warnings_in_words(olivia: Any, small_release: Any) -> None:
    page = _page(olivia, small_release)

    assert 'id="glossary-singling_out_risk"' in page
    assert "Measured anyway:" in page
    assert "Too few rows for the singling-out, linkability and inference attacks" in page
    assert 'data-testid="report-seconds"' in page
    assert page.count(" s</td>") >= len(small_release.checks)


def test_the_explanation_names_the_finding_the_numbers_and_a_next_step() -> None:
    sentence = check_explanation(
        {
            "name": "missingness_similarity",
            "value": 0.17,
            "threshold": 0.7,
            "direction": "min",
            "passed": False,
        }
    )

    assert sentence == (
        "Cells go missing together in the source (0.17 vs 0.70 needed): choose a synthesizer that "
        "models missingness jointly, or drop the gappy columns."
    )
    withheld = check_explanation(
        {"name": "exact_copy_rate", "value": None, "threshold": 0.005, "direction": "max", "passed": False}
    )
    assert (
        withheld
        == "The release copies source records: use a DP synthesizer, or request fewer quasi-identifiers."
    )

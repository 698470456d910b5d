"""The validation report: oversight roles see every metric and chart, everyone else pass/fail and
coarse reasons; the same rule holds on the page, in the API and in the audited HTML export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from approvals.models import GenerationRequest
from audit.models import AuditEvent
from catalog.models import Release
from generation.models import SynthesisJob
from generation.storage import read_encrypted_parquet
from validation.services import validation_run

URL = "/api/v1/releases/"
COARSE_METRIC_KEYS = {"suite_version", "rows_synthetic", "summary", "reasons", "detail"}


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["olivia", "audrey"])
def test_oversight_sees_every_chart_and_the_glossary_on_the_release_page(
    release: Release, persona: str, request: pytest.FixtureRequest
) -> None:
    page = signed_in(request.getfixturevalue(persona)).get(f"/catalog/{release.pk}/").content.decode()

    for chart in ("chart-risks", "chart-tstr", "chart-shapes", "chart-pairs", "chart-dcr", "chart-dist-0"):
        assert f'data-target="{chart}"' in page, chart
    assert 'data-testid="report-glossary"' in page and "glossary-membership_inference_auc" in page
    assert "vendor/plotly.min.js" in page  # charts load the locally served bundle (CSP-safe)
    assert "<script>" not in page  # no inline script: figures are JSON data tags


def test_the_requester_sees_pass_fail_and_no_metric_values_or_charts(alice: Any, release: Release) -> None:
    page = signed_in(alice).get(f"/catalog/{release.pk}/").content.decode()

    assert 'data-testid="gate-verdict"' in page and "membership_inference_auc" in page
    assert "plotly-figure" not in page and "report-glossary" not in page
    assert "Privacy officers, auditors and admins see every metric" in page
    auc = next(c["value"] for c in release.gate["checks"] if c["name"] == "membership_inference_auc")
    assert f"{auc:.4f}" not in page


# --- API ------------------------------------------------------------------------------------------


def test_the_api_filters_metrics_and_check_values_for_the_requester(
    api: Any, alice: Any, release: Release
) -> None:
    body = api(alice).get(f"{URL}{release.pk}/").json()

    assert set(body["metrics"]) == COARSE_METRIC_KEYS
    assert body["metrics"]["summary"] == {"privacy_passed": True, "utility_passed": True}
    assert body["gate"]["passed"] is True
    assert all(c["value"] is None and c["passed"] is True for c in body["gate"]["checks"])
    assert all(c["name"] for c in body["gate"]["checks"])


@pytest.mark.parametrize("persona", ["olivia", "audrey"])
def test_the_api_gives_oversight_every_metric(
    api: Any, release: Release, persona: str, request: pytest.FixtureRequest
) -> None:
    body = api(request.getfixturevalue(persona)).get(f"{URL}{release.pk}/").json()

    assert {"membership_inference", "anonymeter", "dcr", "tstr", "column_pair_trends"} <= set(body["metrics"])
    assert all(c["value"] is not None for c in body["gate"]["checks"])
    # The list carries a summary (issue 16); its item links to the detail, which has every metric.
    [listed] = api(request.getfixturevalue(persona)).get(URL).json()["results"]
    assert "metrics" not in listed and listed["gate"]["passed"] is True
    assert listed["url"].endswith(f"{URL}{release.pk}/")


def test_the_report_endpoint_follows_the_same_rule_and_hides_the_release_from_other_teams(
    api: Any, alice: Any, olivia: Any, charlie: Any, release: Release
) -> None:
    full = api(olivia).get(f"{URL}{release.pk}/report/").json()
    coarse = api(alice).get(f"{URL}{release.pk}/report/").json()

    assert full["full"] is True and {g["name"] for g in full["glossary"]} >= {"membership_inference_auc"}
    assert (
        coarse["full"] is False and coarse["glossary"] == [] and set(coarse["metrics"]) == COARSE_METRIC_KEYS
    )
    assert api(charlie).get(f"{URL}{release.pk}/report/").status_code == 404
    assert api(None).get(f"{URL}{release.pk}/report/").status_code == 401


# --- Export ---------------------------------------------------------------------------------------


def test_the_html_export_is_one_self_contained_file_and_is_audited(olivia: Any, release: Release) -> None:
    response = signed_in(olivia).get(f"/catalog/{release.pk}/report.html")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    html = response.content.decode()
    assert "Plotly" in html and "<script src=" not in html and "<link" not in html  # nothing fetched
    assert 'data-target="chart-risks"' in html and "Glossary" in html
    event = AuditEvent.objects.get(action="release.report_export", target_id=str(release.pk))
    assert (event.actor_name, event.details) == ("olivia", {"full": True})


def test_the_requester_s_export_is_the_summary_and_is_audited(alice: Any, release: Release) -> None:
    html = signed_in(alice).get(f"/catalog/{release.pk}/report.html").content.decode()

    assert "plotly-figure" not in html and "Plotly" not in html
    assert AuditEvent.objects.get(action="release.report_export").details == {"full": False}


def test_another_team_cannot_export_and_nothing_is_audited(charlie: Any, release: Release) -> None:
    assert signed_in(charlie).get(f"/catalog/{release.pk}/report.html").status_code == 404
    assert not AuditEvent.objects.filter(action="release.report_export").exists()


# --- Reports of jobs that failed the gate ---------------------------------------------------------


@pytest.fixture
def failed_job(
    submitted_request: GenerationRequest, approve: Callable[[GenerationRequest], SynthesisJob]
) -> SynthesisJob:
    """A job whose output copies its training rows: the gate fails and there is no release."""
    job = approve(submitted_request)
    training = read_encrypted_parquet(job.dataset.storage_path)[job.columns]
    holdout = read_encrypted_parquet(job.dataset.holdout_path)
    report = validation_run(job=job, training=training, synthetic=training.head(300), holdout=holdout)
    assert report.passed is False
    return job


def test_a_failed_gate_s_report_shows_reasons_to_the_requester_and_everything_to_officers(
    alice: Any, olivia: Any, failed_job: SynthesisJob
) -> None:
    url = f"/catalog/jobs/{failed_job.pk}/report/"
    coarse = signed_in(alice).get(url).content.decode()
    full = signed_in(olivia).get(url).content.decode()

    assert "Too many synthetic rows are copies of source records." in coarse
    assert "plotly-figure" not in coarse
    assert 'data-target="chart-risks"' in full and "report-glossary" in full


def test_a_failed_gate_s_report_is_404_for_another_team_and_for_unknown_jobs(
    charlie: Any, failed_job: SynthesisJob
) -> None:
    assert signed_in(charlie).get(f"/catalog/jobs/{failed_job.pk}/report/").status_code == 404
    assert signed_in(charlie).get("/catalog/jobs/not-a-uuid/report/").status_code == 404

"""The reviewer's and requester's pages: live tier preview, edit, request page, review queue,
evidence chart. Permission negatives answer 404, as everywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import GenerationRequest, PolicyVersion
from approvals.services import request_decide
from approvals.tests.conftest import NO_QI_COLUMNS
from audit.models import AuditEvent
from conftest import SAFE_COLUMNS


def _form(dataset: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset": str(dataset.pk),
        "title": "Survival prototype",
        "purpose_category": "model_development",
        "purpose": "Prototype",
        "intended_use": "Notebook",
        "audience": "internal",
        "fidelity": "medium",
        "columns": SAFE_COLUMNS,
        "synthesizer": "gaussian_copula",
        "rows": "300",
        "epsilon": "",
    }
    data.update(overrides)
    return data


# --- Live preview ---------------------------------------------------------------------------------


def test_the_request_form_asks_for_a_live_preview_on_every_change(
    client: Client, alice: Any, dataset: Any
) -> None:
    client.force_login(alice)
    page = client.get(f"/requests/new/?dataset={dataset.pk}").content.decode()
    assert 'hx-post="/requests/preview/"' in page and 'hx-trigger="change, load"' in page
    assert 'hx-include="#request-form"' in page and 'id="request-form"' in page
    assert 'id="tier-preview"' in page
    for label in ("Category of use", "Fidelity"):
        assert f">{label}</label>" in page


def test_preview_shows_tier_reasons_and_what_would_lower_it_without_writing(
    client: Client, alice: Any, dataset: Any
) -> None:
    client.force_login(alice)
    events = AuditEvent.objects.count()
    response = client.post("/requests/preview/", _form(dataset, audience="external"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="preview-tier">prohibited<' in body
    assert "DP with epsilon &lt;= 1 required" in body
    assert "To lower the tier" in body and "Choose the internal audience" in body
    assert GenerationRequest.objects.count() == 0 and PolicyVersion.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_preview_follows_the_form(client: Client, alice: Any, dataset: Any) -> None:
    client.force_login(alice)
    low = client.post("/requests/preview/", _form(dataset, columns=["kappa", "lambda"])).content.decode()
    assert 'data-testid="preview-tier">low<' in low and "1 approval needed" in low
    high = client.post(
        "/requests/preview/", _form(dataset, audience="external", columns=NO_QI_COLUMNS)
    ).content
    assert b'data-testid="preview-tier">high<' in high and b"2 approvals needed" in high


@pytest.mark.parametrize(
    "junk", [{"rows": "many"}, {"epsilon": "NaN"}, {"audience": "moon"}, {"columns": ["nope"]}]
)
def test_preview_tolerates_half_filled_forms(
    client: Client, alice: Any, dataset: Any, junk: dict[str, Any]
) -> None:
    client.force_login(alice)
    assert client.post("/requests/preview/", _form(dataset, **junk)).status_code == 200


def test_preview_without_a_dataset_asks_for_one(client: Client, alice: Any, db: Any) -> None:
    client.force_login(alice)
    assert b"Choose a dataset" in client.post("/requests/preview/", {}).content


@pytest.mark.parametrize("persona", ["olivia", "sam", "ada", "audrey"])
def test_preview_is_for_data_scientists_only(
    client: Client, dataset: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.post("/requests/preview/", _form(dataset)).status_code == 404


def test_preview_only_answers_post(client: Client, alice: Any, dataset: Any) -> None:
    client.force_login(alice)
    assert client.get("/requests/preview/").status_code == 405


# --- Filing, editing --------------------------------------------------------------------------------


def test_filing_through_the_form_records_fidelity_and_purpose_category(
    client: Client, alice: Any, dataset: Any
) -> None:
    client.force_login(alice)
    client.post("/requests/new/", _form(dataset, fidelity="low", action="submit"))
    request = GenerationRequest.objects.get()
    assert (request.fidelity, request.purpose_category, request.status) == (
        "low",
        "model_development",
        "in_review",
    )


def test_requester_edits_after_changes_requested_and_resubmits(
    client: Client, alice: Any, olivia: Any, submitted_request: Any, dataset: Any
) -> None:
    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="Fewer columns"
    )
    client.force_login(alice)
    detail = client.get(f"/requests/{submitted_request.pk}/").content.decode()
    assert "Edit request" in detail
    form = client.get(f"/requests/{submitted_request.pk}/edit/").content.decode()
    assert 'value="Readmission model prototype"' in form
    client.post(
        f"/requests/{submitted_request.pk}/edit/",
        _form(dataset, columns=["kappa", "lambda"], action="submit"),
    )
    submitted_request.refresh_from_db()
    assert submitted_request.status == "in_review" and submitted_request.review_round == 2
    assert submitted_request.columns == ["kappa", "lambda"] and submitted_request.tier_level == "low"


@pytest.mark.parametrize("persona", ["bob", "olivia", "charlie"])
def test_nobody_else_may_open_the_edit_page(
    client: Client, submitted_request: Any, olivia: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="x")
    client.force_login(request.getfixturevalue(persona))
    assert client.get(f"/requests/{submitted_request.pk}/edit/").status_code == 404


def test_a_request_in_review_cannot_be_edited(client: Client, alice: Any, submitted_request: Any) -> None:
    client.force_login(alice)
    assert client.get(f"/requests/{submitted_request.pk}/edit/").status_code == 404


# --- The request page a reviewer reads ----------------------------------------------------------------


def test_request_page_shows_classification_reasons_controls_and_prior_decisions(
    client: Client, olivia: Any, pia: Any, submitted_request: Any, alice: Any
) -> None:
    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="Why death?"
    )
    from approvals.services import request_submit

    request_submit(actor=alice, request_id=submitted_request.pk)
    client.force_login(pia)
    page = client.get(f"/requests/{submitted_request.pk}/").content.decode()
    assert "Dataset classification" in page
    assert "<code>mgus</code>" in page  # every dataset column, requested or not
    assert 'class="requested"' in page
    assert "Sensitive columns requested (death)" in page
    assert "Release gate" in page and "exact_copy_rate_max 0.01" in page
    assert "Why death?" in page and "round 1" in page  # the earlier round's decision and comment
    assert "Tier history" in page
    assert 'data-testid="quorum">0 of 1' in page
    assert "Record decision" in page and "Conditions of use (optional)" in page


def test_conditions_are_shown_on_the_request(
    client: Client, olivia: Any, alice: Any, submitted_request: Any
) -> None:
    client.force_login(olivia)
    client.post(
        f"/requests/{submitted_request.pk}/decide/",
        {"decision": "approve", "comment": "", "conditions": "Team workspace only."},
    )
    client.force_login(alice)
    page = client.get(f"/requests/{submitted_request.pk}/").content.decode()
    assert "Approved subject to conditions" in page and "Team workspace only. (olivia)" in page


def test_conditions_are_shown_on_the_release(
    client: Client, olivia: Any, alice: Any, submitted_request: Any
) -> None:
    from catalog.models import Release

    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="approve", conditions="No linkage."
    )
    submitted_request.refresh_from_db()
    release = Release.objects.create(
        request=submitted_request,
        job=submitted_request.job,
        dataset=submitted_request.dataset,
        team=submitted_request.team,
        audience="internal",
        title=submitted_request.title,
        rows=300,
        columns=SAFE_COLUMNS,
        synthesizer="gaussian_copula",
        is_dp=False,
        storage_path="x",
        sha256="0" * 64,
        gate={"passed": True, "checks": []},
        metrics={},
    )
    client.force_login(alice)
    page = client.get(f"/catalog/{release.pk}/").content.decode()
    assert 'data-testid="release-conditions">No linkage. (olivia)<' in page


def test_a_steward_sees_the_decision_form_only_where_the_tier_names_stewards(
    client: Client, sam: Any, submitted_request: Any, submit: Callable[..., Any]
) -> None:
    high = submit(audience="external", columns=NO_QI_COLUMNS)
    client.force_login(sam)
    assert b"Record decision" not in client.get(f"/requests/{submitted_request.pk}/").content
    assert b"Record decision" in client.get(f"/requests/{high.pk}/").content


# --- Review queue -------------------------------------------------------------------------------------


def test_the_queue_is_ordered_by_waiting_time(
    client: Client, olivia: Any, submit: Callable[..., Any]
) -> None:
    newer = submit(title="Newer request")
    older = submit(title="Older request")
    GenerationRequest.objects.filter(pk=older.pk).update(submitted_at=timezone.now() - timedelta(days=3))
    client.force_login(olivia)
    page = client.get("/requests/review/").content.decode()
    assert page.index("Older request") < page.index("Newer request")
    assert newer.pk != older.pk


def test_a_stewards_queue_holds_only_tiers_that_name_stewards(
    client: Client, sam: Any, submit: Callable[..., Any]
) -> None:
    submit(title="Medium internal")
    submit(title="High external", audience="external", columns=NO_QI_COLUMNS)
    client.force_login(sam)
    page = client.get("/requests/review/").content.decode()
    assert "High external" in page and "Medium internal" not in page


def test_the_queue_says_what_each_request_still_needs(
    client: Client, olivia: Any, pia: Any, submit: Callable[..., Any]
) -> None:
    high = submit(title="High external", audience="external", columns=NO_QI_COLUMNS)
    request_decide(actor=olivia, request_id=high.pk, decision="approve")
    client.force_login(pia)
    page = client.get("/requests/review/").content.decode()
    assert "1 of 2" in page and "1 more approval" in page


# --- Evidence ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["olivia", "audrey", "ada"])
def test_evidence_page_charts_cycle_time_per_request_and_per_tier(
    client: Client, submitted_request: Any, olivia: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    GenerationRequest.objects.filter(pk=submitted_request.pk).update(
        first_submitted_at=timezone.now() - timedelta(hours=5)
    )
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    client.force_login(request.getfixturevalue(persona))
    response = client.get("/requests/evidence/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/vendor/plotly.min.js" in page and "/static/js/charts.js" in page
    figures = re.findall(
        r'<script type="application/json" class="plotly-figure" data-target="([^"]+)">(.*?)</script>',
        page,
        re.S,
    )
    assert {name for name, _ in figures} == {"chart-cycle-per-request", "chart-cycle-per-tier"}
    per_tier = json.loads(dict(figures)["chart-cycle-per-tier"])
    assert per_tier["data"][0]["name"] == "medium" and 4.9 < per_tier["data"][0]["y"][0] < 5.1
    assert "<script>" not in page  # no inline script (CSP)


def test_evidence_page_without_decisions_says_so(client: Client, olivia: Any) -> None:
    client.force_login(olivia)
    assert b"No request has been decided yet." in client.get("/requests/evidence/").content


@pytest.mark.parametrize("persona", ["alice", "sam"])
def test_evidence_page_is_for_oversight_roles_only(
    client: Client, request: pytest.FixtureRequest, persona: str
) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.get("/requests/evidence/").status_code == 404


def test_prohibited_requests_are_not_counted_as_reviews(
    client: Client, olivia: Any, submit: Callable[..., Any]
) -> None:
    submit(audience="external")  # prohibited: rejected by the policy, no reviewer involved
    client.force_login(olivia)
    assert b"No request has been decided yet." in client.get("/requests/evidence/").content

"""The release's privacy block (issue 11, item 9), and what a DP release shows to whom.

The block says exactly what holds: DP or not, unit, neighbouring relation, epsilon, delta, flavour,
mechanisms, what is covered and what is not, and the source's total spent. For a DP request, the
values of the validation report are computed on the real rows outside the budget, so requesters
(and everyone who is not a custodian) see pass/fail per check, on every page and endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from approvals.models import GenerationRequest
from approvals.services import request_decide, request_submit
from approvals.tests.helpers import declare_by_steward
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.privacy import PRIVACY_KEYS, release_privacy
from generation.models import SourceDataset, SynthesisJob

BLOCK_KEYS = {*PRIVACY_KEYS, "trust_model"}
# What a non-custodian's metrics may hold: coarse, synthetic-side facts and pass/fail.
COARSE_METRIC_KEYS = {"suite_version", "rows_synthetic", "summary", "reasons", "detail"}
FACTS = {
    "dp": True,
    "unit": "record",
    "entity_column": None,
    "max_rows_per_entity": None,
    "neighbouring": "add or remove one record (one row)",
    "epsilon": "0.5",
    "delta": "0",
    "flavour": "pure epsilon-DP",
    "mechanisms": [
        {
            "step": "marginals",
            "mechanism": "Geometric",
            "library": "diffprivlib",
            "version": "0.6.4",
            "epsilon": "0.25",
            "delta": "0",
            "sensitivity": 1,
        },
        {
            "step": "correlation",
            "mechanism": "Laplace",
            "library": "diffprivlib",
            "version": "0.6.4",
            "epsilon": "0.25",
            "delta": "0",
            "sensitivity": 2,
        },
    ],
    # A count on the real rows a synthesizer might add: custodians only.
    "rows_dropped_by_cap": 3,
}


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def dp_release(release: Release) -> Release:
    """The published release, recorded as a DP release of epsilon 0.5 as it was before releases
    stored their privacy block (`privacy` empty): the pages and API must compute it. Built from
    a real published release so its gate and metrics are real; only the DP bookkeeping is set."""
    receipt = {**release.receipt, "privacy_facts": FACTS}
    SynthesisJob.objects.filter(pk=release.job_id).update(epsilon_micro=500_000, receipt=receipt)
    GenerationRequest.objects.filter(pk=release.request_id).update(
        synthesizer="dp_copula", epsilon_micro=500_000
    )
    SourceDataset.objects.filter(pk=release.dataset_id).update(epsilon_spent_micro=700_000)
    Release.objects.filter(pk=release.pk).update(
        is_dp=True, epsilon_micro=500_000, synthesizer="dp_copula", privacy={}, receipt=receipt
    )
    return Release.objects.get(pk=release.pk)


# --- The block --------------------------------------------------------------------------------------


def test_a_non_dp_release_stores_a_block_saying_no_adversary_is_bounded(release: Release) -> None:
    assert set(release.privacy) == BLOCK_KEYS  # fixed at publication
    block = release.privacy
    assert block["dp"] is False and block["epsilon"] is None and block["delta"] is None
    assert block["unit"] is None and block["mechanisms"] == [] and block["covers"] == []
    assert "no adversary is bounded" in block["not_covered"][0]
    assert "empirical tests" in block["not_covered"][0]
    assert block["source_spent"] == {"epsilon": 0, "delta": 0}
    assert block == release_privacy(job=release.job, dataset=release.dataset)


def test_a_dp_release_block_states_unit_parameters_mechanisms_and_what_is_not_covered(
    dp_release: Release,
) -> None:
    block = release_privacy(job=dp_release.job, dataset=dp_release.dataset)
    assert set(block) == BLOCK_KEYS
    assert (block["dp"], block["unit"], block["epsilon"], block["delta"]) == (True, "record", 0.5, 0)
    assert block["flavour"] == "pure epsilon-DP" and "one record" in block["neighbouring"]
    assert [m["library"] for m in block["mechanisms"]] == ["diffprivlib", "diffprivlib"]
    assert block["mechanisms"][0] == {
        "step": "marginals",
        "mechanism": "Geometric",
        "library": "diffprivlib",
        "version": "0.6.4",
        "epsilon": "0.25",
        "delta": "0",
        "sensitivity": 1,
    }
    assert block["covers"] == ["The synthetic rows of this release, and anything computed from them alone."]
    not_covered = " ".join(block["not_covered"])
    for part in ("validation report", "gate", "intake profile", "tiering facts", "per record"):
        assert part in not_covered
    assert block["source_spent"] == {"epsilon": 0.7, "delta": 0}
    assert block["trust_model"].startswith("central")


def test_a_patient_level_release_states_the_cap_and_drops_the_per_record_caveat(dp_release: Release) -> None:
    facts = {**FACTS, "unit": "patient", "entity_column": "pid", "max_rows_per_entity": 4}
    facts.pop("neighbouring")
    SynthesisJob.objects.filter(pk=dp_release.job_id).update(
        entity_column="pid", receipt={**dp_release.receipt, "privacy_facts": facts}
    )
    job = SynthesisJob.objects.get(pk=dp_release.job_id)
    block = release_privacy(job=job, dataset=dp_release.dataset)
    assert block["unit"] == "patient" and "at most 4 rows per patient" in block["neighbouring"]
    assert not any("per record" in line for line in block["not_covered"])


def test_an_epsilon_delta_release_says_so(dp_release: Release) -> None:
    facts = {**FACTS}
    facts.pop("flavour")
    SynthesisJob.objects.filter(pk=dp_release.job_id).update(
        delta_atto=10**9, receipt={**dp_release.receipt, "privacy_facts": facts}
    )
    block = release_privacy(job=SynthesisJob.objects.get(pk=dp_release.job_id), dataset=dp_release.dataset)
    assert block["delta"] == 1e-9 and block["flavour"] == "approximate (epsilon, delta)-DP"


def test_the_source_spent_is_the_population_ledger_owners(dp_release: Release, sam: Any) -> None:
    from conftest import csv_upload, small_flchain_csv
    from generation.services import dataset_register

    later = dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv(500)), epsilon_cap="1.0"
    )
    SourceDataset.objects.filter(pk=later.pk).update(population=dp_release.dataset, epsilon_spent_micro=0)
    later.refresh_from_db()
    block = release_privacy(job=dp_release.job, dataset=later)
    assert block["source_spent"]["epsilon"] == 0.7


# --- The API --------------------------------------------------------------------------------------


def test_the_release_api_has_the_privacy_block_even_for_releases_published_before_it(
    api: Any, alice: Any, dp_release: Release
) -> None:
    body = api(alice).get(f"/api/v1/releases/{dp_release.pk}/").json()
    assert set(body["privacy"]) == BLOCK_KEYS
    assert body["privacy"]["dp"] is True and body["privacy"]["epsilon"] == 0.5
    assert body["privacy"]["source_spent"]["epsilon"] == 0.7
    assert body["delta"] == 0 and "epsilon = 0.5" in body["privacy_statement"]


def test_a_stored_block_is_served_as_stored(api: Any, alice: Any, dp_release: Release) -> None:
    stored = {
        **release_privacy(job=dp_release.job, dataset=dp_release.dataset),
        "source_spent": {"epsilon": 0.5, "delta": 0},
    }
    Release.objects.filter(pk=dp_release.pk).update(privacy=stored)
    body = api(alice).get(f"/api/v1/releases/{dp_release.pk}/").json()
    assert body["privacy"]["source_spent"]["epsilon"] == 0.5  # what held at publication


def _numbers_in(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers_in(v)]
    return []


def test_a_scientists_release_api_response_for_a_dp_release_contains_no_metric_values(
    api: Any, alice: Any, olivia: Any, dp_release: Release
) -> None:
    body = api(alice).get(f"/api/v1/releases/{dp_release.pk}/").json()
    assert body["gate"]["checks"] and all(c["value"] is None for c in body["gate"]["checks"])
    assert all(isinstance(c["passed"], bool) for c in body["gate"]["checks"])
    assert set(body["metrics"]) <= COARSE_METRIC_KEYS
    real = {
        round(float(c["value"]), 6) for c in dp_release.gate["checks"] if c.get("value") not in (None, 0, 1)
    }
    leaked = {round(float(n), 6) for n in _numbers_in(body["metrics"])} & real
    assert not leaked
    assert "rows_dropped_by_cap" not in body["receipt"]["privacy_facts"]
    # The control: a privacy officer sees the values and the full facts.
    officer = api(olivia).get(f"/api/v1/releases/{dp_release.pk}/").json()
    assert any(c["value"] is not None for c in officer["gate"]["checks"])
    assert officer["receipt"]["privacy_facts"]["rows_dropped_by_cap"] == 3


@pytest.mark.parametrize("persona", ["alice", "bob", "sam"])
def test_nobody_outside_the_oversight_roles_gets_values_of_a_dp_report(
    api: Any, request: pytest.FixtureRequest, dp_release: Release, persona: str
) -> None:
    from approvals.models import GenerationRequest as Req

    Req.objects.filter(pk=dp_release.request_id).update(audience="organization")
    Release.objects.filter(pk=dp_release.pk).update(audience="organization")
    client = api(request.getfixturevalue(persona))
    response = client.get(f"/api/v1/releases/{dp_release.pk}/report/")
    if response.status_code == 404:  # the tier's access_level keeps it to the team: nothing at all
        assert persona == "sam"
        return
    report = response.json()
    assert report["full"] is False and all(c["value"] is None for c in report["gate"]["checks"])
    assert set(report["metrics"]) <= COARSE_METRIC_KEYS and report["glossary"] == []
    attempts = client.get(f"/api/v1/requests/{dp_release.request_id}/attempts/")
    if attempts.status_code == 200:  # the request is visible to its requester and oversight
        for row in attempts.json():
            assert all(c["value"] is None for c in row["gate"]["checks"])
            assert set(row["metrics"]) <= COARSE_METRIC_KEYS


def test_the_requesters_attempts_api_for_a_dp_request_holds_pass_fail_only(
    api: Any, alice: Any, olivia: Any, dp_release: Release
) -> None:
    rows = api(alice).get(f"/api/v1/requests/{dp_release.request_id}/attempts/").json()
    assert rows and all(c["value"] is None for row in rows for c in row["gate"]["checks"])
    assert all(isinstance(c["passed"], bool) for row in rows for c in row["gate"]["checks"])
    officer_rows = api(olivia).get(f"/api/v1/requests/{dp_release.request_id}/attempts/").json()
    assert any(c["value"] is not None for row in officer_rows for c in row["gate"]["checks"])


# --- The pages --------------------------------------------------------------------------------------


def test_the_release_page_shows_the_block_and_no_values_to_the_requester(
    alice: Any, olivia: Any, dp_release: Release
) -> None:
    page = _signed_in(alice).get(f"/catalog/{dp_release.pk}/").content.decode()
    assert 'data-testid="privacy-block"' in page and 'data-testid="privacy-unit">record<' in page
    assert "Not covered" in page and "validation report" in page and "diffprivlib 0.6.4" in page
    assert 'data-testid="report-dp-note"' in page and "Findings for reviewers" not in page
    officer_page = _signed_in(olivia).get(f"/catalog/{dp_release.pk}/").content.decode()
    assert "Findings for reviewers" in officer_page


def test_the_non_dp_release_page_says_no_adversary_is_bounded(alice: Any, release: Release) -> None:
    page = _signed_in(alice).get(f"/catalog/{release.pk}/").content.decode()
    assert (
        'data-testid="privacy-headline"><strong>Not differentially private.</strong> No adversary is bounded'
        in page
    )


def test_the_export_carries_the_block_and_the_requesters_summary(alice: Any, dp_release: Release) -> None:
    response = _signed_in(alice).get(f"/catalog/{dp_release.pk}/report.html")
    html = response.content.decode()
    assert 'data-testid="privacy-block"' in html and 'data-testid="privacy-source-spent"' in html
    assert "this is a DP release" in html and "Findings for reviewers" not in html


def test_the_request_page_of_a_dp_request_says_why_values_are_hidden(alice: Any, dp_release: Release) -> None:
    page = _signed_in(alice).get(f"/requests/{dp_release.request_id}/").content.decode()
    assert 'data-testid="dp-gate-note"' in page
    # The source's exact row count is for custodians: the requester reads a rounded figure.
    assert re.search(r"source: about \d+00\)", page)


def test_the_job_report_page_of_a_dp_request_hides_values_from_the_requester(
    alice: Any, olivia: Any, dp_release: Release
) -> None:
    page = _signed_in(alice).get(f"/catalog/jobs/{dp_release.job_id}/report/").content.decode()
    officer = _signed_in(olivia).get(f"/catalog/jobs/{dp_release.job_id}/report/").content.decode()
    assert "Findings for reviewers" not in page and "Findings for reviewers" in officer


# --- End to end: a real DP job ------------------------------------------------------------------------


def test_a_dp_copula_release_is_published_with_its_block(
    make_request: Callable[..., GenerationRequest], alice: Any, olivia: Any, dataset: Any, api: Any
) -> None:
    declare_by_steward(dataset)
    draft = make_request(synthesizer="dp_copula", epsilon="1", columns=["age", "kappa", "lambda", "futime"])
    request_submit(actor=alice, request_id=draft.pk)
    request_decide(actor=olivia, request_id=draft.pk, decision="approve")
    draft.refresh_from_db()
    outcome = pipeline_run(job_id=draft.job_id)
    job = SynthesisJob.objects.get(pk=draft.job_id)
    block = release_privacy(job=job, dataset=dataset)
    assert block["dp"] is True and block["epsilon"] == 1 and block["unit"] == "record"
    assert block["source_spent"]["epsilon"] == 1
    # The mechanisms the synthesizer recorded, with their libraries and versions.
    assert block["mechanisms"] and all(m["library"] and m["version"] for m in block["mechanisms"])
    assert block["flavour"].startswith("pure epsilon-DP") and block["delta"] == 0
    if outcome == "published":
        release = Release.objects.get(request=draft)
        assert release.privacy == block
        body = api(alice).get(f"/api/v1/releases/{release.pk}/").json()
        assert all(c["value"] is None for c in body["gate"]["checks"])

"""Issue 14 item 8: the request page without dead ends.

- The job panel makes htmx reload the whole page when the job ends (HX-Refresh), so the status
  badge, the buttons and the attempts are current without a manual reload.
- The panel shows the validation suite's steps, which the worker records as each starts.
- A reviewer of a request in review sees what the decision rests on: the tier and why, the
  re-identification estimate and small cells, the epsilon approval reserves and what it leaves,
  and the requested columns with their classifications. Nobody else gets that section.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from approvals.services import request_decide
from approvals.tests.conftest import NO_QI_COLUMNS
from generation.models import SourceDataset, SynthesisJob
from validation.suite import VALIDATION_STEPS, step_stage

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    settings.SYNTHGATE_STORAGE_DIR = tmp_path / "storage"
    return settings.SYNTHGATE_STORAGE_DIR


@pytest.fixture
def approved_job(submitted_request: Any, olivia: Any) -> SynthesisJob:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    SynthesisJob.objects.filter(pk=submitted_request.job_id).update(seed=20240601)
    return SynthesisJob.objects.get(pk=submitted_request.job_id)


def panel(client: Client, job: SynthesisJob) -> Any:
    return client.get(f"/requests/{job.request.pk}/job/", **HTMX)


def step_statuses(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-step="([a-z_]+)" data-status="([a-z_]+)"', html))


# --- The panel refreshes the page when the job ends ---------------------------------------------------


def test_the_panel_reloads_the_whole_page_once_the_job_is_final(
    client: Client, alice: Any, approved_job: SynthesisJob
) -> None:
    client.force_login(alice)

    running = panel(client, approved_job)
    assert running.status_code == 200
    assert "HX-Refresh" not in running  # still running: keep swapping the panel
    assert 'hx-trigger="every 1s"' in running.content.decode()

    SynthesisJob.objects.filter(pk=approved_job.pk).update(state="gate_failed")
    ended = panel(client, approved_job)

    assert ended.status_code == 200
    assert ended["HX-Refresh"] == "true"  # badges, buttons and attempts come from the page
    assert 'hx-trigger="every 1s"' not in ended.content.decode()


def test_a_plain_get_of_the_panel_is_not_told_to_reload(
    client: Client, alice: Any, approved_job: SynthesisJob
) -> None:
    SynthesisJob.objects.filter(pk=approved_job.pk).update(state="succeeded")
    client.force_login(alice)

    assert "HX-Refresh" not in client.get(f"/requests/{approved_job.request.pk}/job/")


# --- Validation sub-steps ----------------------------------------------------------------------------


def test_the_panel_shows_which_validation_steps_have_run(
    client: Client, alice: Any, approved_job: SynthesisJob
) -> None:
    SynthesisJob.objects.filter(pk=approved_job.pk).update(
        state="validating", stage=step_stage("privacy"), progress=0.9
    )
    client.force_login(alice)

    html = panel(client, approved_job).content.decode()

    assert 'data-testid="validation-steps"' in html
    assert step_statuses(html) == {
        "utility": "done",
        "distributions": "done",
        "privacy": "running",
        "attacks": "pending",
    }


def test_a_job_that_died_while_validating_shows_where_it_stopped(
    client: Client, alice: Any, approved_job: SynthesisJob
) -> None:
    SynthesisJob.objects.filter(pk=approved_job.pk).update(state="failed", stage=step_stage("distributions"))
    client.force_login(alice)

    html = client.get(f"/requests/{approved_job.request.pk}/").content.decode()

    assert step_statuses(html) == {
        "utility": "done",
        "distributions": "interrupted",
        "privacy": "not_run",
        "attacks": "not_run",
    }


def test_the_worker_records_each_validation_step_and_the_page_shows_them_done(
    client: Client, alice: Any, approved_job: SynthesisJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog import pipeline

    recorded: list[tuple[str, float]] = []
    report = pipeline.job_report_progress

    def spy(*, job: Any, progress: float, stage: str) -> None:
        recorded.append((stage, progress))
        report(job=job, progress=progress, stage=stage)

    monkeypatch.setattr(pipeline, "job_report_progress", spy)

    assert pipeline.pipeline_run(job_id=approved_job.pk) in ("published", "gate_failed")

    steps = [(stage, p) for stage, p in recorded if stage.startswith("validating: ")]
    assert [stage for stage, _ in steps] == [step_stage(key) for key, _ in VALIDATION_STEPS]
    assert [p for _, p in steps] == sorted(p for _, p in steps)  # progress only moves forward
    client.force_login(alice)
    page = client.get(f"/requests/{approved_job.request.pk}/").content.decode()
    assert set(step_statuses(page).values()) == {"done"}


# --- What the decision rests on ----------------------------------------------------------------------


@pytest.fixture
def dp_in_review(submit: Callable[..., Any], dp_synthesizer: str, dataset: Any) -> Any:
    SourceDataset.objects.filter(pk=dataset.pk).update(
        reidentification_risk=0.1234, small_cell_count=7, risk_columns=["age", "sex"]
    )
    return submit(columns=NO_QI_COLUMNS, synthesizer=dp_synthesizer, epsilon="0.4")


def basis_section(html: str) -> str:
    match = re.search(r'<section[^>]*data-testid="decision-basis".*?</section>', html, flags=re.S)
    assert match, "no 'What this decision rests on' section"
    return match.group(0)


def test_the_reviewer_sees_what_the_decision_rests_on(client: Client, olivia: Any, dp_in_review: Any) -> None:
    client.force_login(olivia)

    section = basis_section(client.get(f"/requests/{dp_in_review.pk}/").content.decode())

    assert "What this decision rests on" in section
    assert dp_in_review.tier_level in section
    for reason in dp_in_review.tier_reasons:
        assert str(reason).replace("'", "&#x27;") in section
    assert "12.3% of source rows are unique on the quasi-identifiers" in section
    assert "<code>age</code>" in section
    assert "7 categories held by fewer than" in section
    # The dataset's cap is 1; approval reserves 0.4 and leaves 0.6.
    budget = re.sub(r"\s+", " ", re.search(r'data-testid="basis-budget">(.*?)</dd>', section, re.S).group(1))
    assert "reserves epsilon 0.4" in budget
    assert "epsilon 1 left now" in budget
    assert "will have epsilon 0.6" in budget
    columns = re.search(r'data-testid="basis-columns">.*?</table>', section, re.S).group(0)
    for name in NO_QI_COLUMNS:
        assert f"<code>{name}</code>" in columns
    assert "<code>age</code>" not in columns  # not requested


def test_a_non_dp_request_says_approval_reserves_no_epsilon(
    client: Client, olivia: Any, submitted_request: Any
) -> None:
    client.force_login(olivia)

    section = basis_section(client.get(f"/requests/{submitted_request.pk}/").content.decode())

    assert "approval reserves no epsilon" in section


def test_only_reviewers_of_a_request_in_review_get_the_section(
    client: Client, alice: Any, bob: Any, audrey: Any, olivia: Any, dp_in_review: Any
) -> None:
    for user in (alice, bob, audrey):  # the requester, a teammate, an auditor
        client.force_login(user)
        page = client.get(f"/requests/{dp_in_review.pk}/").content.decode()
        assert 'data-testid="decision-basis"' not in page, user.username

    request_decide(actor=olivia, request_id=dp_in_review.pk, decision="approve")
    client.force_login(olivia)
    page = client.get(f"/requests/{dp_in_review.pk}/").content.decode()
    assert 'data-testid="decision-basis"' not in page  # decided: no longer in review

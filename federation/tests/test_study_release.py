"""A completed federated study whose gate passed at every site is published as a catalog model
release (origin "study"): the catalog's visibility, access requests, expiry, withdrawal, audited
downloads, lineage and card apply to it as to a DP model. A gate failed at one site publishes
nothing.

The runtime is replaced, as in test_run_bookkeeping.py, by a function that plays the events and
returns a StudyResult built by hand (the real Flower run is in test_integration.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from catalog.models import Release, ReleaseKind, ReleaseOrigin
from federation.models import Study, StudyStatus
from federation.services import study_run
from federation.tests.test_run_bookkeeping import SITES, _metrics, _runner

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Any) -> Any:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder


@pytest.fixture
def approved(submitted_study: Any, approve_all: Callable[[Any], Any]) -> Study:
    study: Study = approve_all(submitted_study)
    assert study.status == StudyStatus.APPROVED
    return study


def _every_site_passes(rounds: int) -> Callable[..., Any]:
    """_runner's run, with metrics every site's gate passes (seeds 0 and 1 of its made-up scores;
    seed 2, Valley's there, fails calibration: the failing study below keeps it)."""
    run = _runner(rounds)

    def passing(config: Any, **kwargs: Any) -> Any:
        result = run(config, **kwargs)
        result.site_metrics = {name: _metrics(index % 2) for index, name in enumerate(SITES)}
        return result

    return passing


@pytest.fixture
def published(approved: Study) -> tuple[Study, Release]:
    assert study_run(study_id=approved.pk, runner=_every_site_passes(3)) == StudyStatus.COMPLETED
    study = Study.objects.get(pk=approved.pk)
    assert all(s.gate_passed for s in study.sites.all()), "the fixture's metrics pass every site's gate"
    assert study.release_id is not None
    return study, Release.objects.get(pk=study.release_id)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _download(user: Any, release: Release) -> Any:
    return _client(user).get(reverse("catalog:release-download", args=[release.pk]))


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _downloads_by(user: Any, release: Release) -> int:
    return AuditEvent.objects.filter(
        action="release.download", target_id=str(release.pk), actor_name=user.username, outcome="success"
    ).count()


def test_a_completed_study_publishes_one_model_release_whose_download_matches(
    published: tuple[Study, Release], alice: Any
) -> None:
    study, release = published
    assert Release.objects.filter(origin_ref=study.pk).count() == 1
    assert release.origin == ReleaseOrigin.STUDY and release.kind == ReleaseKind.MODEL
    assert release.request_id is None and release.job_id is None and release.dataset_id is None
    assert release.artifact_format == "npz" and release.sha256 == study.model_sha256
    assert release.epsilon_micro == study.epsilon_spent_micro and release.is_dp
    assert release.team_id == study.team_id and release.requester_id == alice.pk
    assert [s["site"] for s in release.sources] == sorted(SITES)
    assert {s["dataset"] for s in release.sources} == {str(s.dataset_id) for s in study.sites.all()}
    assert all(s["epsilon_debited_micro"] == study.epsilon_spent_micro for s in release.sources)
    assert release.card["round_log"] and release.card["rounds_completed"] == 3
    assert AuditEvent.objects.filter(action="release.publish", target_id=str(release.pk)).count() == 1
    expiry_days = int((study.tier_controls or {}).get("expiry_days") or 0)
    if expiry_days:
        assert release.expires_at is not None
        assert abs(release.expires_at - (release.created_at + timedelta(days=expiry_days))) < timedelta(
            minutes=1
        )

    response = _download(alice, release)
    assert response.status_code == 200
    assert hashlib.sha256(_body(response)).hexdigest() == release.sha256
    assert _downloads_by(alice, release) == 1


def test_the_study_page_and_api_name_its_release(published: tuple[Study, Release], alice: Any) -> None:
    study, release = published
    client = _client(alice)
    page = client.get(reverse("federation:study-detail", kwargs={"study_id": study.pk})).content.decode()
    assert reverse("catalog:release-detail", args=[release.pk]) in page
    assert client.get(f"/api/v1/studies/{study.pk}/").json()["release"] == str(release.pk)


def test_the_study_evidence_names_its_release_and_holds_the_releases_events(
    published: tuple[Study, Release], alice: Any, olivia: Any, api: Callable[[Any], Any]
) -> None:
    import io
    import json
    import zipfile

    study, release = published
    assert _download(alice, release).status_code == 200
    response = api(olivia).get(f"/api/v1/studies/{study.pk}/evidence/")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert json.loads(archive.read("study.json"))["release"] == str(release.pk)
        assert json.loads(archive.read("round_log.json"))
        events = json.loads(archive.read("audit_events.json"))
    actions = [e["action"] for e in events]
    assert "release.publish" in actions and "release.download" in actions
    assert any(a.startswith("study.") for a in actions)


def test_it_is_listed_for_its_audience_and_hidden_from_a_scientist_outside_it(
    published: tuple[Study, Release], alice: Any, bob: Any, charlie: Any, api: Callable[[Any], Any]
) -> None:
    _, release = published
    for member in (alice, bob):  # the requester, and a member of the study's team
        listed = api(member).get("/api/v1/releases/?kind=model").json()["results"]
        row = next(r for r in listed if r["id"] == str(release.pk))
        assert row["origin"] == "study" and row["kind"] == "model"
        assert row["request"] is None and row["dataset"] is None and row["study"] == str(release.origin_ref)
        assert api(member).get("/api/v1/releases/?kind=table").json()["results"] == []
        page = _client(member).get(reverse("catalog:release-list") + "?kind=model").content.decode()
        assert reverse("catalog:release-detail", args=[release.pk]) in page
        detail = api(member).get(f"/api/v1/releases/{release.pk}/").json()
        assert detail["origin"] == "study" and detail["request"] is None and detail["dataset"] is None
        assert detail["model_card"]["origin"] == "study"
        assert [s["site"] for s in detail["sources"]] == sorted(SITES)
        assert "training_rows" not in detail["sources"][0]  # a count of real records: custodians only

    outsider = api(charlie)
    assert str(release.pk) not in {r["id"] for r in outsider.get("/api/v1/releases/").json()["results"]}
    assert outsider.get(f"/api/v1/releases/{release.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/releases/{release.pk}/download/").status_code == 404
    assert _client(charlie).get(reverse("catalog:release-detail", args=[release.pk])).status_code == 404
    assert _download(charlie, release).status_code == 404
    # ... but the card summary is discoverable, to ask for access.
    listing = _client(charlie).get(reverse("catalog:release-list")).content.decode()
    assert reverse("catalog:access-request-create", args=[release.pk]) in listing


def test_an_outsiders_access_request_granted_by_an_officer_lets_them_download(
    published: tuple[Study, Release], charlie: Any, bob: Any, olivia: Any
) -> None:
    from catalog.access import access_request_create, access_request_decide
    from core.errors import NotFound

    _, release = published
    asked = access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="Validate the mortality model on our cohort",
        expires_at=timezone.now() + timedelta(days=30),
    )
    with pytest.raises(NotFound):  # a scientist of the owning team neither sees nor decides it
        access_request_decide(actor=bob, request_id=asked.pk, decision="grant")
    assert _download(charlie, release).status_code == 404
    access_request_decide(actor=olivia, request_id=asked.pk, decision="grant")
    response = _download(charlie, release)
    assert response.status_code == 200
    assert hashlib.sha256(_body(response)).hexdigest() == release.sha256
    assert _downloads_by(charlie, release) == 1


def test_withdrawal_makes_the_download_410(published: tuple[Study, Release], alice: Any, olivia: Any) -> None:
    from catalog.access import release_withdraw

    _, release = published
    assert _download(alice, release).status_code == 200
    release_withdraw(actor=olivia, release_id=release.pk, reason="A site withdrew its consent")
    response = _download(alice, release)
    assert response.status_code == 410
    assert "withdrew its consent" in response.content.decode()


def test_withdrawing_a_site_dataset_withdraws_the_study_release(
    published: tuple[Study, Release], olivia: Any
) -> None:
    from catalog.access import dataset_withdraw_releases

    study, release = published
    site = study.sites.order_by("site__name").first()
    withdrawn = dataset_withdraw_releases(
        actor=olivia, dataset_id=site.dataset_id, reason="Consent withdrawn"
    )
    assert release.pk in {r.pk for r in withdrawn}
    assert Release.objects.get(pk=release.pk).withdrawn_at is not None


def test_an_expired_study_release_answers_410(published: tuple[Study, Release], alice: Any) -> None:
    _, release = published
    Release.objects.filter(pk=release.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = _download(alice, release)
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_the_card_page_shows_sites_rounds_and_the_privacy_unit(
    published: tuple[Study, Release], alice: Any, olivia: Any
) -> None:
    study, release = published
    page = _client(alice).get(reverse("catalog:release-detail", args=[release.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for name in SITES:
        assert f'data-testid="study-card-site-{name}"' in html
    assert "3 of 3 planned" in html
    assert html.count("<tr><td>") >= 3  # the round log's rows
    assert "Unit: <strong>record</strong>" in html and "Client-level DP over 3 round(s)" in html
    assert reverse("federation:study-detail", kwargs={"study_id": study.pk}) in html
    officer_page = _client(olivia).get(reverse("catalog:release-detail", args=[release.pk]))
    assert (
        officer_page.status_code == 200
        and 'data-testid="study-card-site-Lake"' in officer_page.content.decode()
    )
    export = _client(alice).get(reverse("catalog:release-report-export", args=[release.pk]))
    assert export.status_code == 200 and 'data-testid="study-model-card"' in export.content.decode()
    # A custodian sees the per-site values; the requester sees each check's result, not its value.
    card = _client(olivia).get(f"/api/v1/releases/{release.pk}/card/").json()
    assert [s["name"] for s in card["sites"]] == SITES and card["sites"][0]["metrics"]
    mine = _client(alice).get(f"/api/v1/releases/{release.pk}/card/").json()
    assert mine["sites"][0]["metrics"] is None
    assert all(c["value"] is None for c in mine["sites"][0]["gate_checks"])


def test_lineage_runs_from_the_site_datasets_through_the_study_to_the_release(
    published: tuple[Study, Release], alice: Any
) -> None:
    study, release = published
    graph = _client(alice).get(f"/api/v1/releases/{release.pk}/lineage/").json()
    kinds = [n["kind"] for n in graph["nodes"]]
    assert kinds.count("source") == 3 and "study" in kinds and "release" in kinds
    study_node = f"study:{study.pk}"
    assert {e["from"] for e in graph["edges"] if e["to"] == study_node} == {
        f"dataset:{s.dataset_id}" for s in study.sites.all()
    }
    assert _client(alice).get(reverse("catalog:release-lineage", args=[release.pk])).status_code == 200


def test_a_study_whose_gate_failed_at_one_site_publishes_nothing(approved: Study, alice: Any) -> None:
    # _runner's own metrics: Lake and North pass, Valley's model is miscalibrated on its holdout.
    assert study_run(study_id=approved.pk, runner=_runner(3)) == StudyStatus.COMPLETED
    study = Study.objects.get(pk=approved.pk)
    gates = {s.site.name: s.gate_passed for s in study.sites.select_related("site")}
    assert gates == {"Lake": True, "North": True, "Valley": False}
    assert study.model_path  # the study keeps its model ...
    assert (
        study.release_id is None and not Release.objects.filter(origin_ref=study.pk).exists()
    )  # ... unpublished
    page = (
        _client(alice).get(reverse("federation:study-detail", kwargs={"study_id": study.pk})).content.decode()
    )
    assert "a model is published only when every site" in page


def test_the_database_refuses_a_study_release_that_is_not_a_model_or_names_a_request(
    published: tuple[Study, Release],
) -> None:
    from django.db import IntegrityError, transaction

    _, release = published
    with pytest.raises(IntegrityError), transaction.atomic():
        Release.objects.filter(pk=release.pk).update(kind="table", artifact_format="csv")
    with pytest.raises(IntegrityError), transaction.atomic():
        Release.objects.filter(pk=release.pk).update(origin=ReleaseOrigin.REQUEST)  # no request, job, dataset

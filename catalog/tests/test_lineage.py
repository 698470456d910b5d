"""A release's lineage: the graph (catalog.lineage), its page and its API, on real releases.

The routes are not in the project's urls yet, so this module is its own urlconf: the project's
routes plus the two lineage routes as the lead will add them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import include, path
from rest_framework.test import APIClient

from approvals.models import CandidateRun, GenerationRequest
from approvals.services import gate_override_propose, request_decide, request_submit
from catalog.api.lineage import ReleaseLineageApi
from catalog.lineage import STAGES, release_lineage
from catalog.lineage_views import lineage_figure, release_lineage_view
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.services import bakeoff_choose, gate_override_approve, release_open_download
from core.errors import NotFound
from generation.models import SynthesisJob
from validation.gate import DEFAULT_THRESHOLDS

urlpatterns = [
    path("catalog/<str:release_id>/lineage/", release_lineage_view, name="test-release-lineage"),
    path("api/v1/releases/<str:release_id>/lineage/", ReleaseLineageApi.as_view(), name="test-api-lineage"),
    # The project's routes by name (a string: catalog tests import no higher layer).
    path("", include("portal.urls")),
]
pytestmark = pytest.mark.urls(__name__)

NODE_KEYS = {"id", "kind", "label", "at", "url"}
DP_CHAIN = [
    "source", "signoff", "request", "policy", "tier", "decision", "ledger", "job", "attempt", "release",
    "download",
]  # fmt: skip


def _download(release: Release, user: Any) -> None:
    _, opened = release_open_download(actor=user, release_id=release.pk)
    b"".join(opened.chunks)


def _kinds(graph: dict[str, Any]) -> list[str]:
    """Each kind once, in the order the nodes come."""
    seen: list[str] = []
    for node in graph["nodes"]:
        if node["kind"] not in seen:
            seen.append(node["kind"])
    return seen


def _linked(graph: dict[str, Any], parent_kind: str, child_kind: str) -> bool:
    kind = {n["id"]: n["kind"] for n in graph["nodes"]}
    return any(kind[e["from"]] == parent_kind and kind[e["to"]] == child_kind for e in graph["edges"])


def _well_formed(graph: dict[str, Any]) -> None:
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids))
    assert all(set(n) == NODE_KEYS and n["kind"] in STAGES and n["label"] for n in graph["nodes"])
    assert all(e["from"] in ids and e["to"] in ids for e in graph["edges"])


@pytest.fixture
def dp_release(
    make_request: Callable[..., GenerationRequest], approve: Callable[[GenerationRequest], SynthesisJob]
) -> Release:
    """A published dp_copula release. The gate is opened wide (every floor 0, every ceiling 1):
    these tests are about the lineage, not about whether DP output passes today's thresholds."""
    draft = make_request(synthesizer="dp_copula", epsilon="0.5")
    submitted = request_submit(actor=draft.requester, request_id=draft.pk)
    wide = {key: 0.0 if key.endswith("_min") else 1.0 for key in DEFAULT_THRESHOLDS}
    controls = {**submitted.tier_controls, "gate": {**submitted.tier_controls.get("gate", {}), **wide}}
    GenerationRequest.objects.filter(pk=submitted.pk).update(tier_controls=controls)
    submitted.refresh_from_db()
    job = approve(submitted)
    assert pipeline_run(job_id=job.pk) == "published"
    release = Release.objects.get(request=submitted)
    assert release.is_dp
    return release


def test_a_dp_release_lineage_runs_from_the_source_to_its_downloads_in_order(
    dp_release: Release, alice: Any, olivia: Any
) -> None:
    _download(dp_release, alice)

    graph = release_lineage(release=dp_release, user=olivia)

    _well_formed(graph)
    assert _kinds(graph) == DP_CHAIN
    for parent, child in zip(DP_CHAIN, DP_CHAIN[1:], strict=False):
        assert _linked(graph, parent, child), (parent, child)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[f"dataset:{dp_release.dataset_id}"]["label"].startswith("flchain v1")
    assert nodes[f"request:{dp_release.request_id}"]["url"] == f"/requests/{dp_release.request_id}/"
    assert nodes[f"release:{dp_release.pk}"]["url"] == f"/catalog/{dp_release.pk}/"
    assert nodes[f"job:{dp_release.job_id}"]["url"] == f"/catalog/jobs/{dp_release.job_id}/report/"
    assert any(n["label"] == "Reserved epsilon 0.5" for n in graph["nodes"] if n["kind"] == "ledger")
    downloads = [n for n in graph["nodes"] if n["kind"] == "download"]
    assert [n["label"] for n in downloads] == ["Downloaded by alice"]  # oversight sees who
    assert downloads[0]["at"] is not None


def test_a_non_dp_release_has_no_ledger_step_and_its_jobs_follow_the_approval(
    release: Release, olivia: Any
) -> None:
    graph = release_lineage(release=release, user=olivia)

    _well_formed(graph)
    assert "ledger" not in _kinds(graph) and "download" not in _kinds(graph)  # not downloaded yet
    assert _linked(graph, "decision", "job") and _linked(graph, "attempt", "release")
    decision = next(n for n in graph["nodes"] if n["kind"] == "decision")
    assert decision["label"].startswith("Approve by olivia")


def test_the_requester_sees_how_many_downloads_not_who_made_them(
    release: Release, alice: Any, bob: Any
) -> None:
    _download(release, bob)
    _download(release, bob)

    graph = release_lineage(release=release, user=alice)

    downloads = [n for n in graph["nodes"] if n["kind"] == "download"]
    assert [(n["label"], n["at"], n["url"]) for n in downloads] == [("Downloaded 2 times", None, None)]
    assert not any("bob" in n["label"] for n in graph["nodes"])
    # The policy pages are the audit readers': no link for a scientist.
    assert all(n["url"] is None for n in graph["nodes"] if n["kind"] == "policy")


def test_a_bakeoff_release_keeps_its_chosen_and_rejected_candidates(
    make_request: Callable[..., GenerationRequest], alice: Any, olivia: Any
) -> None:
    candidates = [
        {"synthesizer": "gaussian_copula", "epsilon": None, "options": {}},
        {"synthesizer": "gaussian_copula", "epsilon": None, "options": {"stratify_outcome": False}},
    ]
    draft = make_request(synthesizer="", candidates=candidates, rows=200)
    request_submit(actor=alice, request_id=draft.pk)
    request_decide(actor=olivia, request_id=draft.pk, decision="approve")
    runs = list(CandidateRun.objects.filter(attempt__request=draft).order_by("index"))
    for run in runs:
        SynthesisJob.objects.filter(pk=run.job_id).update(seed=20240601 + run.index)
        pipeline_run(job_id=run.job_id)
    pick = CandidateRun.objects.get(attempt__request=draft, recommended=True)
    release = bakeoff_choose(actor=alice, request_id=draft.pk, index=pick.index)

    graph = release_lineage(release=release, user=alice)

    _well_formed(graph)
    shown = [n for n in graph["nodes"] if n["kind"] == "candidate"]
    assert [n["id"] for n in shown] == [f"candidate:{r.pk}" for r in runs]
    assert sum("(chosen" in n["label"] for n in shown) == 1
    assert sum("(not chosen" in n["label"] for n in shown) == 1
    assert _kinds(graph).index("job") < _kinds(graph).index("candidate") < _kinds(graph).index("attempt")
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    attempt = f"attempt:{pick.attempt_id}"
    for run in runs:
        assert (f"job:{run.job_id}", f"candidate:{run.pk}") in edges
        assert (f"candidate:{run.pk}", attempt) in edges
    assert (attempt, f"release:{release.pk}") in edges


def test_another_team_gets_404_from_the_graph_the_page_and_the_api(
    release: Release, charlie: Any, sam: Any, ada: Any
) -> None:
    for outsider in (charlie, sam, ada):  # another team; a steward and an admin see only their team's
        with pytest.raises(NotFound):
            release_lineage(release=release, user=outsider)
        page = Client()
        page.force_login(outsider)
        api = APIClient()
        api.force_authenticate(outsider)

        assert page.get(f"/catalog/{release.pk}/lineage/").status_code == 404
        assert api.get(f"/api/v1/releases/{release.pk}/lineage/").status_code == 404
    assert APIClient().get(f"/api/v1/releases/{release.pk}/lineage/").status_code == 401
    assert Client().get(f"/catalog/{release.pk}/lineage/").status_code == 302  # to sign in


def test_the_api_returns_exactly_nodes_and_edges(release: Release, bob: Any) -> None:
    api = APIClient()
    api.force_authenticate(bob)  # a teammate: an internal release is the team's

    body = api.get(f"/api/v1/releases/{release.pk}/lineage/").json()

    assert set(body) == {"nodes", "edges"}
    assert all(set(n) == NODE_KEYS for n in body["nodes"])
    assert all(set(e) == {"from", "to"} for e in body["edges"]) and body["edges"]
    graph = release_lineage(release=release, user=bob)
    assert body["edges"] == graph["edges"]
    assert [n["id"] for n in body["nodes"]] == [n["id"] for n in graph["nodes"]]


def test_the_page_draws_the_graph_and_lists_every_step_with_its_link(release: Release, alice: Any) -> None:
    client = Client()
    client.force_login(alice)

    response = client.get(f"/catalog/{release.pk}/lineage/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="plotly-figure" data-target="lineage-chart"' in page
    graph = release_lineage(release=release, user=alice)
    assert page.count('data-testid="lineage-node"') == len(graph["nodes"])
    assert f'href="/requests/{release.request_id}/"' in page
    assert "<script>" not in page  # the figure is JSON data; charts.js draws it (CSP)


def test_the_figure_puts_one_column_per_stage_and_draws_every_edge(release: Release, olivia: Any) -> None:
    graph = release_lineage(release=release, user=olivia)

    figure = lineage_figure(graph)

    edges, *points = figure["data"]
    assert edges["mode"] == "lines" and len(edges["x"]) == 3 * len(graph["edges"])
    assert [trace["name"] for trace in points] == [
        "Source version", "Classification sign-off", "Request", "Policy version", "Risk tier",
        "Decision", "Job", "Attempt", "Release",
    ]  # fmt: skip
    assert sorted({x for trace in points for x in trace["x"]}) == list(range(len(points)))
    assert figure["layout"]["xaxis"]["ticktext"][0] == "Source version"


def test_a_release_published_by_override_shows_the_override_between_attempt_and_release(
    gate_failed: Callable[..., GenerationRequest], alice: Any, olivia: Any, oscar: Any
) -> None:
    request = gate_failed(max_attempts=1)
    justification = "The failed check is a known artefact of the small holdout; reviewed by hand."
    gate_override_propose(actor=olivia, request_id=request.pk, justification=justification)
    release = gate_override_approve(actor=oscar, request_id=request.pk, comment="Agreed")

    graph = release_lineage(release=release, user=alice)

    _well_formed(graph)
    override = next(n for n in graph["nodes"] if n["kind"] == "override")
    assert override["label"].startswith("Override proposed by olivia, decided by oscar (Approved")
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert (override["id"], f"release:{release.pk}") in edges
    assert any(b == override["id"] and a.startswith("attempt:") for a, b in edges)
    assert not any(justification[:20] in n["label"] for n in graph["nodes"])  # free text stays out


def test_the_figure_hover_keeps_a_title_as_text() -> None:
    graph = {
        "nodes": [
            {"id": "request:1", "kind": "request", "label": "Request <b>x</b>", "at": None, "url": None},
            {"id": "release:1", "kind": "release", "label": "Release", "at": None, "url": None},
        ],
        "edges": [{"from": "request:1", "to": "release:1"}],
    }

    figure = lineage_figure(graph)

    assert figure["data"][1]["hovertext"] == ["Request &lt;b&gt;x&lt;/b&gt;"]
    assert figure["data"][0]["x"] == [0, 1, None]

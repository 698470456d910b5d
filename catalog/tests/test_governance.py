"""The governance dashboard: its selectors' aggregates, its constant query count, who sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import get_resolver, include, path
from django.utils import timezone

from approvals.models import GenerationRequest
from approvals.services import gate_override_propose, request_decide, request_submit
from catalog import governance as gov
from catalog import urls as catalog_urls
from catalog.governance_views import governance_dashboard
from catalog.models import Release
from catalog.services import gate_override_approve, release_open_download

# The dashboard's route, until the project's urls name it (catalog:governance at
# catalog/governance/): this module is the test urlconf, the project's routes (read through the
# resolver: tests of a lower app do not import portal) with the catalog's extended by it.
_catalog = (
    [path("governance/", governance_dashboard, name="governance"), *catalog_urls.urlpatterns],
    "catalog",
)
urlpatterns = [
    path("catalog/", include(_catalog)),
    *(
        p
        for p in get_resolver(settings.ROOT_URLCONF).url_patterns
        if getattr(p, "namespace", None) != "catalog"
    ),
]
pytestmark = pytest.mark.urls(__name__)

JUSTIFICATION = (
    "Column shapes are within 0.02 of the floor, every privacy check passed, and the release is "
    "for internal feature engineering only."
)


@dataclass
class World:
    overridden: GenerationRequest  # gate failed, override approved: published
    release: Release
    rejected: GenerationRequest
    dp: GenerationRequest  # approved, reserving 0.3 of the source's 1.0 epsilon
    changes: GenerationRequest


def _submitted(make_request: Callable[..., GenerationRequest], **fields: Any) -> GenerationRequest:
    draft = make_request(**fields)
    return request_submit(actor=draft.requester, request_id=draft.pk)


@pytest.fixture
def world(
    gate_failed: Callable[..., GenerationRequest],
    make_request: Callable[..., GenerationRequest],
    alice: Any,
    olivia: Any,
    oscar: Any,
) -> World:
    """One pipeline run (a gate failure, then overridden and downloaded twice); the rest is decided
    without running jobs, so the test stays fast."""
    overridden = gate_failed()
    gate_override_propose(actor=olivia, request_id=overridden.pk, justification=JUSTIFICATION)
    release = gate_override_approve(actor=oscar, request_id=overridden.pk, comment="Agreed.")
    for _ in range(2):
        _, opened = release_open_download(actor=alice, release_id=release.pk)
        b"".join(opened.chunks)
    rejected = _submitted(make_request, title="Rejected one")
    request_decide(actor=olivia, request_id=rejected.pk, decision="reject", comment="Not needed.")
    dp = _submitted(make_request, title="DP one", synthesizer="dp_copula", epsilon="0.3")
    request_decide(actor=olivia, request_id=dp.pk, decision="approve")
    changes = _submitted(make_request, title="Needs changes")
    request_decide(actor=olivia, request_id=changes.pk, decision="request_changes", comment="Fewer columns.")
    for item in (overridden, rejected, dp, changes):
        item.refresh_from_db()
    return World(overridden, release, rejected, dp, changes)


def _this_week() -> date:
    today = timezone.localdate()
    return today - timedelta(days=today.weekday())


def _counts(series: gov.Series, bucket: date) -> dict[str, int]:
    at = series.buckets.index(bucket)
    return {c: series.counts[c][at] for c in series.categories if series.counts[c][at]}


LAST_YEAR = gov.Period(date(2000, 1, 1), date(2000, 6, 30))


# --- Selectors ----------------------------------------------------------------------------------


def test_decisions_and_gate_failures_are_counted_per_week(world: World, audrey: Any) -> None:
    period = gov.default_period()
    decisions = gov.decisions_per_week(user=audrey, period=period)
    assert _counts(decisions, _this_week()) == {"approve": 2, "reject": 1, "request_changes": 1}
    assert decisions.total == 4 and len(decisions.buckets) in (26, 27)
    failures = gov.gate_failures_per_week(user=audrey, period=period)
    assert _counts(failures, _this_week()) == {"column_shape_similarity": 1}
    assert gov.decisions_per_week(user=audrey, period=LAST_YEAR).total == 0
    assert gov.gate_failures_per_week(user=audrey, period=LAST_YEAR).total == 0


def test_cycle_time_by_tier_reuses_the_evidence_selector(world: World, olivia: Any) -> None:
    from approvals.selectors import cycle_times_for

    period = gov.default_period()
    decided = {t.request_id for t in cycle_times_for(user=olivia)}
    assert decided == {world.overridden.pk, world.rejected.pk, world.dp.pk}
    summary = gov.cycle_time_by_tier(user=olivia, period=period)
    assert sum(s["count"] for s in summary) == 3
    assert {s["tier"] for s in summary} == {world.overridden.tier_level, world.dp.tier_level}
    assert gov.cycle_time_by_tier(user=olivia, period=LAST_YEAR) == []


def test_overrides_budget_and_downloads(world: World, audrey: Any, ada: Any) -> None:
    period = gov.default_period()
    month = timezone.localdate().replace(day=1)
    assert _counts(gov.overrides_per_month(user=audrey, period=period), month) == {"approved": 1}
    [override] = gov.overrides_in(user=audrey, period=period)
    assert override["request_id"] == world.overridden.pk
    assert (override["proposed_by_name"], override["decided_by_name"]) == ("olivia", "oscar")
    assert override["failed_checks"] == ["column_shape_similarity"]
    assert gov.access_grants_in(user=audrey, period=period) is None

    [budget] = gov.epsilon_per_source(user=audrey, period=period)
    assert (budget.cap, budget.spent, budget.spent_in_period) == (Decimal(1), Decimal("0.3"), Decimal("0.3"))
    assert budget.remaining == Decimal("0.7")
    assert gov.epsilon_per_source(user=audrey, period=LAST_YEAR)[0].spent_in_period == 0

    [downloads] = gov.downloads_per_release(user=audrey, period=period)
    assert (downloads["pk"], downloads["served"], downloads["failed"]) == (world.release.pk, 2, 0)
    # The admin may read the audit log but not this Cardiology release: it is not named to them.
    assert gov.downloads_per_release(user=ada, period=period) == []
    assert gov.downloads_per_release(user=audrey, period=LAST_YEAR) == []


def test_selectors_give_nothing_to_roles_without_oversight(
    make_request: Callable[..., GenerationRequest], olivia: Any, alice: Any, sam: Any
) -> None:
    dp = _submitted(make_request, synthesizer="dp_copula", epsilon="0.3")
    request_decide(actor=olivia, request_id=dp.pk, decision="approve")
    period = gov.default_period()
    assert gov.decisions_per_week(user=olivia, period=period).total == 1
    assert len(gov.epsilon_per_source(user=olivia, period=period)) == 1
    for user in (alice, sam):
        assert gov.decisions_per_week(user=user, period=period).total == 0
        assert gov.gate_failures_per_week(user=user, period=period).total == 0
        assert gov.overrides_in(user=user, period=period) == []
        assert gov.epsilon_per_source(user=user, period=period) == []
        assert gov.downloads_per_release(user=user, period=period) == []
        assert gov.cycle_time_by_tier(user=user, period=period) == []


# --- The page -----------------------------------------------------------------------------------

CHART_IDS = [
    "chart-cycle-time", "chart-decisions", "chart-gate-failures", "chart-overrides", "chart-epsilon",
    "chart-downloads",
]  # fmt: skip


def _get(user: Any, **params: str) -> Any:
    request = RequestFactory().get("/catalog/governance/", params)
    request.user = user
    return governance_dashboard(request)


def test_the_page_draws_every_chart_with_its_table(world: World, audrey: Any) -> None:
    body = _get(audrey).content.decode()
    for chart_id in CHART_IDS:
        assert f'<div id="{chart_id}" class="chart" role="img"' in body, chart_id
        assert f'data-target="{chart_id}"' in body
    assert body.count("<details>") == len(CHART_IDS)
    assert "column_shape_similarity" in body and "No access grants recorded" in body
    assert 'href="/requests/evidence/"' in body


def test_an_empty_period_says_so_instead_of_drawing(
    make_request: Callable[..., GenerationRequest], olivia: Any
) -> None:
    item = _submitted(make_request)
    request_decide(actor=olivia, request_id=item.pk, decision="reject", comment="Not needed.")
    assert 'id="chart-decisions" class="chart"' in _get(olivia).content.decode()

    body = _get(olivia, start="2000-01-01", end="2000-02-01").content.decode()
    assert 'id="chart-epsilon" class="chart"' in body  # budgets are today's, whatever the period
    assert 'class="chart"' not in body.replace('id="chart-epsilon" class="chart"', "")
    assert "No decision was recorded in this period." in body
    assert "No release was downloaded in this period." in body


def test_a_reversed_or_too_long_period_is_explained(olivia: Any) -> None:
    body = _get(olivia, start="2026-02-01", end="2026-01-01").content.decode()
    assert "The start date is after the end date" in body
    body = _get(olivia, start="2020-01-01", end="2026-01-01").content.decode()
    assert f"Choose at most {gov.MAX_PERIOD_DAYS} days" in body


def test_the_query_count_does_not_grow_with_the_requests(
    make_request: Callable[..., GenerationRequest], olivia: Any, audrey: Any
) -> None:
    def decide(n: int) -> None:
        for i in range(n):
            item = _submitted(make_request, title=f"Request {i}")
            decision = ("approve", "reject", "request_changes")[i % 3]
            request_decide(actor=olivia, request_id=item.pk, decision=decision, comment="Reason given.")

    decide(2)
    with CaptureQueriesContext(connection) as two:
        assert _get(audrey).status_code == 200
    decide(8)
    with CaptureQueriesContext(connection) as ten:
        page = _get(audrey)
    assert gov.decisions_per_week(user=audrey, period=gov.default_period()).total == 10
    assert b"chart-decisions" in page.content
    assert len(ten.captured_queries) == len(two.captured_queries), [q["sql"] for q in ten.captured_queries]


@pytest.mark.parametrize("persona", ["olivia", "audrey", "ada"])
def test_oversight_roles_see_the_page(client: Any, persona: str, request: pytest.FixtureRequest) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.get("/catalog/governance/").status_code == 200


@pytest.mark.parametrize("persona", ["alice", "charlie", "sam"])
def test_everyone_else_gets_404(client: Any, persona: str, request: pytest.FixtureRequest) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.get("/catalog/governance/").status_code == 404

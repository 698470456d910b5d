"""Policy publication by two people, tried as the attacker would: an admin alone cannot change
the tiering rules; a privacy officer approves after reading the diff and never their own
proposal; officers and auditors read the policy, its history and every diff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from approvals.models import PolicyVersion
from approvals.services.policy import (
    policy_active,
    policy_approve,
    policy_ensure_active,
    policy_file,
    policy_propose,
    sha256_of,
)
from audit.models import AuditEvent, Outcome
from core.errors import PermissionDenied, ValidationFailed

OLD = "  - id: sensitive_columns\n    when: {fact: sensitive_columns, gte: 1}\n    tier: medium"


def _stricter(extra: str = "") -> str:
    text = policy_file().read_text()
    assert OLD in text
    return text.replace(OLD, OLD.replace("tier: medium", "tier: high")) + extra


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def propose_in_browser(client: Client, source: str) -> PolicyVersion:
    """Review the draft (the diff is shown), then propose exactly the reviewed text."""
    review = client.post("/manage/policy/", {"source": source, "base": "1", "action": "review"})
    assert "Propose for approval" in review.content.decode()
    client.post(
        "/manage/policy/",
        {"source": source, "base": "1", "action": "propose", "reviewed": sha256_of(source)},
    )
    return PolicyVersion.objects.get(status="proposed", sha256=sha256_of(source))


def approve_in_browser(client: Client, proposal: PolicyVersion) -> Any:
    page = client.get(f"/manage/policy/proposals/{proposal.pk}/")
    return client.post(
        f"/manage/policy/proposals/{proposal.pk}/decide/",
        {"action": "approve", "reviewed": page.context["proposal"].sha256},
    )


def test_an_admin_alone_cannot_publish_a_new_tiering_policy(
    ada: Any, submitted_request: Any, submit: Callable[..., Any]
) -> None:
    client = signed_in(ada)
    proposal = propose_in_browser(client, _stricter())

    page = client.get(f"/manage/policy/proposals/{proposal.pk}/").content.decode()
    assert 'value="approve"' not in page
    response = client.post(
        f"/manage/policy/proposals/{proposal.pk}/decide/", {"action": "approve", "reviewed": proposal.sha256}
    )

    assert response.status_code == 403
    proposal.refresh_from_db()
    assert (proposal.status, proposal.number) == ("proposed", None)
    assert policy_active().number == 1
    assert (submit().tier_level, submit().policy_version) == ("medium", "1")
    assert AuditEvent.objects.filter(
        action="policy.approve", actor_name="ada", outcome=Outcome.DENIED, details={"reason": "not_officer"}
    ).exists()


def test_an_officer_approves_after_reading_the_diff_and_the_next_submission_uses_it(
    ada: Any, olivia: Any, submitted_request: Any, submit: Callable[..., Any]
) -> None:
    proposal = propose_in_browser(signed_in(ada), _stricter())
    client = signed_in(olivia)

    page = client.get(f"/manage/policy/proposals/{proposal.pk}/").content.decode()
    assert 'class="diff-remove">-    tier: medium<' in page and 'class="diff-add">+    tier: high<' in page
    assert "Approve and publish as v2" in page
    response = approve_in_browser(client, proposal)

    assert response.status_code == 302
    version = PolicyVersion.objects.get(number=2)
    assert (version.status, version.published_by, version.approved_by) == ("published", ada, olivia)
    assert (submit().tier_level, submit().policy_version) == ("high", "2")


def test_an_officer_cannot_approve_their_own_proposal_but_another_officer_can(
    olivia: Any, oscar: Any, submitted_request: Any
) -> None:
    mine = signed_in(olivia)
    proposal = propose_in_browser(mine, _stricter())

    assert 'value="approve"' not in mine.get(f"/manage/policy/proposals/{proposal.pk}/").content.decode()
    assert approve_in_browser(mine, proposal).status_code == 403
    with pytest.raises(PermissionDenied):
        policy_approve(actor=olivia, proposal_id=proposal.pk, reviewed_sha=proposal.sha256)
    assert policy_active().number == 1
    assert AuditEvent.objects.filter(actor_name="olivia", details={"reason": "own_proposal"}).count() == 2

    approve_in_browser(signed_in(oscar), proposal)
    assert policy_active().number == 2 and policy_active().approved_by == oscar


def test_an_approval_that_did_not_come_from_the_diff_page_is_refused(
    ada: Any, olivia: Any, submitted_request: Any
) -> None:
    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)

    with pytest.raises(ValidationFailed, match="after reading its diff"):
        policy_approve(actor=olivia, proposal_id=proposal.pk, reviewed_sha=sha256_of("something else"))
    assert policy_active().number == 1


def test_a_rejected_proposal_never_applies_and_says_why(
    ada: Any, olivia: Any, submitted_request: Any
) -> None:
    proposal = propose_in_browser(signed_in(ada), _stricter())
    client = signed_in(olivia)

    no_reason = client.post(f"/manage/policy/proposals/{proposal.pk}/decide/", {"action": "reject"})
    assert no_reason.status_code == 400 and "Say why" in no_reason.content.decode()
    client.post(
        f"/manage/policy/proposals/{proposal.pk}/decide/",
        {"action": "reject", "reason": "Too strict for now"},
    )

    proposal.refresh_from_db()
    assert (proposal.status, proposal.decision_reason, proposal.number) == (
        "rejected",
        "Too strict for now",
        None,
    )
    assert policy_active().number == 1
    assert AuditEvent.objects.filter(action="policy.reject", actor_name="olivia").exists()


def test_publishing_one_proposal_supersedes_the_others_written_on_the_same_version(
    ada: Any, olivia: Any, oscar: Any, submitted_request: Any
) -> None:
    first = policy_propose(actor=ada, source=_stricter(), base_number=1)
    second = policy_propose(actor=ada, source=_stricter("# another\n"), base_number=1)

    policy_approve(actor=olivia, proposal_id=first.pk, reviewed_sha=first.sha256)

    second.refresh_from_db()
    assert (second.status, second.number) == ("superseded", None)


@pytest.mark.parametrize("reader", ["olivia", "audrey", "ada"])
def test_officers_and_auditors_read_the_policy_its_history_and_each_diff(
    request: pytest.FixtureRequest, ada: Any, oscar: Any, submitted_request: Any, reader: str
) -> None:
    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)
    policy_approve(actor=oscar, proposal_id=proposal.pk, reviewed_sha=proposal.sha256)
    pending = policy_propose(actor=ada, source=_stricter("# later\n"), base_number=2)
    client = signed_in(request.getfixturevalue(reader))

    overview = client.get("/manage/policy/")
    version = client.get("/manage/policy/2/")
    proposed = client.get(f"/manage/policy/proposals/{pending.pk}/")

    assert (overview.status_code, version.status_code, proposed.status_code) == (200, 200, 200)
    html = overview.content.decode()
    assert 'data-testid="active-version">v2<' in html and "/manage/policy/1/" in html
    assert f"Proposal #{pending.pk}" in html
    assert "+    tier: high" in version.content.decode()
    assert "+# later" in proposed.content.decode()


def test_an_auditor_reads_but_cannot_propose_or_approve(
    ada: Any, audrey: Any, submitted_request: Any
) -> None:
    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)
    client = signed_in(audrey)

    assert "Draft a new version" not in client.get("/manage/policy/").content.decode()
    assert approve_in_browser(client, proposal).status_code == 403
    assert (
        client.post("/manage/policy/", {"source": _stricter("# x\n"), "action": "propose"}).status_code == 403
    )
    assert policy_active().number == 1


@pytest.mark.parametrize("persona", ["alice", "sam"])
def test_scientists_and_stewards_do_not_see_proposals(
    request: pytest.FixtureRequest, ada: Any, persona: str
) -> None:
    policy_ensure_active()
    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)
    client = signed_in(request.getfixturevalue(persona))

    assert client.get(f"/manage/policy/proposals/{proposal.pk}/").status_code == 404
    assert approve_in_browser_status(client, proposal) == 404
    assert PolicyVersion.objects.get(pk=proposal.pk).status == "proposed"


def approve_in_browser_status(client: Client, proposal: PolicyVersion) -> int:
    response = client.post(
        f"/manage/policy/proposals/{proposal.pk}/decide/", {"action": "approve", "reviewed": proposal.sha256}
    )
    return response.status_code


def test_the_database_refuses_a_version_approved_by_its_author(ada: Any, submitted_request: Any) -> None:
    from django.db import IntegrityError, transaction

    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=proposal.pk).update(status="published", number=2, approved_by=ada)

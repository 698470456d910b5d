"""The risk policy pages: admins, privacy officers and auditors read them; admins and officers
propose with the diff shown before confirming; invalid drafts are refused with line and field
(never a 500); a privacy officer's approval is what changes the next submission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from approvals.models import PolicyVersion
from approvals.services.policy import policy_file, sha256_of
from audit.models import AuditEvent

OLD = "  - id: sensitive_columns\n    when: {fact: sensitive_columns, gte: 1}\n    tier: medium"


def _stricter() -> str:
    text = policy_file().read_text()
    assert OLD in text
    return text.replace(OLD, OLD.replace("tier: medium", "tier: high"))


@pytest.mark.parametrize("persona", ["alice", "sam"])
@pytest.mark.parametrize("path", ["/manage/policy/", "/manage/policy/1/"])
def test_the_policy_pages_do_not_exist_for_scientists_and_stewards(
    client: Client, request: pytest.FixtureRequest, persona: str, path: str, submitted_request: Any
) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("persona", ["alice", "audrey"])
def test_a_scientist_or_auditor_cannot_propose_and_the_attempt_is_audited(
    client: Client, request: pytest.FixtureRequest, persona: str
) -> None:
    client.force_login(request.getfixturevalue(persona))
    response = client.post("/manage/policy/", {"source": _stricter(), "action": "propose"})
    assert response.status_code in (403, 404)
    assert PolicyVersion.objects.count() == 0
    assert AuditEvent.objects.filter(action="manage.write", outcome="denied").count() == 1


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: Any) -> None:
    assert client.get("/manage/policy/")["Location"].startswith("/accounts/login/")


def test_the_admin_sees_the_rules_and_no_write_happens_on_a_visit(client: Client, ada: Any) -> None:
    client.force_login(ada)
    page = client.get("/manage/policy/").content.decode()
    assert "No version loaded yet" in page and "id: external_without_dp" in page
    assert ">Risk policy</a>" in page  # the admin tab
    assert PolicyVersion.objects.count() == 0


def test_reviewing_a_draft_shows_the_diff_and_offers_to_publish(
    client: Client, ada: Any, submitted_request: Any
) -> None:
    client.force_login(ada)
    page = client.post(
        "/manage/policy/", {"source": _stricter(), "base": "1", "action": "review"}
    ).content.decode()
    assert 'class="diff-remove">-    tier: medium<' in page
    assert 'class="diff-add">+    tier: high<' in page
    assert "Propose for approval" in page
    assert f'name="reviewed" value="{sha256_of(_stricter())}"' in page
    assert PolicyVersion.objects.count() == 1  # reviewing writes nothing


def test_publishing_without_reviewing_the_exact_text_shows_the_diff_instead(
    client: Client, ada: Any, submitted_request: Any
) -> None:
    client.force_login(ada)
    page = client.post(
        "/manage/policy/", {"source": _stricter(), "base": "1", "action": "publish", "reviewed": "stale"}
    ).content.decode()
    assert "Propose for approval" in page and PolicyVersion.objects.count() == 1


def test_the_reviewed_draft_is_proposed_and_the_next_submission_uses_it_once_an_officer_approves(
    client: Client, ada: Any, olivia: Any, submitted_request: Any, submit: Callable[..., Any]
) -> None:
    client.force_login(ada)
    source = _stricter()
    response = client.post(
        "/manage/policy/",
        {
            "source": source.replace("\n", "\r\n"),
            "notes": "Sensitive is high",
            "base": "1",
            "action": "propose",
            "reviewed": sha256_of(source),
        },
    )
    proposal = PolicyVersion.objects.get(status="proposed")
    assert response.status_code == 302 and response["Location"] == f"/manage/policy/proposals/{proposal.pk}/"
    assert (
        proposal.source == source and proposal.published_by == ada and proposal.notes == "Sensitive is high"
    )
    assert AuditEvent.objects.filter(action="policy.propose", actor_name="ada").exists()
    assert (submit().tier_level, submit().policy_version) == ("medium", "1")  # not in force yet

    client.force_login(olivia)
    approved = client.post(
        f"/manage/policy/proposals/{proposal.pk}/decide/", {"action": "approve", "reviewed": proposal.sha256}
    )
    assert approved.status_code == 302 and approved["Location"] == "/manage/policy/2/"
    assert AuditEvent.objects.filter(action="policy.publish", actor_name="olivia", target_id="2").exists()
    submitted_request.refresh_from_db()
    assert (submitted_request.tier_level, submitted_request.policy_version) == ("medium", "1")
    assert (submit().tier_level, submit().policy_version) == ("high", "2")
    detail = client.get("/manage/policy/2/").content.decode()
    assert "Changes from v1" in detail and "+    tier: high" in detail
    assert "approved and published" in detail and "olivia" in detail


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("tiers: [\n", "Line 2"),
        ("a: &x 1\nb: *x\n", "anchors and aliases"),
        ("schema: 1\n", "missing `tiers`"),
        (OLD.join(["", ""]), "must be a mapping"),
    ],
)
def test_invalid_drafts_show_their_problems_never_a_500(
    client: Client, ada: Any, source: str, shown: str
) -> None:
    client.force_login(ada)
    response = client.post("/manage/policy/", {"source": source, "action": "review"})
    assert response.status_code == 200
    assert 'data-testid="policy-problems"' in response.content.decode()
    assert shown in response.content.decode()
    assert PolicyVersion.objects.count() == 0


def test_a_schema_error_names_the_line_and_field(client: Client, ada: Any) -> None:
    client.force_login(ada)
    draft = _stricter().replace("fact: audience, eq: organization", "fact: audience, eq: everyone")
    line = draft[: draft.index("eq: everyone")].count("\n") + 1
    page = client.post("/manage/policy/", {"source": draft, "action": "review"}).content.decode()
    assert f"Line {line}, <code>rules[5].when.eq</code>" in page


def test_proposing_over_a_newer_version_is_refused(
    client: Client, ada: Any, olivia: Any, submitted_request: Any
) -> None:
    from approvals.services.policy import policy_approve, policy_propose

    proposal = policy_propose(actor=ada, source=_stricter(), base_number=1)
    policy_approve(actor=olivia, proposal_id=proposal.pk, reviewed_sha=proposal.sha256)
    client.force_login(ada)
    draft = _stricter() + "# mine\n"
    page = client.post(
        "/manage/policy/", {"source": draft, "base": "1", "action": "propose", "reviewed": sha256_of(draft)}
    ).content.decode()
    assert "Version 2 was published while you were editing" in page
    assert PolicyVersion.objects.count() == 2

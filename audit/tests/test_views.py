"""The audit log browser: readers filter and page through events and see whether the chain holds."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record
from audit.views import PAGE_SIZE
from portal.services import user_update


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown(response: Any) -> list[str]:
    return [event.action for event in response.context["page"]]


@pytest.fixture
def history(ada: Any, alice: Any, charlie: Any) -> None:
    user_update(actor=ada, user_id=alice.pk, role="privacy_officer")
    audit_record(actor=charlie, action="release.download", target_type="release", target_id="r-7")


@pytest.mark.parametrize("reader", ["audrey", "olivia", "ada"])
def test_readers_see_events_newest_first_and_an_intact_chain(
    request: pytest.FixtureRequest, history: None, reader: str
) -> None:
    client = signed_in(request.getfixturevalue(reader))
    client.post(reverse("audit:verify"))
    response = client.get(reverse("audit:event-list"))

    assert response.status_code == 200
    seqs = [event.seq for event in response.context["page"]]
    assert seqs == sorted(seqs, reverse=True) and seqs[0] == AuditEvent.objects.count()
    html = response.content.decode()
    assert "Chain intact</strong> up to event #" in html
    assert "release.download" in html and "release:r-7" in html


def test_filters_by_actor_action_target_and_date(audrey: Any, alice: Any, history: None) -> None:
    client = signed_in(audrey)
    url = reverse("audit:event-list")

    assert shown(client.get(url, {"actor": "ADA"})) == ["account_change.propose"]
    assert shown(client.get(url, {"action": "download"})) == ["release.download"]
    assert shown(client.get(url, {"target": f"user:{alice.pk}"})) == ["account_change.propose", "user.create"]
    assert shown(client.get(url, {"date_to": "2000-01-01"})) == []


def test_a_malformed_date_is_reported_and_the_other_filters_still_apply(audrey: Any, history: None) -> None:
    response = signed_in(audrey).get(
        reverse("audit:event-list"), {"date_from": "last tuesday", "action": "download"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["date_from"]
    assert shown(response) == ["release.download"]


def test_events_are_paged_by_50_and_page_links_keep_the_filters(audrey: Any) -> None:
    for n in range(PAGE_SIZE + 5):
        audit_record(actor=None, action="bulk.test", target_type="thing", target_id=n)
    client = signed_in(audrey)

    first = client.get(reverse("audit:event-list"), {"action": "bulk"})
    second = client.get(reverse("audit:event-list"), {"action": "bulk", "page": "2"})

    assert (len(first.context["page"]), len(second.context["page"])) == (PAGE_SIZE, 5)
    assert "?action=bulk&amp;page=2" in first.content.decode()


def test_a_broken_chain_is_announced_with_the_first_bad_seq(audrey: Any, history: None) -> None:
    client = signed_in(audrey)  # signing in is audited: sign in before forging the next row
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    AuditEvent.objects.create(
        seq=last.seq + 1,
        at=last.at,
        actor_name="ada",
        action="user.update",
        target_type="user",
        target_id="1",
        outcome="success",
        prev_hash=last.hash,
        hash="f" * 64,
    )

    client.post(reverse("audit:verify"))
    for name in ("audit:event-list", "audit:verify"):
        html = client.get(reverse(name)).content.decode()
        assert f"Chain BROKEN at seq {last.seq + 1}" in html


def test_the_verify_page_shows_the_verdict(olivia: Any, history: None) -> None:
    client = signed_in(olivia)
    verified = AuditEvent.objects.count()
    response = client.post(reverse("audit:verify"), follow=True)

    assert response.status_code == 200
    assert response.context["chain"].latest.ok
    assert f"Chain intact</strong> up to event #{verified}" in response.content.decode()


def test_filter_fields_have_labels(audrey: Any) -> None:
    html = signed_in(audrey).get(reverse("audit:event-list")).content.decode()

    for field in ("actor", "action", "target", "date_from", "date_to"):
        assert f'<label for="id_{field}">' in html


@pytest.mark.parametrize("outsider", ["alice", "sam"])
@pytest.mark.parametrize("name", ["audit:event-list", "audit:verify"])
def test_other_roles_get_404(request: pytest.FixtureRequest, outsider: str, name: str) -> None:
    response = signed_in(request.getfixturevalue(outsider)).get(reverse(name))

    assert response.status_code == 404


@pytest.mark.parametrize("name", ["audit:event-list", "audit:verify"])
def test_anonymous_visitors_are_sent_to_sign_in(db: None, name: str) -> None:
    response = Client().get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_verify_page_says_why_and_shows_the_checkpoints(audrey: Any, history: None) -> None:
    from audit.services import audit_checkpoint
    from audit.tests.tampering import raw, triggers_off

    client = signed_in(audrey)  # signing in is audited: before the checkpoint it covers
    audit_checkpoint()
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'nobody' WHERE seq = 2")

    checkpointed = AuditEvent.objects.count()
    html = client.post(reverse("audit:verify"), follow=True).content.decode()

    assert "Chain BROKEN at seq 2" in html
    assert "edited, or written without the key" in html
    assert f"1 valid, newest at seq {checkpointed}" in html

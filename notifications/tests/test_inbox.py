"""The inbox itself: who is notified (and e-mailed), what each person sees, marking read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.template import Context, Template
from django.test import Client, RequestFactory

from notifications.context import unread
from notifications.models import Notification, NotificationKind
from notifications.selectors import unread_count
from notifications.services import mark_read, notify

pytestmark = [pytest.mark.django_db]


def _notify(recipients: list[Any], **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "recipients": recipients,
        "kind": NotificationKind.REVIEW_NEEDED,
        "message": "Review needed (medium tier): Readmission model prototype [r-1]",
        "url": "/requests/r-1/",
        "target_type": "request",
        "target_id": "r-1",
    }
    return notify(**{**fields, **overrides})


def test_notify_writes_one_row_each_and_emails_only_those_with_an_address(
    alice: Any,
    olivia: Any,
    oscar: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(olivia)
    with django_capture_on_commit_callbacks(execute=True):
        assert _notify([olivia, oscar]) == 2
    assert sorted(Notification.objects.values_list("recipient__username", flat=True)) == ["olivia", "oscar"]
    assert [m.to for m in mail.outbox] == [["olivia@example.org"]]
    assert "Readmission model prototype" in mail.outbox[0].subject and "/requests/r-1/" in mail.outbox[0].body


def test_nobody_to_notify_is_zero_and_sends_nothing(
    olivia: Any, with_emails: Callable[..., None], django_capture_on_commit_callbacks: Any
) -> None:
    with_emails(olivia)
    olivia.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        assert _notify([]) == 0
        assert _notify([olivia]) == 0  # inactive: nobody reads that inbox
    assert not Notification.objects.exists() and mail.outbox == []


def test_one_event_notifies_each_person_once(olivia: Any, oscar: Any) -> None:
    assert _notify([olivia]) == 1
    assert _notify([olivia, oscar]) == 1  # olivia already has it
    assert _notify([olivia]) == 0
    assert Notification.objects.count() == 2
    assert _notify([olivia], dedup_key="review_needed:request:r-1:round2") == 1  # a new round is new


def test_a_rolled_back_event_notifies_nobody(
    olivia: Any, with_emails: Callable[..., None], django_capture_on_commit_callbacks: Any
) -> None:
    with_emails(olivia)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            _notify([olivia])
            raise RuntimeError("the caller's work failed")
    assert not Notification.objects.exists() and mail.outbox == []


def test_a_mail_outage_is_logged_not_raised(
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Any, fail_silently: bool = False) -> int:
        raise OSError("SMTP unreachable")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    with_emails(olivia)
    with django_capture_on_commit_callbacks(execute=True):
        assert _notify([olivia]) == 1
    assert Notification.objects.filter(recipient=olivia).count() == 1


def test_links_go_to_this_site_only(olivia: Any) -> None:
    with pytest.raises(ValueError):
        _notify([olivia], url="https://evil.example/")
    with pytest.raises(ValueError):
        _notify([olivia], url="//evil.example/")


def test_the_inbox_lists_only_the_users_own_newest_first(client: Client, alice: Any, olivia: Any) -> None:
    _notify([olivia], message="Review needed: first [r-1]", dedup_key="a")
    _notify([olivia], message="Review needed: second [r-2]", url="/requests/r-2/", dedup_key="b")
    _notify([alice], message="Release published: alice's own [r-3]", dedup_key="c")
    client.force_login(olivia)
    page = client.get("/inbox/").content.decode()
    assert page.index("second [r-2]") < page.index("first [r-1]")
    assert 'href="/requests/r-2/"' in page
    assert "alice&#x27;s own" not in page and "alice's own" not in page


def test_mark_read_marks_only_the_users_own(client: Client, alice: Any, olivia: Any) -> None:
    _notify([olivia, alice])
    mine, theirs = (Notification.objects.get(recipient=u) for u in (olivia, alice))
    client.force_login(olivia)
    response = client.post("/inbox/read/", {"id": [mine.pk, theirs.pk]})
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None and theirs.read_at is None
    assert mark_read(user=olivia, ids=[theirs.pk]) == 0


def test_mark_all_read(client: Client, olivia: Any) -> None:
    _notify([olivia], dedup_key="a")
    _notify([olivia], dedup_key="b")
    client.force_login(olivia)
    client.post("/inbox/read/", {"all": "1"})
    assert unread_count(olivia) == 0


def test_mark_read_needs_the_csrf_token_and_a_post(olivia: Any) -> None:
    _notify([olivia])
    client = Client(enforce_csrf_checks=True)
    client.force_login(olivia)
    assert client.post("/inbox/read/", {"all": "1"}).status_code == 403
    assert client.get("/inbox/read/").status_code == 405
    assert unread_count(olivia) == 1


def test_the_inbox_needs_a_sign_in(client: Client) -> None:
    response = client.get("/inbox/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_unread_count_is_one_query_and_only_when_shown(
    olivia: Any, django_assert_num_queries: Any
) -> None:
    _notify([olivia], dedup_key="a")
    _notify([olivia], dedup_key="b")
    mark_read(user=olivia, ids=[Notification.objects.filter(recipient=olivia).first().pk])
    request = RequestFactory().get("/")
    request.user = olivia
    with django_assert_num_queries(0):
        context = unread(request)
    with django_assert_num_queries(1):
        shown = Template("{% if n %}Inbox ({{ n }}){% endif %}").render(
            Context({"n": context["unread_notifications"]})
        )
    assert shown == "Inbox (1)"


def test_no_count_for_anonymous_visitors() -> None:
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    assert unread(request) == {}


def test_the_api_lists_the_users_own_and_marks_them_read(
    api: Callable[[Any], Any], alice: Any, olivia: Any
) -> None:
    _notify([olivia, alice])
    theirs = Notification.objects.get(recipient=alice)
    body = api(olivia).get("/api/v1/notifications/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    [row] = body["results"]
    assert row["url"] == "/requests/r-1/" and row["read_at"] is None and row["kind"] == "review_needed"

    answer = api(olivia).post("/api/v1/notifications/read/", {"ids": [row["id"], theirs.pk]}, format="json")
    assert answer.status_code == 200 and answer.json() == {"marked": 1}
    assert unread_count(olivia) == 0 and unread_count(alice) == 1
    assert api(None).get("/api/v1/notifications/").status_code == 401
    assert api(olivia).post("/api/v1/notifications/read/", {"ids": "x"}, format="json").status_code == 400

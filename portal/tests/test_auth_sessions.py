"""Sessions end when idle and after an absolute lifetime; sign-in events are audited; nothing
that carries data may be cached (issue 13, items 3, 4 and 8)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from conftest import PASSWORD
from portal.auth_signals import SESSION_STARTED_KEY

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_idle_timeout_is_thirty_minutes_and_every_request_extends_it() -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True


def test_an_idle_session_is_refused(alice: Any) -> None:
    client = signed_in(alice)
    assert client.get("/").status_code == 200
    # What thirty idle minutes leave behind: the stored session has expired.
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_an_active_session_still_ends_after_the_absolute_lifetime(alice: Any) -> None:
    client = signed_in(alice)
    session = client.session
    session[SESSION_STARTED_KEY] = int(time.time()) - settings.SYNTHGATE_SESSION_ABSOLUTE_HOURS * 3600 - 1
    session.save()

    response = client.get("/requests/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/").status_code == 302  # signed out, not just redirected once
    assert AuditEvent.objects.filter(action="auth.session.expire", actor=alice).exists()


def test_html_sign_in_success_failure_and_sign_out_are_audited(alice: Any) -> None:
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "not-it-at-all"})
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/logout/")

    events = list(AuditEvent.objects.filter(action__startswith="auth.").order_by("seq"))
    assert [(e.action, e.outcome) for e in events] == [
        ("auth.login", "denied"),
        ("auth.login", "success"),
        ("auth.logout", "success"),
    ]
    assert events[0].target_id == "alice" and events[1].actor == alice
    assert "not-it-at-all" not in " ".join(str(e.details) for e in events)


@pytest.mark.parametrize("path", ["/", "/requests/", "/catalog/", "/accounts/tokens/", "/accounts/login/"])
def test_pages_are_never_stored_by_a_cache(alice: Any, path: str) -> None:
    assert signed_in(alice).get(path)["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/api/v1/requests/", "/api/v1/releases/", "/api/v1/nope/"])
def test_api_answers_are_never_stored_by_a_cache(alice: Any, api: Any, path: str) -> None:
    assert api(alice).get(path)["Cache-Control"] == "no-store"


def test_static_files_and_the_health_check_stay_cacheable(db: None) -> None:
    assert "no-store" not in Client().get("/static/css/app.css").get("Cache-Control", "")
    assert "no-store" not in Client().get("/healthz").get("Cache-Control", "")

"""Brute force against every password form, as an attacker would try it (issue 13, item 2)."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache.backends.db import DatabaseCache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from audit.models import AuditEvent
from conftest import PASSWORD

pytestmark = pytest.mark.django_db
LIMIT = settings.AXES_FAILURE_LIMIT
ADDRESS_LIMIT = settings.SYNTHGATE_LOCKOUT_ADDRESS_FAILURES


def _html_login(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_fifty_wrong_passwords_then_the_right_one_is_refused_on_the_html_login(alice: Any) -> None:
    client = Client()
    for attempt in range(50):
        _html_login(client, "alice", f"wrong-guess-{attempt}")

    response = _html_login(client, "alice", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert not _signed_in(client)
    assert Client().get("/").status_code == 302  # and nobody got a session on the way


def test_failed_sign_ins_and_the_lockout_are_audited_without_the_password(alice: Any) -> None:
    client = Client()
    for attempt in range(LIMIT):
        _html_login(client, "alice", f"Secret-guess-{attempt}")

    failures = AuditEvent.objects.filter(action="auth.login", outcome="denied", target_id="alice")
    assert failures.count() == LIMIT - 1  # the last failure is recorded as the lockout itself
    assert AuditEvent.objects.filter(action="auth.lockout", target_id="alice").exists()
    stored = " ".join(str(e.details) for e in AuditEvent.objects.all())
    assert "Secret-guess" not in stored


def test_a_locked_account_cannot_sign_in_from_another_address_or_through_the_api(alice: Any) -> None:
    for attempt in range(LIMIT):
        _html_login(Client(), "alice", f"wrong-{attempt}", REMOTE_ADDR="203.0.113.7")

    from_elsewhere = _html_login(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9")
    api = APIClient(REMOTE_ADDR="198.51.100.10").post(
        "/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert from_elsewhere.status_code == 429
    assert api.status_code == 429 and api.json()["error"]["code"] == "locked_out"
    assert "token" not in api.json()


def test_one_address_guessing_many_accounts_is_locked_out(alice: Any, bob: Any) -> None:
    # Spraying one password over many usernames: each account stays under its limit, the
    # address does not. Rotating X-Forwarded-For does not make a new address.
    for attempt in range(ADDRESS_LIMIT):
        _html_login(Client(), f"user{attempt}", "Spring-2026!", HTTP_X_FORWARDED_FOR=f"10.9.{attempt}.1")

    response = _html_login(Client(), "bob", PASSWORD, HTTP_X_FORWARDED_FOR="10.99.0.1")

    assert response.status_code == 429
    assert AccessAttempt.objects.values("ip_address").distinct().count() == 1


def test_colleagues_behind_one_address_are_not_locked_out_by_a_few_typos(alice: Any, bob: Any) -> None:
    # Staff share the hospital's NAT address: more failures than one account may have, spread
    # over accounts, leave the others able to sign in.
    for attempt in range(LIMIT + 2):
        _html_login(Client(), f"colleague{attempt}", "typo-typo-typo")

    client = Client()
    assert _html_login(client, "bob", PASSWORD).status_code == 302
    assert _signed_in(client)


def test_the_django_admin_login_is_locked_out_too(ada: Any) -> None:
    ada.is_staff = True
    ada.save(update_fields=["is_staff"])
    for attempt in range(LIMIT):
        Client().post("/django-admin/login/", {"username": "ada", "password": f"wrong-{attempt}"})

    client = Client()
    response = client.post("/django-admin/login/", {"username": "ada", "password": PASSWORD})

    assert response.status_code == 429
    assert not _signed_in(client)


def test_rotating_x_forwarded_for_does_not_dodge_the_api_throttle(
    alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "5/minute"})
    client = APIClient()
    codes = []
    for attempt in range(6):
        response = client.post(
            "/api/v1/auth/token/",
            {"username": f"nobody{attempt}", "password": "x"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt + 1}",
        )
        codes.append(response.status_code)

    assert codes[:5] == [400] * 5
    assert codes[5] == 429
    assert response.json()["error"]["code"] == "throttled"


def test_x_forwarded_for_is_believed_only_for_the_configured_proxies(rf: Any, settings: Any) -> None:
    from portal.auth_client import client_ip

    request = rf.post("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5", REMOTE_ADDR="10.0.0.2")
    assert client_ip(request) == "10.0.0.2"
    settings.SYNTHGATE_TRUSTED_PROXIES = 1
    # The client wrote 6.6.6.6 itself; our one proxy appended the address it saw.
    assert client_ip(request) == "203.0.113.5"
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0  # the same default number for DRF


def test_counters_live_in_shared_storage_not_in_process_memory(alice: Any) -> None:
    # A second web process sees only what is in the database (or Redis): simulate it with a new
    # cache instance and a fresh query, after this process has counted.
    assert settings.CACHES["default"]["BACKEND"] in {
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    }
    client = APIClient()
    client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    _html_login(Client(), "alice", "wrong-again")

    other_process_cache = DatabaseCache(settings.CACHES["default"]["LOCATION"], {})
    throttle = ScopedRateThrottle()
    throttle.scope = "auth"
    key = throttle.cache_format % {"scope": "auth", "ident": "127.0.0.1"}
    assert len(other_process_cache.get(key, [])) == 1
    assert AccessAttempt.objects.filter(username="alice").count() >= 1
    assert sum(a.failures_since_start for a in AccessAttempt.objects.filter(username="alice")) == 2


def test_the_password_change_form_counts_wrong_old_passwords_and_locks_like_sign_in(alice: Any) -> None:
    # A stolen session must not become an unlimited oracle for the account's password.
    client = Client()
    client.force_login(alice)
    for attempt in range(LIMIT):
        client.post(
            "/accounts/password/change/",
            {
                "old_password": f"guess-{attempt}",
                "new_password1": "N3w-long-passphrase!",
                "new_password2": "N3w-long-passphrase!",
            },
        )

    client.post(
        "/accounts/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "N3w-long-passphrase!",
            "new_password2": "N3w-long-passphrase!",
        },
    )

    alice.refresh_from_db()
    assert alice.check_password(PASSWORD) and not alice.check_password("N3w-long-passphrase!")
    assert AccessAttempt.objects.filter(username="alice").exists()

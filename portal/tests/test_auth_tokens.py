"""API tokens: hashed, expiring, revocable; passwords: changed, reset, validated (issue 13, item 3)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from conftest import PASSWORD
from core.errors import ValidationFailed
from portal.models import ApiToken

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Another-Long-Phrase-77"


def api_token(username: str, password: str = PASSWORD) -> str:
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def works(token: str) -> bool:
    return APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/requests/").status_code == 200


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_tokens_are_stored_hashed_and_each_sign_in_gets_a_new_one(alice: Any) -> None:
    first, second = api_token("alice"), api_token("alice")

    assert first != second and works(first) and works(second)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key_hash, prefix FROM portal_apitoken")
        rows = cursor.fetchall()
    stored = " ".join(" ".join(row) for row in rows)
    assert first not in stored and second not in stored
    assert {row[0] for row in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in (first, second)}
    assert AuditEvent.objects.filter(action="auth.token.create", actor=alice).count() == 2


def test_a_stolen_hash_is_not_a_token(alice: Any) -> None:
    api_token("alice")
    key_hash = ApiToken.objects.get().key_hash
    assert not works(key_hash)


def test_tokens_expire(alice: Any, settings: Any) -> None:
    token = api_token("alice")
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/requests/")
    assert response.status_code == 401


def test_expiry_follows_the_setting(alice: Any, settings: Any) -> None:
    settings.SYNTHGATE_API_TOKEN_HOURS = 2
    api_token("alice")
    lifetime = ApiToken.objects.get().expires_at - timezone.now()
    assert timedelta(hours=1, minutes=59) < lifetime <= timedelta(hours=2)


def test_the_owner_lists_and_revokes_tokens_in_the_browser(alice: Any) -> None:
    token = api_token("alice")
    client = browser(alice)
    page = client.get("/accounts/tokens/").content.decode()
    row = ApiToken.objects.get()
    assert row.prefix in page and token not in page

    client.post(f"/accounts/tokens/{row.pk}/revoke/")

    assert not works(token)
    assert AuditEvent.objects.filter(action="auth.token.revoke", actor=alice, target_id=str(row.pk)).exists()


def test_nobody_sees_or_revokes_another_users_tokens(alice: Any, bob: Any) -> None:
    token = api_token("alice")
    row = ApiToken.objects.get()
    bobs = browser(bob)

    assert row.prefix not in bobs.get("/accounts/tokens/").content.decode()
    assert bobs.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 404
    assert works(token)


def test_a_browser_token_ends_with_the_browser_session_unless_kept(alice: Any) -> None:
    client = browser(alice)
    bound = client.post("/accounts/tokens/", {"label": "notebook", "end_with_session": "on"})
    kept = client.post("/accounts/tokens/", {"label": "ci pipeline"})
    bound_key = re.search(r'id="new-token">([^<]+)<', bound.content.decode()).group(1)  # type: ignore[union-attr]
    kept_key = re.search(r'id="new-token">([^<]+)<', kept.content.decode()).group(1)  # type: ignore[union-attr]
    assert works(bound_key) and works(kept_key)

    client.post("/accounts/logout/")

    assert not works(bound_key)
    assert works(kept_key)
    assert AuditEvent.objects.filter(action="auth.logout", actor=alice).exists()


def test_a_password_change_revokes_every_token_and_is_audited(alice: Any) -> None:
    token = api_token("alice")
    client = browser(alice)

    response = client.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert not works(token)
    assert AuditEvent.objects.filter(action="auth.password.change", actor=alice).exists()
    assert client.get("/").status_code == 200  # this browser stays signed in


def test_deactivation_revokes_every_token(alice: Any) -> None:
    token = api_token("alice")
    alice.is_active = False
    alice.save()
    alice.is_active = True
    alice.save()  # reactivating does not bring an old token back
    assert not works(token)
    assert AuditEvent.objects.filter(action="auth.token.revoke", details__reason="deactivation").exists()


def test_password_reset_by_email(alice: Any) -> None:
    alice.email = "alice@hospital.example"
    alice.save()
    token = api_token("alice")
    client = Client()

    client.post("/accounts/password/reset/", {"email": "alice@hospital.example"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)  # type: ignore[union-attr]
    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert not works(token)
    assert AuditEvent.objects.filter(action="auth.password.reset", actor=alice).exists()
    assert client.get(link, follow=True).context["validlink"] is False  # the link works once


def test_a_user_whose_password_an_admin_voided_can_still_reset_it_by_email(alice: Any) -> None:
    alice.email = "alice@hospital.example"
    alice.set_unusable_password()
    alice.save()
    Client().post("/accounts/password/reset/", {"email": "ALICE@hospital.example"})
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@hospital.example"]


def test_a_reset_request_for_an_unknown_address_looks_the_same(db: None) -> None:
    response = Client().post("/accounts/password/reset/", {"email": "nobody@hospital.example"})
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("password", "why"),
    [("Short-pw-11", "at least 12"), ("password1234", "too common"), ("petra-hospital", "too similar")],
)
def test_the_password_policy(db: None, password: str, why: str) -> None:
    from portal.services import user_create

    with pytest.raises(ValidationFailed, match=why):
        user_create(username="petra-hospital", password=password, role="data_scientist")

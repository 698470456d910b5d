"""Issue 13 attacks the first round of tests did not try, each written as the attack.

- Guessing the second factor over the API (the browser's code page is covered in
  test_auth_mfa.py): django-otp's per-device throttle must hold on `POST /api/v1/auth/token/` too.
- A password change must end the user's other browser sessions, not just their API tokens: the
  point of changing a stolen password is to throw the thief out.
- Deactivation must end a session that is already open.
- A refused edit of someone else's request (the review found refused "edits" missing from the log).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp.oath import TOTP
from rest_framework.test import APIClient

from audit.models import AuditEvent
from conftest import PASSWORD
from portal.auth_mfa import totp_enrol_with_secret

pytestmark = pytest.mark.django_db
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NEW_PASSWORD = "a-brand-new-long-passphrase-77"
TOKEN_URL = "/api/v1/auth/token/"


def signed_in(username: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def test_guessing_the_otp_over_the_api_is_throttled_and_audited(olivia: Any) -> None:
    device = totp_enrol_with_secret(user=olivia, secret_base32=SECRET)
    client = APIClient()
    right = f"{TOTP(device.bin_key).token():06d}"

    wrong = client.post(
        TOKEN_URL, {"username": "olivia", "password": PASSWORD, "otp": "000000"}, format="json"
    )
    # The right code straight after a wrong one is refused: a guesser who has the password gets
    # one try per throttle window (doubling), not 30 a minute against a million codes.
    straight_after = client.post(
        TOKEN_URL, {"username": "olivia", "password": PASSWORD, "otp": right}, format="json"
    )

    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "otp_invalid"
    assert straight_after.status_code == 400 and straight_after.json()["error"]["code"] == "otp_invalid"
    assert "token" not in straight_after.json()
    denied = AuditEvent.objects.filter(action="auth.mfa.verify", outcome="denied", actor=olivia)
    assert denied.count() == 2
    assert not AuditEvent.objects.filter(action="auth.token.create", actor=olivia).exists()


def test_a_password_change_ends_the_users_other_browser_sessions(alice: Any) -> None:
    thief = signed_in("alice")
    owner = signed_in("alice")
    assert thief.get("/").status_code == 200

    response = owner.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert owner.get("/").status_code == 200
    after = thief.get("/")
    assert after.status_code == 302 and after["Location"].startswith("/accounts/login/")


def test_deactivation_ends_a_session_that_is_already_open(alice: Any) -> None:
    client = signed_in("alice")
    assert client.get("/").status_code == 200

    alice.is_active = False
    alice.save()

    after = client.get("/")
    assert after.status_code == 302 and after["Location"].startswith("/accounts/login/")


def test_a_teammate_editing_someone_elses_request_is_refused_and_audited(
    bob: Any, submitted_request: Any
) -> None:
    # In review, alice's request is visible to her teammate bob; only alice may edit it.
    client = Client()
    client.force_login(bob)
    url = f"/requests/{submitted_request.pk}/edit/"

    refused = [client.get(url).status_code, client.post(url, {"title": "hijacked"}).status_code]

    assert refused == [404, 404]
    rows = list(AuditEvent.objects.filter(actor=bob, outcome="denied").order_by("seq"))
    assert len(rows) == 2
    assert {(r.target_type, r.target_id, r.details["reason"]) for r in rows} == {
        ("request", str(submitted_request.pk), "not_found")
    }
    submitted_request.refresh_from_db()
    assert submitted_request.title != "hijacked"

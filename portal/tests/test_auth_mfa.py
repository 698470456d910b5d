"""The second factor, tried as users and attackers would (issue 13, item 1)."""

from __future__ import annotations

import base64
import io
import re
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from audit.models import AuditEvent
from conftest import PASSWORD
from portal.auth_mfa import totp_enrol_with_secret
from portal.models import User

pytestmark = pytest.mark.django_db
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def code_for(device: TOTPDevice, step_offset: int = 0) -> str:
    # drift moves to the next time step, which the device's tolerance of one step accepts: a code
    # once accepted is never accepted again, so a second sign-in in the same test needs the next.
    return f"{TOTP(device.bin_key, drift=step_offset).token():06d}"


def wait_out_throttle() -> None:
    # django-otp refuses every code for 1 s after a wrong one (doubling with each further one).
    time.sleep(1.1)


def password_sign_in(username: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def olivia_device(olivia: Any) -> TOTPDevice:
    return totp_enrol_with_secret(user=olivia, secret_base32=SECRET)


def test_an_officer_without_a_factor_is_sent_to_enrolment_before_any_page(
    mfa_required: None, olivia: Any
) -> None:
    client = password_sign_in("olivia")
    for path in ("/", "/requests/", "/audit/", "/catalog/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/mfa/setup/")


def test_a_scientist_without_a_factor_is_not_asked_for_one(mfa_required: None, alice: Any) -> None:
    assert password_sign_in("alice").get("/").status_code == 200


@pytest.mark.parametrize("persona", ["olivia", "sam", "audrey", "ada"])
def test_every_custody_and_oversight_role_needs_the_factor(
    mfa_required: None, persona: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(persona)
    response = password_sign_in(persona).get("/")
    assert response["Location"].startswith("/accounts/mfa/setup/")


def test_enrolment_shows_a_qr_code_then_recovery_codes_once(mfa_required: None, olivia: Any) -> None:
    client = password_sign_in("olivia")
    page = client.get("/accounts/mfa/setup/").content.decode()
    assert "<svg" in page and "otpauth" not in page.split("<svg")[0][-200:]
    secret = re.search(r"<code>([A-Z2-7]+)</code>", page).group(1)  # type: ignore[union-attr]
    device = TOTPDevice.objects.get(user=olivia, confirmed=False)
    assert base64.b32decode(secret) == device.bin_key

    wrong = client.post("/accounts/mfa/setup/", {"code": "000000"})
    assert "That code is not right" in wrong.content.decode()
    wait_out_throttle()
    done = client.post("/accounts/mfa/setup/", {"code": code_for(device)})

    codes = re.findall(r"<li><code>(\w+)</code></li>", done.content.decode())
    assert len(codes) == 10
    assert TOTPDevice.objects.get(user=olivia).confirmed
    assert client.get("/").status_code == 200  # verified by the enrolment itself
    assert client.get("/accounts/mfa/setup/")["Location"] == "/accounts/"  # shown once: no re-entry
    actions = list(AuditEvent.objects.filter(action="auth.mfa.enrol").values_list("outcome", flat=True))
    assert sorted(actions) == ["denied", "success"]


def test_after_the_password_the_code_is_asked_and_a_wrong_one_refused(
    mfa_required: None, olivia_device: TOTPDevice
) -> None:
    client = password_sign_in("olivia")
    assert client.get("/requests/")["Location"] == "/accounts/mfa/verify/?next=%2Frequests%2F"

    wrong = client.post("/accounts/mfa/verify/", {"code": "123456"})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    assert client.get("/")["Location"].startswith("/accounts/mfa/verify/")
    assert AuditEvent.objects.filter(action="auth.mfa.verify", outcome="denied").count() == 1

    wait_out_throttle()
    ok = client.post("/accounts/mfa/verify/", {"code": code_for(olivia_device), "next": "/requests/"})
    assert ok["Location"] == "/requests/"
    assert client.get("/requests/").status_code == 200


def test_the_verify_page_does_not_redirect_off_site(mfa_required: None, olivia_device: TOTPDevice) -> None:
    client = password_sign_in("olivia")
    response = client.post(
        "/accounts/mfa/verify/", {"code": code_for(olivia_device), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_guessing_codes_is_throttled(mfa_required: None, olivia_device: TOTPDevice) -> None:
    client = password_sign_in("olivia")
    client.post("/accounts/mfa/verify/", {"code": "000000"})
    # The right code straight after a wrong one is refused too: guessing is slowed down.
    client.post("/accounts/mfa/verify/", {"code": code_for(olivia_device)})
    assert client.get("/")["Location"].startswith("/accounts/mfa/verify/")


def test_a_recovery_code_signs_in_once_and_is_audited(mfa_required: None, olivia_device: TOTPDevice) -> None:
    from portal.auth_mfa import _recovery_codes

    code = _recovery_codes(olivia_device.user)[0]
    first = password_sign_in("olivia")
    assert first.post("/accounts/mfa/verify/", {"code": code}).status_code == 302
    assert first.get("/").status_code == 200

    second = password_sign_in("olivia")
    assert second.post("/accounts/mfa/verify/", {"code": code}).status_code == 200  # refused
    assert second.get("/").status_code == 302
    assert not StaticToken.objects.filter(token=code).exists()
    assert AuditEvent.objects.filter(action="auth.mfa.recovery_code").count() == 1


def test_the_api_token_needs_the_code_of_a_user_with_a_factor(olivia_device: TOTPDevice) -> None:
    client = APIClient()
    url = "/api/v1/auth/token/"
    missing = client.post(url, {"username": "olivia", "password": PASSWORD}, format="json")
    wrong = client.post(url, {"username": "olivia", "password": PASSWORD, "otp": "000000"}, format="json")
    wait_out_throttle()
    right = client.post(
        url, {"username": "olivia", "password": PASSWORD, "otp": code_for(olivia_device)}, format="json"
    )

    assert missing.status_code == 400 and missing.json()["error"]["code"] == "otp_required"
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "otp_invalid"
    assert right.status_code == 200 and right.json()["token"]
    assert "token" not in missing.json() and "token" not in wrong.json()


def test_a_privileged_user_without_a_factor_gets_no_api_token(mfa_required: None, sam: Any) -> None:
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "sam", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "mfa_enrolment_required"


def test_an_unverified_session_cannot_use_the_api_either(
    mfa_required: None, olivia_device: TOTPDevice
) -> None:
    client = password_sign_in("olivia")
    response = client.get("/api/v1/requests/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "mfa_required"


def test_create_portal_user_enrols_a_totp_secret(db: None) -> None:
    out = io.StringIO()
    call_command(
        "create_portal_user",
        "--username=petra",
        "--role=privacy_officer",
        f"--totp-secret={SECRET}",
        stdin=io.StringIO(PASSWORD + "\n"),
        stdout=out,
    )
    device = TOTPDevice.objects.get(user__username="petra")
    assert device.confirmed and base64.b32encode(device.bin_key).decode() == SECRET
    assert "TOTP enrolled" in out.getvalue()


def test_create_portal_user_refuses_a_bad_secret_and_creates_nobody(db: None) -> None:
    with pytest.raises(CommandError, match="base32"):
        call_command(
            "create_portal_user",
            "--username=petra",
            "--role=admin",
            "--totp-secret=not-base32!",
            stdin=io.StringIO(PASSWORD + "\n"),
        )
    assert not User.objects.filter(username="petra").exists()


def test_the_django_admin_needs_the_second_factor(olivia_device: TOTPDevice) -> None:
    user = olivia_device.user
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    # Signed in with a password only: the admin site (OTPAdminSite) treats the session as not
    # signed in and the middleware sends the user to the code page.
    response = client.get("/django-admin/")
    assert response.status_code == 302
    assert "/accounts/mfa/verify/" in response["Location"]

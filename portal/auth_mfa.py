"""The second factor: TOTP devices (django-otp) and one-time recovery codes. Every event audited.

Privacy officers, stewards, auditors and admins must have a confirmed TOTP device and must verify
it after their password before any page (portal.middleware.MfaRequiredMiddleware). Anyone with
a device must also give a current code to get an API token. Recovery codes are django-otp static
tokens: each works once, and they are shown only when created.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_denied, audit_record
from core.errors import ValidationFailed
from core.roles import NEEDS_SECOND_FACTOR, has_role

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


def mfa_required_for(user: Any) -> bool:
    """True when this user's role may reach data custody or oversight, so needs a second factor."""
    return bool(settings.SYNTHGATE_MFA_REQUIRED) and has_role(user, *NEEDS_SECOND_FACTOR)


def mfa_enrolled(user: Any) -> bool:
    return user_has_device(user, confirmed=True)


def totp_pending_device(*, user: Any) -> TOTPDevice:
    """The unconfirmed device an enrolment page shows (created on first view, reused on reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)


def totp_secret_base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode("ascii")


def totp_qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL as an inline SVG QR code (drawn here; nothing is fetched)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=12)
    return str(image.to_string(encoding="unicode"))


def _recovery_codes(user: Any) -> list[str]:
    """Replace the user's recovery codes with fresh ones; returns them (shown once)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.SYNTHGATE_RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def totp_confirm(*, user: Any, device_id: int, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending device with a code from the app; returns it and new recovery codes."""
    codes: list[str] = []
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update().filter(pk=device_id, user=user, confirmed=False).first()
        )
        # verify_token counts a failure against the device's throttle, so it must commit.
        confirmed = device is not None and device.verify_token(_digits(code))
        if device is not None and confirmed:
            TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _recovery_codes(user)
            audit_record(
                actor=user,
                action="auth.mfa.enrol",
                target_type="user",
                target_id=user.pk,
                details={"device": "totp", "recovery_codes": len(codes)},
            )
    if device is None or not confirmed:
        audit_denied(
            actor=user, action="auth.mfa.enrol", target_type="user", target_id=user.pk, reason="wrong_code"
        )
        raise ValidationFailed(
            "That code is not right: enter the 6-digit code your authenticator app shows now.",
            fields={"code": "invalid"},
        )
    return device, codes


def totp_enrol_with_secret(*, user: Any, secret_base32: str) -> TOTPDevice:
    """Enrol a confirmed TOTP device from a known secret (scripted setups, the demo)."""
    try:
        key = base64.b32decode(secret_base32.strip().upper().replace(" ", ""), casefold=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            "--totp-secret must be base32 (A-Z, 2-7).", fields={"totp_secret": "invalid"}
        ) from exc
    if len(key) < 10:
        raise ValidationFailed("--totp-secret must carry at least 80 bits (16 base32 characters).")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, key=key.hex(), confirmed=True)
        audit_record(
            actor=None,
            action="auth.mfa.enrol",
            target_type="user",
            target_id=user.pk,
            details={"device": "totp", "channel": "command"},
        )
    return device


def _digits(code: str) -> str:
    return "".join(str(code or "").split())


def mfa_verify(*, user: Any, code: str, channel: str) -> Any | None:
    """The confirmed device that accepts `code` (a TOTP code or an unused recovery code), or None.

    django-otp throttles each device after failures and refuses a TOTP code already used. A
    recovery code is consumed by the check. Failures and recovery-code use are audited.
    """
    code = _digits(code)
    matched = None
    if code:
        with transaction.atomic():
            for device in devices_for_user(user, confirmed=True, for_verify=True):
                if device.verify_token(code):
                    matched = device
                    break
    if matched is None:
        audit_denied(
            actor=user, action="auth.mfa.verify", target_type="user", target_id=user.pk, reason="wrong_code"
        )
        return None
    if isinstance(matched, StaticDevice):
        remaining = StaticToken.objects.filter(device=matched).count()
        audit_record(
            actor=user,
            action="auth.mfa.recovery_code",
            target_type="user",
            target_id=user.pk,
            details={"channel": channel, "remaining": remaining},
        )
    return matched

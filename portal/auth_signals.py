"""Authentication events into the audit log, and token revocation when credentials change.

Signals are used here because the events come from Django and django-axes (sign-in, sign-out,
failed sign-in, lockout) and because a password or active flag can change through any path
(a page, a management command, another admin's service): revocation must follow all of them.
Connected in portal.apps.PortalConfig.ready().
"""

from __future__ import annotations

import time
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save

from audit.services import audit_denied, audit_record
from portal.auth_tokens import tokens_revoke_all
from portal.models import User

SESSION_STARTED_KEY = "synthgate_auth_started"
_CHANGE_ATTR = "_synthgate_credential_change"


def channel_of(request: Any) -> str:
    path = str(getattr(request, "path", "") or "")
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/django-admin/"):
        return "admin"
    return "web"


def _username(credentials: dict[str, Any] | None) -> str:
    return str((credentials or {}).get("username") or "-")[:150]


def on_logged_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_STARTED_KEY] = int(time.time())
    audit_record(
        actor=user,
        action="auth.login",
        target_type="user",
        target_id=user.pk,
        details={"channel": channel_of(request)},
    )


def on_logged_out(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        # Tokens this browser session created (unless kept past sign-out) end with it.
        tokens_revoke_all(user=user, reason="sign_out", actor=user, session_key=session_key)
    audit_record(
        actor=user, action="auth.logout", target_type="user", target_id=user.pk, details={"channel": "web"}
    )


def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is not None and getattr(request, "axes_locked_out", False):
        return  # recorded as auth.lockout by on_locked_out
    audit_denied(
        actor=None,
        action="auth.login",
        target_type="user",
        target_id=_username(credentials),
        reason=f"bad_credentials ({channel_of(request)})",
    )


def on_locked_out(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    # The client address is personal data of staff, but it is what an investigator needs; it is
    # kept in axes' own table, not in the audit chain.
    audit_denied(
        actor=None,
        action="auth.lockout",
        target_type="user",
        target_id=str(username or "-")[:150],
        reason=f"too_many_failures ({channel_of(request)})",
    )


def remember_credential_change(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password:
        setattr(instance, _CHANGE_ATTR, "password_change")
    elif before["is_active"] and not instance.is_active:
        setattr(instance, _CHANGE_ATTR, "deactivation")


def revoke_on_credential_change(sender: Any, instance: User, created: bool = False, **kwargs: Any) -> None:
    reason = getattr(instance, _CHANGE_ATTR, None)
    if reason:
        delattr(instance, _CHANGE_ATTR)
        tokens_revoke_all(user=instance, reason=reason)


def connect() -> None:
    user_logged_in.connect(on_logged_in, dispatch_uid="synthgate-audit-login")
    user_logged_out.connect(on_logged_out, dispatch_uid="synthgate-audit-logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="synthgate-audit-login-failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="synthgate-audit-lockout")
    pre_save.connect(remember_credential_change, sender=User, dispatch_uid="synthgate-credential-change")
    post_save.connect(revoke_on_credential_change, sender=User, dispatch_uid="synthgate-credential-revoke")

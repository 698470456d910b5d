"""API tokens: issued once in clear, stored as SHA-256, expiring, revocable. Every change audited.

The clear token is `sg_<43 urlsafe characters>` (256 bits); a stolen database yields only hashes,
which cannot be sent back. Lookup is by hash, so no comparison of secrets happens in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from audit.services import audit_denied, audit_record
from core.errors import NotFound
from core.roles import PortalUser
from portal.models import ApiToken, User

TOKEN_PREFIX = "sg_"
# last_used is written at most this often per token, so reads do not become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def session_hash(session_key: str | None) -> str:
    """How a token remembers the browser session that created it (never the key itself)."""
    return _digest(session_key) if session_key else ""


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once, never stored


def token_mint(*, user: Any, label: str = "", session_key: str | None = None) -> IssuedToken:
    """Store a new token's hash and return the clear key once. Not audited: use token_issue,
    except where the caller is test plumbing rather than a user's action."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        key_hash=_digest(key),
        prefix=key[: len(TOKEN_PREFIX) + 6],
        label=label[:80],
        expires_at=timezone.now() + timedelta(hours=settings.SYNTHGATE_API_TOKEN_HOURS),
        session_hash=session_hash(session_key),
    )
    return IssuedToken(token=token, key=key)


def token_issue(*, user: User, channel: str, label: str = "", session_key: str | None = None) -> IssuedToken:
    """Issue a new token for `user` (already authenticated by the caller) and audit it."""
    with transaction.atomic():
        issued = token_mint(user=user, label=label, session_key=session_key)
        token = issued.token
        audit_record(
            actor=user,
            action="auth.token.create",
            target_type="api_token",
            target_id=token.pk,
            details={"channel": channel, "prefix": token.prefix, "expires_at": token.expires_at.isoformat()},
        )
    return issued


def tokens_of(*, user: Any) -> Any:
    """The owner's tokens, newest first (selector: a user only ever sees their own)."""
    return ApiToken.objects.filter(user_id=user.pk)


def token_revoke(*, actor: PortalUser, token_id: int) -> ApiToken:
    """The owner revokes one of their tokens. Another user's token is 404, as if absent."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user_id=actor.pk).first()
        if token is None:
            audit_denied(
                actor=actor,
                action="auth.token.revoke",
                target_type="api_token",
                target_id=token_id,
                reason="not_found",
            )
            raise NotFound("No such token.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action="auth.token.revoke",
                target_type="api_token",
                target_id=token.pk,
                details={"reason": "owner", "prefix": token.prefix},
            )
    return token


def tokens_revoke_all(
    *, user: Any, reason: str, actor: PortalUser | None = None, session_key: str | None = None
) -> int:
    """Revoke every live token of `user` (or only those bound to `session_key`); audited once."""
    live = ApiToken.objects.filter(user_id=user.pk, revoked_at__isnull=True)
    if session_key is not None:
        live = live.filter(session_hash=session_hash(session_key))
    with transaction.atomic():
        count = live.update(revoked_at=timezone.now())
        if count:
            audit_record(
                actor=actor,
                action="auth.token.revoke",
                target_type="user",
                target_id=user.pk,
                details={"reason": reason, "tokens": count},
            )
    return count


class HashedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <token>`, checked against the stored hash, expiry and revocation."""

    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        now = timezone.now()
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=_digest(key), revoked_at__isnull=True, expires_at__gt=now)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(
                "Invalid, expired or revoked token; get a new one from POST /api/v1/auth/token/."
            )
        if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword

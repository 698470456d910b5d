"""Portal roles. Kept outside the apps so every layer can name them without upward imports."""

from __future__ import annotations

from typing import Protocol

from django.db import models


class Role(models.TextChoices):
    DATA_SCIENTIST = "data_scientist", "Data scientist"
    PRIVACY_OFFICER = "privacy_officer", "Privacy officer"
    DATA_STEWARD = "data_steward", "Data steward"
    ADMIN = "admin", "Admin"
    AUDITOR = "auditor", "Auditor"


class PortalUser(Protocol):
    """What services need to know of a user; satisfied by `portal.User`."""

    pk: object
    username: str
    role: str
    team_id: int | None
    is_active: bool


def has_role(user: object, *roles: str) -> bool:
    """True for an active, signed-in user holding one of `roles`. Anonymous users hold none."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not getattr(user, "is_active", False):
        return False
    return getattr(user, "role", None) in roles


AUDIT_READERS = (Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)

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


# Capabilities: each named once, with why its members hold it. Code asks `has_role(user, *CAP)`;
# no module keeps its own tuple of roles.

# Register sources, review column classifications and declare public domains.
MANAGES_DATASETS = (Role.DATA_STEWARD, Role.ADMIN)
# Custody of the data: exact row counts, profile statistics (min/max, histograms, category counts)
# and the full budget ledger. Everyone else sees rounded figures and budget totals, so what is
# public stays consistent with an add/remove-one-record guarantee.
SEES_EXACT_STATISTICS = (Role.DATA_STEWARD, Role.ADMIN, Role.PRIVACY_OFFICER, Role.AUDITOR)
# Every registered dataset, drafts and retired ones included (scientists see only those ready to
# request): custody and oversight roles.
SEES_EVERY_DATASET = (Role.DATA_STEWARD, Role.PRIVACY_OFFICER, Role.ADMIN, Role.AUDITOR)
# Every request of every team: those who review them, administer the portal or audit it.
SEES_EVERY_REQUEST = (Role.PRIVACY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.DATA_STEWARD)
# Approve or decline requests (a steward signs off for the data, an officer for privacy).
REVIEWS_REQUESTS = (Role.PRIVACY_OFFICER, Role.DATA_STEWARD)
# Every release in the catalog, whatever its audience: privacy oversight and audit. Admins run the
# portal, not the data, so they see only what their team may see.
SEES_EVERY_RELEASE = (Role.PRIVACY_OFFICER, Role.AUDITOR)
# Exact gate values and attack figures of every report. Everyone else sees pass/fail and a coarse
# reason, never values, so the gate cannot be used as a membership oracle.
SEES_FULL_REPORTS = (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN)
# Read and verify the audit log and export evidence.
AUDIT_READERS = (Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)
# Propose a tiering-policy version: admins run the portal, privacy officers answer for the rules.
PROPOSES_POLICY = (Role.ADMIN, Role.PRIVACY_OFFICER)
# Approve or reject a proposed policy version (never one's own): the rules are a privacy decision.
APPROVES_POLICY = (Role.PRIVACY_OFFICER,)
# Create and change accounts, teams and roles (each change needs a second admin).
MANAGES_USERS = (Role.ADMIN,)
# Roles that reach data custody or oversight sign in with a second factor (SYNTHGATE_MFA_REQUIRED).
NEEDS_SECOND_FACTOR = (Role.PRIVACY_OFFICER, Role.DATA_STEWARD, Role.AUDITOR, Role.ADMIN)

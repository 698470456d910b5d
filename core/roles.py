"""Portal roles. Kept outside the apps so every layer can name them without upward imports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from django.db import models


class Role(models.TextChoices):
    DATA_SCIENTIST = "data_scientist", "Data scientist"
    PRIVACY_OFFICER = "privacy_officer", "Privacy officer"
    DATA_STEWARD = "data_steward", "Data steward"
    ADMIN = "admin", "Admin"
    AUDITOR = "auditor", "Auditor"


@runtime_checkable
class PortalUserShape(Protocol):
    """What services read of a user; `portal.User` has it (tests/test_actor_type.py checks it
    statically and at runtime). Read-only members, so a model field typed more narrowly (an
    `int` pk) still conforms."""

    @property
    def pk(self) -> object: ...
    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def team_id(self) -> int | None: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def is_authenticated(self) -> bool: ...
    def get_username(self) -> str: ...


if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    # The django-stubs plugin expands `_User` to the AUTH_USER_MODEL class (portal.User), so the
    # lower apps type `actor` as the real user model, whose foreign keys they already point at
    # through settings.AUTH_USER_MODEL, without importing portal (tests/test_layers.py). The alias
    # exists only in the stubs; if the plugin ever stopped expanding it, `actor.role` would no
    # longer type-check and the mypy stage of `make test` would fail.
    from django.contrib.auth.models import _User as PortalUser
else:
    # At runtime annotations are never evaluated (`from __future__ import annotations`); the name
    # only has to exist for imports, and the protocol documents what it stands for.
    PortalUser = PortalUserShape


def acting_user(user: PortalUser | AnonymousUser) -> PortalUser:
    """`request.user` of a view behind a login guard (login_required, IsAuthenticated), as the
    `actor` a service takes. An anonymous user here means a view lost its guard: refuse rather
    than act as nobody."""
    # Imported when called: core.roles is imported while the apps' models load (portal.models).
    from django.contrib.auth.models import AnonymousUser

    from core.errors import PermissionDenied

    if isinstance(user, AnonymousUser) or not user.is_authenticated:
        raise PermissionDenied("Sign in first.")
    return user


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
# Read and verify the audit log.
AUDIT_READERS = (Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)
# Download a request's evidence package for a review board: the two oversight roles (admins run
# the portal, not the data, and the package holds every release's report and card).
EXPORTS_EVIDENCE = (Role.PRIVACY_OFFICER, Role.AUDITOR)
# Propose a tiering-policy version: admins run the portal, privacy officers answer for the rules.
PROPOSES_POLICY = (Role.ADMIN, Role.PRIVACY_OFFICER)
# Approve or reject a proposed policy version (never one's own): the rules are a privacy decision.
APPROVES_POLICY = (Role.PRIVACY_OFFICER,)
# Create and change accounts, teams and roles (each change needs a second admin).
MANAGES_USERS = (Role.ADMIN,)
# Roles that reach data custody or oversight sign in with a second factor (SYNTHGATE_MFA_REQUIRED).
NEEDS_SECOND_FACTOR = (Role.PRIVACY_OFFICER, Role.DATA_STEWARD, Role.AUDITOR, Role.ADMIN)

"""Users and teams: creation and edits, routed through the two-person rule where they grant power."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_record
from core.errors import NotFound, ValidationFailed
from core.roles import PortalUser, Role
from portal.models import PendingAccountChange, Team, User
from portal.services.changes import (
    BASE_ROLE,
    OWN_ACCOUNT,
    Kind,
    _account_values,
    _apply_account,
    _propose,
    _refuse,
    _require_admin,
    grants_power,
)


def team_get_or_create(*, name: str, actor: PortalUser | None = None) -> Team:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed("Team name must be 1 to 80 characters.", fields={"name": "required"})
    existing = Team.objects.filter(name__iexact=name).first()
    if existing:
        return existing
    _require_admin(actor, "team.create", "team", name)
    with transaction.atomic():
        team = Team.objects.create(name=name)
        audit_record(
            actor=actor, action="team.create", target_type="team", target_id=team.pk, details={"name": name}
        )
    return team


def team_create(*, name: str, actor: PortalUser | None) -> Team:
    """Create a team that must not exist yet (names are unique regardless of case).

    A new team has no members and sees nothing, so one admin may create it; putting anyone in
    it is a team change, which needs a second admin."""
    _require_admin(actor, "team.create", "team", (name or "").strip())
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed("Team name must be 1 to 80 characters.", fields={"name": "required"})
    if Team.objects.filter(name__iexact=name).exists():
        raise ValidationFailed(
            f"Team {name!r} already exists; pick it from the list instead.", fields={"name": "taken"}
        )
    with transaction.atomic():
        try:
            team = Team.objects.create(name=name)
        except IntegrityError as exc:  # lost a race with another admin creating the same name
            raise ValidationFailed(f"Team {name!r} already exists.", fields={"name": "taken"}) from exc
        audit_record(
            actor=actor, action="team.create", target_type="team", target_id=team.pk, details={"name": name}
        )
    return team


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed(
            f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", fields={"role": "invalid"}
        )


def _check_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), fields={"password": "invalid"}) from exc


# --- creating and editing users ----------------------------------------------------------------


def user_create(
    *,
    username: str,
    password: str,
    role: str,
    team_name: str | None = None,
    email: str = "",
    actor: PortalUser | None = None,
) -> User:
    """Create a portal user. `actor=None` means an operator on the host (management command).

    An admin creating a user with a role other than data scientist, or in a team, gets an
    inactive data scientist with no team and a pending change for the rest: the account can
    sign in, with that role and team, once a second admin approves."""
    _require_admin(actor, "user.create", "user", username)
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("Username is required.", fields={"username": "required"})
    _check_role(role)
    _check_password(password, User(username=username))
    with transaction.atomic():
        team = team_get_or_create(name=team_name, actor=actor) if team_name else None
        two_person = actor is not None and (role != BASE_ROLE or team is not None)
        try:
            user = User.objects.create_user(
                username=username,
                password=password,
                role=BASE_ROLE if two_person else role,
                team=None if two_person else team,
                email=email,
                is_active=not two_person,
            )
        except IntegrityError as exc:
            raise ValidationFailed(
                f"User {username!r} already exists; choose another username.",
                fields={"username": "taken"},
            ) from exc
        audit_record(
            actor=actor,
            action="user.create",
            target_type="user",
            target_id=user.pk,
            details={"username": username, "role": user.role, "team": user.team.name if user.team else ""},
        )
        if two_person and actor is not None:  # two_person implies an admin actor; said for mypy
            _propose(
                actor=actor,
                target=user,
                kind=Kind.ACCOUNT,
                fields={"role": role, "team": team.pk if team else None, "is_active": True},
                before={"role": BASE_ROLE, "team": None, "is_active": False},
                new_account=True,
            )
    return user


@dataclass
class AccountUpdate:
    """What `user_update` did: `applied` at once ({field: [old, new]}), and `pending`, the
    proposal a second admin must approve (None when nothing needed one)."""

    user: User
    applied: dict[str, list[Any]] = field(default_factory=dict)
    pending: PendingAccountChange | None = None


def user_update(
    *,
    user_id: int,
    actor: PortalUser,
    role: str | None = None,
    team_id: int | None = None,
    is_active: bool | None = None,
    clear_team: bool = False,
) -> AccountUpdate:
    """Change a user's role, team or status.

    Changes that only take power away apply at once; the rest become one pending change for a
    second admin. An admin cannot change their own account at all (refused `own_account`)."""
    _require_admin(actor, "user.update", "user", user_id)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    wanted = _wanted_changes(user, role=role, team_id=team_id, is_active=is_active, clear_team=clear_team)
    if not wanted:
        return AccountUpdate(user=user)
    if actor is not None and user.pk == actor.pk:
        # Locking oneself out, or raising oneself, both need another admin.
        _refuse(actor, action="user.update", target_id=user.pk, reason=OWN_ACCOUNT)
    now = {k: v for k, v in wanted.items() if actor is None or not grants_power(k, v)}
    later = {k: v for k, v in wanted.items() if k not in now}
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        before = _account_values(user)
        pending = None
        if later:
            pending = _propose(
                actor=actor,
                target=user,
                kind=Kind.ACCOUNT,
                fields=later,
                before={k: before[k] for k in later},
            )
        applied = _apply_account(actor, user, now, details={}) if now else {}
    return AccountUpdate(user=user, applied=applied, pending=pending)


def _wanted_changes(
    user: User, *, role: str | None, team_id: int | None, is_active: bool | None, clear_team: bool
) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    if role is not None and role != user.role:
        _check_role(role)
        wanted["role"] = role
    # Only a real change counts: clearing the team of a user without one is a no-op.
    if (clear_team or team_id is not None) and team_id != user.team_id:
        if team_id and not Team.objects.filter(pk=team_id).exists():
            raise ValidationFailed("No such team.", fields={"team": "invalid"})
        wanted["team"] = team_id or None
    if is_active is not None and is_active != user.is_active:
        wanted["is_active"] = is_active
    return wanted

"""Account administration: users, roles and teams. Every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_denied, audit_record
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.roles import Role, has_role
from portal.models import Team, User


def _require_admin(actor: Any, action: str, target_type: str, target_id: object) -> None:
    # `actor=None` is a trusted caller (management command run by an operator on the host).
    if actor is not None and not has_role(actor, Role.ADMIN):
        audit_denied(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason="admin role required",
        )
        raise PermissionDenied("Only admins can manage users and teams.")


def team_get_or_create(*, name: str, actor: Any | None = None) -> Team:
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


def team_create(*, name: str, actor: Any | None) -> Team:
    """Create a team that must not exist yet (names are unique regardless of case)."""
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


def user_create(
    *,
    username: str,
    password: str,
    role: str,
    team_name: str | None = None,
    email: str = "",
    actor: Any | None = None,
) -> User:
    """Create a portal user. `actor=None` means an operator on the host (management command)."""
    _require_admin(actor, "user.create", "user", username)
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("Username is required.", fields={"username": "required"})
    _check_role(role)
    _check_password(password, User(username=username))
    with transaction.atomic():
        team = team_get_or_create(name=team_name, actor=actor) if team_name else None
        try:
            user = User.objects.create_user(
                username=username, password=password, role=role, team=team, email=email
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
            details={"username": username, "role": role, "team": team_name or ""},
        )
    return user


def user_update(
    *,
    user_id: int,
    actor: Any,
    role: str | None = None,
    team_id: int | None = None,
    is_active: bool | None = None,
    clear_team: bool = False,
) -> User:
    _require_admin(actor, "user.update", "user", user_id)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    # An admin locking themselves out would leave the portal without anyone to undo it.
    is_self = actor is not None and user.pk == actor.pk
    changes: dict[str, Any] = {}
    if role is not None and role != user.role:
        _check_role(role)
        if is_self and user.role == Role.ADMIN:
            raise ValidationFailed(
                "You cannot remove your own admin role; ask another admin.", fields={"role": "self"}
            )
        changes["role"] = [user.role, role]
        user.role = role
    # Only a real change is recorded: clearing the team of a user without one is a no-op.
    if (clear_team or team_id is not None) and team_id != user.team_id:
        team = Team.objects.filter(pk=team_id).first() if team_id else None
        if team_id and team is None:
            raise ValidationFailed("No such team.", fields={"team": "invalid"})
        changes["team"] = [user.team.name if user.team else "", team.name if team else ""]
        user.team = team
    if is_active is not None and is_active != user.is_active:
        if is_self and not is_active:
            raise ValidationFailed("You cannot deactivate your own account.", fields={"is_active": "self"})
        changes["is_active"] = [user.is_active, is_active]
        user.is_active = is_active
    if not changes:
        return user
    with transaction.atomic():
        user.save(update_fields=["role", "team", "is_active"])
        audit_record(
            actor=actor, action="user.update", target_type="user", target_id=user.pk, details=changes
        )
    return user

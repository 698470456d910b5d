"""Two people for power: account changes proposed by one admin, decided by another.

The rule (who may decide what) is `account_change_refusal`; proposals are recorded by `_propose`
and applied by `account_change_approve`. See the package docstring for what needs a second admin.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.roles import MANAGES_USERS, PortalUser, Role, has_role
from portal.models import PendingAccountChange, Team, User

Kind = PendingAccountChange.Kind
Outcome = PendingAccountChange.Outcome
# The one role that carries no oversight and no data beyond one's own requests.
BASE_ROLE = Role.DATA_SCIENTIST
MAX_REASON = 2000

# Reason codes of refusals (audited as the `reason` of a denied event).
NOT_ADMIN = "not_admin"
OWN_ACCOUNT = "own_account"
SAME_ADMIN = "same_admin"
NOT_PENDING = "not_pending"
NOT_PROPOSER = "not_proposer"

_REFUSAL_MESSAGES = {
    NOT_ADMIN: "Only admins can manage users and teams.",
    OWN_ACCOUNT: "You cannot change your own account's role, team, status, second factor or password; "
    "ask another admin.",
    SAME_ADMIN: "You proposed this change; a second admin must approve or reject it.",
    NOT_PENDING: "This change was already decided.",
    NOT_PROPOSER: "Only the admin who proposed this change can withdraw it; others approve or reject it.",
}


def _refuse(
    actor: PortalUser, *, action: str, target_id: object, reason: str, target_type: str = "user"
) -> None:
    """Audit the refusal (committed even though the action is not) and raise it."""
    audit_denied(actor=actor, action=action, target_type=target_type, target_id=target_id, reason=reason)
    error = Conflict if reason == NOT_PENDING else PermissionDenied
    raise error(_REFUSAL_MESSAGES[reason], code=reason)


def admin_refusal(*, actor: PortalUser) -> str | None:
    """NOT_ADMIN unless `actor` may manage users: the one admin guard of pages and services."""
    return None if has_role(actor, *MANAGES_USERS) else NOT_ADMIN


def _require_admin(actor: PortalUser | None, action: str, target_type: str, target_id: object) -> None:
    # `actor=None` is a trusted caller (management command run by an operator on the host).
    if actor is not None and admin_refusal(actor=actor):
        _refuse(actor, action=action, target_type=target_type, target_id=target_id, reason=NOT_ADMIN)


# --- what needs a second admin -----------------------------------------------------------------


def grants_power(key: str, value: Any) -> bool:
    """True when setting account field `key` to `value` could give access or oversight.

    Only two changes take power away and nothing else: demotion to data scientist and
    deactivation. Every team change counts (a team decides whose releases one sees)."""
    if key == "role":
        return value != BASE_ROLE
    if key == "is_active":
        return bool(value)
    return True


def account_change_refusal(*, actor: PortalUser, change: PendingAccountChange) -> str | None:
    """Why `actor` may not approve or reject `change` (a reason code), or None if they may.

    The one statement of the rule: services raise from it, pages show buttons from it."""
    if refusal := admin_refusal(actor=actor):
        return refusal
    if change.target_id == actor.pk:
        return OWN_ACCOUNT
    if change.proposed_by_id == actor.pk:
        return SAME_ADMIN
    if change.outcome != Outcome.PENDING:
        return NOT_PENDING
    return None


def account_change_withdraw_refusal(*, actor: PortalUser, change: PendingAccountChange) -> str | None:
    if refusal := admin_refusal(actor=actor):
        return refusal
    if change.proposed_by_id != actor.pk:
        return NOT_PROPOSER
    if change.outcome != Outcome.PENDING:
        return NOT_PENDING
    return None


def account_changes_pending() -> QuerySet[PendingAccountChange]:
    """The queue of changes waiting for a second admin, oldest first (admins only read it)."""
    return (
        PendingAccountChange.objects.filter(outcome=Outcome.PENDING)
        .select_related("target", "target__team")
        .order_by("created_at", "pk")
    )


def account_changes_decided(limit: int = 50) -> QuerySet[PendingAccountChange]:
    return (
        PendingAccountChange.objects.exclude(outcome=Outcome.PENDING)
        .select_related("target")
        .order_by("-decided_at", "-pk")[:limit]
    )


def _team_name(team_id: int | None) -> str:
    if team_id is None:
        return ""
    team = Team.objects.filter(pk=team_id).first()
    return team.name if team else f"#{team_id}"


def _audit_fields(values: dict[str, Any], before: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]}, with team names rather than ids, for the audit log."""
    out: dict[str, list[Any]] = {}
    for key, new in values.items():
        old = before.get(key)
        out[key] = [_team_name(old), _team_name(new)] if key == "team" else [old, new]
    return out


def _propose(
    *,
    actor: PortalUser,
    target: User,
    kind: str,
    fields: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    new_account: bool = False,
) -> PendingAccountChange:
    """Record a proposal (inside the caller's transaction) and audit it."""
    if PendingAccountChange.objects.filter(target=target, kind=kind, outcome=Outcome.PENDING).exists():
        raise ValidationFailed(
            f"A change of this kind to {target.username} is already waiting for a second admin; "
            "approve, reject or withdraw it on the pending changes page first.",
            code="already_pending",
        )
    try:
        with transaction.atomic():
            change = PendingAccountChange.objects.create(
                target=target,
                kind=kind,
                fields=fields or {},
                before=before or {},
                new_account=new_account,
                proposed_by=actor,
                proposed_by_name=actor.get_username(),
            )
    except IntegrityError as exc:  # another admin proposed the same kind at the same moment
        raise ValidationFailed(
            "Another change to this account was just proposed.", code="already_pending"
        ) from exc
    audit_record(
        actor=actor,
        action="account_change.propose",
        target_type="user",
        target_id=target.pk,
        details={
            "change": change.pk,
            "kind": kind,
            "fields": _audit_fields(fields or {}, before or {}),
            "new_account": new_account,
        },
    )
    return change


def _account_values(user: User) -> dict[str, Any]:
    return {"role": user.role, "team": user.team_id, "is_active": user.is_active}


def _apply_account(
    actor: PortalUser, user: User, values: dict[str, Any], *, details: dict[str, Any]
) -> dict[str, list[Any]]:
    """Set `values` on the (locked) user, save and audit `user.update`; returns {field: [old, new]}."""
    changes = _audit_fields(values, _account_values(user))
    for key, value in values.items():
        setattr(user, "team_id" if key == "team" else key, value)
    user.save(update_fields=["role", "team", "is_active"])
    audit_record(
        actor=actor,
        action="user.update",
        target_type="user",
        target_id=user.pk,
        details={**changes, **details},
    )
    return changes


# --- second factor and password: proposed, then applied by a second admin ---------------------


def account_reset_propose(*, actor: PortalUser, user_id: int, kind: str) -> PendingAccountChange:
    """Propose resetting a user's second factor (`mfa_reset`) or forcing a new password
    (`password_reset`). Either lets whoever holds the account's other credential in, so a second
    admin approves it."""
    action = f"account_change.propose_{kind}"
    _require_admin(actor, action, "user", user_id)
    if kind not in (Kind.MFA_RESET, Kind.PASSWORD_RESET):
        raise ValidationFailed(f"Unknown reset {kind!r}.", fields={"kind": "invalid"})
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    if user.pk == actor.pk:
        _refuse(actor, action=action, target_id=user.pk, reason=OWN_ACCOUNT)
    with transaction.atomic():
        return _propose(actor=actor, target=user, kind=kind)


def _apply_mfa_reset(actor: PortalUser, user: User, details: dict[str, Any]) -> None:
    # Imported here: django-otp's device models exist only once its apps are installed, and
    # devices_for_user covers every device type (TOTP, recovery codes) that is.
    from django_otp import devices_for_user

    removed = 0
    for device in list(devices_for_user(user, confirmed=None)):
        device.delete()
        removed += 1
    audit_record(
        actor=actor,
        action="user.mfa_reset",
        target_type="user",
        target_id=user.pk,
        details={"devices": removed, **details},
    )


def _apply_password_reset(actor: PortalUser, user: User, details: dict[str, Any]) -> None:
    # An unusable password ends every session (their auth hash changes), and the password change
    # revokes every API token (portal.auth_signals); the user's one way back in is the reset by
    # e-mail (portal.forms.PortalPasswordResetForm lets such accounts through).
    user.set_unusable_password()
    user.save(update_fields=["password"])
    audit_record(
        actor=actor, action="user.password_reset", target_type="user", target_id=user.pk, details=details
    )


# --- deciding ----------------------------------------------------------------------------------


def _change_or_404(change_id: int) -> PendingAccountChange:
    change = PendingAccountChange.objects.select_related("target", "proposed_by").filter(pk=change_id).first()
    if change is None:
        raise NotFound("No such pending change.")
    return change


def _locked_pending(change_id: int) -> PendingAccountChange:
    change = PendingAccountChange.objects.select_for_update().get(pk=change_id)
    if change.outcome != Outcome.PENDING:  # decided by someone else in the meantime
        raise Conflict(_REFUSAL_MESSAGES[NOT_PENDING], code=NOT_PENDING)
    return change


def _decide(change: PendingAccountChange, actor: PortalUser, outcome: str, reason: str = "") -> None:
    change.outcome = outcome
    change.decided_by = actor
    change.decided_by_name = actor.get_username()
    change.decided_at = timezone.now()
    change.reason = reason
    change.save(update_fields=["outcome", "decided_by", "decided_by_name", "decided_at", "reason"])


def account_change_approve(*, actor: PortalUser, change_id: int) -> PendingAccountChange:
    """A second admin approves a pending change, which is applied in the same transaction."""
    change = _change_or_404(change_id)
    refusal = account_change_refusal(actor=actor, change=change)
    if refusal:
        _refuse(actor, action="account_change.approve", target_id=change.target_id, reason=refusal)
    with transaction.atomic():
        change = _locked_pending(change_id)
        target = User.objects.select_for_update().get(pk=change.target_id)
        proposer = change.proposed_by  # None once the proposer's account is gone (SET_NULL)
        if not has_role(proposer, *MANAGES_USERS):
            raise Conflict(
                f"{change.proposed_by_name} is no longer an active admin, so this is not a second "
                "admin's agreement any more; reject it and propose it again yourself.",
                code="proposer_not_admin",
            )
        _decide(change, actor, Outcome.APPROVED)
        details = {
            "change": change.pk,
            "proposed_by": change.proposed_by_name,
            "approved_by": actor.get_username(),
        }
        _apply(actor, target, change, details)
        audit_record(
            actor=actor,
            action="account_change.approve",
            target_type="user",
            target_id=target.pk,
            details={"change": change.pk, "kind": change.kind, "proposed_by": change.proposed_by_name},
        )
    return change


def _apply(actor: PortalUser, target: User, change: PendingAccountChange, details: dict[str, Any]) -> None:
    if change.kind == Kind.MFA_RESET:
        _apply_mfa_reset(actor, target, details)
    elif change.kind == Kind.PASSWORD_RESET:
        _apply_password_reset(actor, target, details)
    else:
        current = _account_values(target)
        if any(current.get(k) != v for k, v in change.before.items()):
            # What the approver read is no longer what would change; they must not sign a blank cheque.
            raise Conflict(
                f"{target.username}'s account changed since this was proposed; reject it and propose again.",
                code="stale_change",
            )
        _apply_account(actor, target, change.fields, details=details)


def account_change_reject(*, actor: PortalUser, change_id: int, reason: str) -> PendingAccountChange:
    """A second admin rejects a pending change, saying why (shown to every admin)."""
    change = _change_or_404(change_id)
    refusal = account_change_refusal(actor=actor, change=change)
    if refusal:
        _refuse(actor, action="account_change.reject", target_id=change.target_id, reason=refusal)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why you reject this change.", fields={"reason": "required"})
    with transaction.atomic():
        change = _locked_pending(change_id)
        _decide(change, actor, Outcome.REJECTED, reason[:MAX_REASON])
        audit_record(
            actor=actor,
            action="account_change.reject",
            target_type="user",
            target_id=change.target_id,
            details={"change": change.pk, "kind": change.kind, "proposed_by": change.proposed_by_name},
        )
    return change


def account_change_withdraw(*, actor: PortalUser, change_id: int) -> PendingAccountChange:
    """The proposer takes back their own pending change (nothing is applied)."""
    change = _change_or_404(change_id)
    refusal = account_change_withdraw_refusal(actor=actor, change=change)
    if refusal:
        _refuse(actor, action="account_change.withdraw", target_id=change.target_id, reason=refusal)
    with transaction.atomic():
        change = _locked_pending(change_id)
        _decide(change, actor, Outcome.WITHDRAWN)
        audit_record(
            actor=actor,
            action="account_change.withdraw",
            target_type="user",
            target_id=change.target_id,
            details={"change": change.pk, "kind": change.kind},
        )
    return change

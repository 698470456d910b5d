"""Separation of duties and quorum, as pure functions over snapshots (no database).

Services call these for every decision, so the API, the browser and Django admin share them.
The floors here hold whatever a published policy says: a policy can ask for more, never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from approvals.choices import Audience, DecisionKind, TierLevel
from core.roles import Role

# Whatever the policy says: at least one approval, from at least one privacy officer; high tier
# needs two distinct approvers.
_MIN_APPROVALS = {TierLevel.HIGH: 2}


@dataclass(frozen=True)
class Approver:
    """Who approved, as they were when they approved."""

    user_id: Any
    role: str
    team_id: int | None


@dataclass(frozen=True)
class Quorum:
    satisfied: bool
    approvals: int
    needed: int
    missing: list[str] = field(default_factory=list)


def reviewer_roles(controls: Mapping[str, Any]) -> tuple[str, ...]:
    """Roles that may decide a request under these controls; privacy officers always may."""
    roles = [str(r) for r in controls.get("approver_roles") or []]
    return tuple(dict.fromkeys([Role.PRIVACY_OFFICER, *roles]))


def required_approvals(level: str, controls: Mapping[str, Any]) -> int:
    return max(1, int(controls.get("required_approvals") or 0), _MIN_APPROVALS.get(level, 1))


def decide_refusal(
    *,
    actor_id: Any,
    actor_role: str,
    actor_active: bool,
    requester_id: Any,
    level: str,
    controls: Mapping[str, Any],
) -> str:
    """Why this person may not decide this request ("" when they may)."""
    if actor_id == requester_id:
        return "You cannot decide your own request; another reviewer must."
    if not actor_active:
        return "Inactive accounts cannot decide requests."
    roles = reviewer_roles(controls)
    if actor_role not in roles:
        names = " or ".join(Role(r).label.lower() + "s" for r in roles)
        what = f"{level}-tier requests" if level else "this request"
        return f"Only {names} can decide {what}."
    return ""


def quorum(
    *,
    approvers: Iterable[Approver],
    requester_id: Any,
    requester_team_id: int | None,
    audience: str,
    level: str,
    controls: Mapping[str, Any],
) -> Quorum:
    """Is the round's set of approvals enough to approve?

    Counts distinct approvers in a reviewer role other than the requester; needs the policy's
    number (floored as above), at least one privacy officer, and, for an external audience, at
    least one approver outside the requester's team (a teammate is never the only sign-off).
    """
    roles = reviewer_roles(controls)
    distinct: dict[Any, Approver] = {}
    for a in approvers:
        if a.user_id != requester_id and a.role in roles:
            distinct.setdefault(a.user_id, a)
    valid = list(distinct.values())
    needed = required_approvals(level, controls)
    officers_needed = max(1, int(controls.get("min_privacy_officer_approvals") or 0))
    officers = sum(1 for a in valid if a.role == Role.PRIVACY_OFFICER)
    missing = []
    if len(valid) < needed:
        more = needed - len(valid)
        missing.append(f"{more} more approval{'s' if more > 1 else ''}")
    if officers < officers_needed:
        missing.append("an approval from a privacy officer")
    if audience == Audience.EXTERNAL and requester_team_id is not None:
        if not any(a.team_id != requester_team_id for a in valid):
            missing.append("an approval from a reviewer outside the requester's team (external audience)")
    return Quorum(satisfied=not missing, approvals=len(valid), needed=needed, missing=missing)


def round_approvers(decisions: Iterable[Any], review_round: int) -> list[Approver]:
    """The approvals of one review round, from a request's decision rows: pass them already
    fetched (a list's `prefetch_related("decisions")`) and no query is made per request."""
    return [
        Approver(d.reviewer_id, d.reviewer_role, d.reviewer_team_id)
        for d in decisions
        if d.review_round == review_round and d.decision == DecisionKind.APPROVE
    ]


def request_quorum(request: Any, decisions: Iterable[Any]) -> Quorum:
    """Where the request's current review round stands, from its decision rows."""
    return quorum(
        approvers=round_approvers(decisions, request.review_round),
        requester_id=request.requester_id,
        requester_team_id=request.team_id,
        audience=request.audience,
        level=request.tier_level,
        controls=request.tier_controls or {},
    )

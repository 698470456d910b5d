"""Policy versions: the active rule set, first load from the repository file, and publishing
by two people: an admin or privacy officer proposes, another privacy officer approves.

The active version is the highest published number. The repository file (policies/tiering.yaml) becomes
version 1 the first time anything needs a policy, inside the caller's transaction, so a fresh
database (including the test database) never tiers a request without a recorded version.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.models import PolicyVersion
from approvals.policies import Policy, PolicyError, Problem, parse_policy
from approvals.selectors import policy_versions_for
from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.roles import APPROVES_POLICY, PROPOSES_POLICY, PortalUser, has_role


class PolicyInvalid(ValidationFailed):
    """A draft rule set failed validation; `problems` carry line numbers and field paths."""

    def __init__(self, problems: list[Problem]) -> None:
        count = len(problems)
        super().__init__(
            f"The rule set has {count} problem{'s' if count != 1 else ''}; fix "
            f"{'them' if count != 1 else 'it'} and review again: " + "; ".join(map(str, problems[:5])),
            code="invalid_policy",
            fields={"source": str(problems[0]) if problems else "invalid"},
        )
        self.problems = problems


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add" | "remove" | "context" | "hunk" | "file"
    text: str


def policy_file() -> Path:
    return Path(getattr(settings, "SYNTHGATE_POLICY_FILE", settings.BASE_DIR / "policies" / "tiering.yaml"))


def sha256_of(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@lru_cache(maxsize=32)
def _parse_cached(sha: str, source: str) -> Policy:
    return parse_policy(source)


def policy_parse(source: str) -> Policy:
    """Parse (cached by content hash); raises PolicyInvalid."""
    try:
        return _parse_cached(sha256_of(source), source)
    except PolicyError as exc:
        raise PolicyInvalid(exc.problems) from None


def policy_active() -> PolicyVersion | None:
    """The highest published version (proposals have no number and tier nothing)."""
    return PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED).order_by("-number").first()


def policy_versions_published(*, user: Any) -> QuerySet[PolicyVersion]:
    """The published versions `user` may read (admins, privacy officers, auditors), newest first."""
    return policy_versions_for(user=user).filter(status=PolicyVersion.Status.PUBLISHED)


def policy_for_preview() -> tuple[int, Policy]:
    """The rules a submission made now would use, without writing anything (live preview)."""
    active = policy_active()
    if active is not None:
        # A published version always has a number (a CheckConstraint on PolicyVersion).
        assert active.number is not None
        return active.number, policy_parse(active.source)
    return 1, policy_parse(policy_file().read_text(encoding="utf-8"))


def policy_ensure_active() -> tuple[PolicyVersion, Policy]:
    """The active version and its rules; loads the repository file as version 1 if none exists."""
    active = policy_active()
    if active is None:
        active = _load_file_as_first_version()
    return active, policy_parse(active.source)


def _load_file_as_first_version() -> PolicyVersion:
    source = policy_file().read_text(encoding="utf-8")
    policy_parse(source)  # a broken shipped file must fail loudly, not tier with nothing
    try:
        with transaction.atomic():
            version = PolicyVersion.objects.create(
                number=1,
                source=source,
                sha256=sha256_of(source),
                notes=f"Loaded from {policy_file().name} in the repository.",
                published_by_name="system",
            )
            audit_record(
                actor=None,
                action="policy.publish",
                target_type="policy",
                target_id=version.number,
                details={"number": 1, "sha256": version.sha256, "origin": "repository file"},
            )
    except IntegrityError:
        # Another process loaded it first; theirs is the same file.
        return PolicyVersion.objects.get(number=1)
    return version


# Reason codes of refusals (audited as the `reason` of a denied event).
NOT_POLICY_AUTHOR = "not_policy_author"
NOT_OFFICER = "not_officer"
OWN_PROPOSAL = "own_proposal"
NOT_PROPOSED = "not_proposed"
NOT_REVIEWED = "not_reviewed"


def policy_decide_refusal(*, actor: PortalUser, proposal: PolicyVersion) -> str | None:
    """Why `actor` may not approve or reject `proposal` (a reason code), or None if they may.

    The one statement of the rule: services raise from it, pages show buttons from it."""
    # Only a privacy officer approves, and never their own proposal.
    if not has_role(actor, *APPROVES_POLICY):
        return NOT_OFFICER
    if proposal.published_by_id == actor.pk:
        return OWN_PROPOSAL
    if proposal.status != PolicyVersion.Status.PROPOSED:
        return NOT_PROPOSED
    return None


def may_propose_policy(user: Any) -> bool:
    return has_role(user, *PROPOSES_POLICY)


def policy_proposals_open() -> QuerySet[PolicyVersion]:
    """Proposals waiting for a privacy officer, oldest first."""
    return PolicyVersion.objects.filter(status=PolicyVersion.Status.PROPOSED).order_by("published_at", "pk")


def policy_propose(
    *, actor: PortalUser, source: str, notes: str = "", base_number: int | None = None
) -> PolicyVersion:
    """Propose a new version (admins and privacy officers). It tiers nothing until a privacy
    officer who is not its author approves it. `base_number` is the version the author diffed
    against: if another version was published since, this refuses (409) rather than hide it."""
    if not may_propose_policy(actor):
        audit_denied(
            actor=actor,
            action="policy.propose",
            target_type="policy",
            target_id="-",
            reason=NOT_POLICY_AUTHOR,
        )
        raise PermissionDenied(
            "Only administrators and privacy officers can propose policy versions.", code=NOT_POLICY_AUTHOR
        )
    source = normalize_source(source)
    policy_parse(source)
    with transaction.atomic():
        active, _ = policy_ensure_active()
        if base_number is not None and base_number != active.number:
            raise Conflict(
                f"Version {active.number} was published while you were editing; review the diff against it "
                "and propose again.",
                code="policy_changed",
            )
        _refuse_duplicate(source, active)
        proposal = PolicyVersion.objects.create(
            number=None,
            status=PolicyVersion.Status.PROPOSED,
            base_number=active.number,
            source=source,
            sha256=sha256_of(source),
            notes=notes.strip()[:2000],
            published_by=actor,
            published_by_name=actor.get_username(),
        )
        audit_record(
            actor=actor,
            action="policy.propose",
            target_type="policy_proposal",
            target_id=proposal.pk,
            details={"sha256": proposal.sha256, "base": active.number},
        )
    return proposal


# Kept under its old name for callers of the package: publishing starts as a proposal.
policy_publish = policy_propose


def _refuse_duplicate(source: str, active: PolicyVersion) -> None:
    sha = sha256_of(source)
    if sha == active.sha256:
        raise ValidationFailed(
            f"This text is identical to the active version {active.number}; nothing to propose.",
            fields={"source": "unchanged"},
        )
    twin = policy_proposals_open().filter(sha256=sha).first()
    if twin is not None:
        raise ValidationFailed(
            f"This text is already proposed (proposal #{twin.pk} by {twin.published_by_name}); "
            "it is waiting for a privacy officer.",
            fields={"source": "already_proposed"},
        )


def _proposal_or_404(proposal_id: int) -> PolicyVersion:
    proposal = (
        PolicyVersion.objects.filter(pk=proposal_id).exclude(status=PolicyVersion.Status.PUBLISHED).first()
    )
    if proposal is None:
        raise NotFound("No such policy proposal.")
    return proposal


def _refuse_unless_may_decide(actor: PortalUser, proposal: PolicyVersion, action: str) -> None:
    refusal = policy_decide_refusal(actor=actor, proposal=proposal)
    if refusal is None:
        return
    audit_denied(
        actor=actor, action=action, target_type="policy_proposal", target_id=proposal.pk, reason=refusal
    )
    if refusal == NOT_PROPOSED:
        raise Conflict(f"This proposal is already {proposal.get_status_display().lower()}.", code=refusal)
    if refusal == OWN_PROPOSAL:
        raise PermissionDenied(
            "You wrote this proposal; another privacy officer must decide it.", code=refusal
        )
    raise PermissionDenied("Only a privacy officer can approve or reject a policy proposal.", code=refusal)


def _locked_proposal(proposal_id: int) -> PolicyVersion:
    proposal = PolicyVersion.objects.select_for_update().get(pk=proposal_id)
    if proposal.status != PolicyVersion.Status.PROPOSED:  # decided by someone else meanwhile
        raise Conflict(
            f"This proposal is already {proposal.get_status_display().lower()}.", code=NOT_PROPOSED
        )
    return proposal


def policy_approve(*, actor: PortalUser, proposal_id: int, reviewed_sha: str) -> PolicyVersion:
    """A privacy officer who did not write the proposal publishes it as the next version.

    `reviewed_sha` is the SHA-256 of the text on the page that showed the officer the diff: an
    approval that did not come from reading it is refused. If another version was published
    since the proposal, the diff the officer read is not the change they would make: 409."""
    proposal = _proposal_or_404(proposal_id)
    _refuse_unless_may_decide(actor, proposal, "policy.approve")
    if reviewed_sha != proposal.sha256:
        audit_denied(
            actor=actor,
            action="policy.approve",
            target_type="policy_proposal",
            target_id=proposal.pk,
            reason=NOT_REVIEWED,
        )
        raise ValidationFailed("Approve from the proposal's page, after reading its diff.", code=NOT_REVIEWED)
    with transaction.atomic():
        proposal = _locked_proposal(proposal_id)
        active, _ = policy_ensure_active()
        if proposal.base_number != active.number:
            raise Conflict(
                f"Version {active.number} was published after this was proposed against "
                f"v{proposal.base_number}; the diff no longer shows what would change. Reject it; the "
                "author proposes again.",
                code="policy_changed",
            )
        version = _publish(actor, proposal, active)
        _supersede_others(actor, version)
    return version


def _publish(actor: PortalUser, proposal: PolicyVersion, previous: PolicyVersion) -> PolicyVersion:
    # `previous` is the active, published version, which always has a number (a CheckConstraint).
    assert previous.number is not None
    proposal.number = previous.number + 1
    proposal.status = PolicyVersion.Status.PUBLISHED
    proposal.approved_by = actor
    proposal.approved_by_name = actor.get_username()
    proposal.decided_at = timezone.now()
    try:
        with transaction.atomic():
            proposal.save(update_fields=["number", "status", "approved_by", "approved_by_name", "decided_at"])
    except IntegrityError:
        raise Conflict(
            "Another version was published at the same moment; review again.", code="policy_changed"
        ) from None
    audit_record(
        actor=actor,
        action="policy.publish",
        target_type="policy",
        target_id=proposal.number,
        details={
            "number": proposal.number,
            "sha256": proposal.sha256,
            "previous": previous.number,
            "proposal": proposal.pk,
            "proposed_by": proposal.published_by_name,
            "approved_by": proposal.approved_by_name,
        },
    )
    return proposal


def _supersede_others(actor: PortalUser, version: PolicyVersion) -> None:
    """Open proposals written against the previous version no longer show a true diff."""
    for stale in policy_proposals_open().exclude(pk=version.pk).select_for_update():
        stale.status = PolicyVersion.Status.SUPERSEDED
        stale.decided_at = timezone.now()
        stale.save(update_fields=["status", "decided_at"])
        audit_record(
            actor=actor,
            action="policy.supersede",
            target_type="policy_proposal",
            target_id=stale.pk,
            details={"by_version": version.number},
        )


def policy_reject(*, actor: PortalUser, proposal_id: int, reason: str) -> PolicyVersion:
    """A privacy officer who did not write the proposal rejects it, saying why."""
    proposal = _proposal_or_404(proposal_id)
    _refuse_unless_may_decide(actor, proposal, "policy.reject")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why you reject this proposal.", fields={"reason": "required"})
    with transaction.atomic():
        proposal = _locked_proposal(proposal_id)
        proposal.status = PolicyVersion.Status.REJECTED
        proposal.approved_by = actor  # the officer who decided
        proposal.approved_by_name = actor.get_username()
        proposal.decided_at = timezone.now()
        proposal.decision_reason = reason[:2000]
        proposal.save(
            update_fields=["status", "approved_by", "approved_by_name", "decided_at", "decision_reason"]
        )
        audit_record(
            actor=actor,
            action="policy.reject",
            target_type="policy_proposal",
            target_id=proposal.pk,
            details={"proposed_by": proposal.published_by_name, "sha256": proposal.sha256},
        )
    return proposal


def normalize_source(source: str) -> str:
    # Browsers send CRLF from a textarea; store what the repository file would hold.
    text = str(source or "").replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def policy_diff(old: str, new: str, *, old_label: str, new_label: str) -> list[DiffLine]:
    """A unified diff, line by line, classified for display."""
    lines = difflib.unified_diff(
        old.splitlines(),
        normalize_source(new).splitlines(),
        fromfile=old_label,
        tofile=new_label,
        lineterm="",
    )
    return [DiffLine(_diff_kind(line), line) for line in lines]


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "remove"
    return "context"

"""Policy versions: the active rule set, first load from the repository file, publishing.

The active version is the highest number. The repository file (policies/tiering.yaml) becomes
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

from approvals.models import PolicyVersion
from approvals.policies import Policy, PolicyError, Problem, parse_policy
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.roles import Role, has_role


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
    return PolicyVersion.objects.order_by("-number").first()


def policy_for_preview() -> tuple[int, Policy]:
    """The rules a submission made now would use, without writing anything (live preview)."""
    active = policy_active()
    if active is not None:
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


def policy_publish(
    *, actor: Any, source: str, notes: str = "", base_number: int | None = None
) -> PolicyVersion:
    """Publish a new version (admins only). `base_number` is the version the author diffed
    against: if another version was published since, this refuses (409) rather than overwrite."""
    if not has_role(actor, Role.ADMIN):
        audit_denied(
            actor=actor,
            action="policy.publish",
            target_type="policy",
            target_id="-",
            reason="admin role required",
        )
        raise PermissionDenied("Only administrators can publish policy versions.")
    source = normalize_source(source)
    policy_parse(source)
    with transaction.atomic():
        active, _ = policy_ensure_active()
        if base_number is not None and base_number != active.number:
            raise Conflict(
                f"Version {active.number} was published while you were editing; review the diff against it "
                "and publish again.",
                code="policy_changed",
            )
        if sha256_of(source) == active.sha256:
            raise ValidationFailed(
                f"This text is identical to the active version {active.number}; nothing to publish.",
                fields={"source": "unchanged"},
            )
        return _create_version(actor, source, notes, active)


def _create_version(actor: Any, source: str, notes: str, previous: PolicyVersion) -> PolicyVersion:
    try:
        with transaction.atomic():
            version = PolicyVersion.objects.create(
                number=previous.number + 1,
                source=source,
                sha256=sha256_of(source),
                notes=notes.strip()[:2000],
                published_by=actor,
                published_by_name=actor.get_username(),
            )
    except IntegrityError:
        raise Conflict(
            "Another version was published at the same moment; review again.", code="policy_changed"
        ) from None
    audit_record(
        actor=actor,
        action="policy.publish",
        target_type="policy",
        target_id=version.number,
        details={"number": version.number, "sha256": version.sha256, "previous": previous.number},
    )
    return version


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

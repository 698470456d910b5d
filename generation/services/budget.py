"""Exact epsilon arithmetic. Budgets are integer micro-epsilon; never floats."""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from django.db import transaction
from django.db.models import F

from audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from core.roles import PortalUser
from generation.models import (
    ATTO,
    MICRO,
    BudgetLedgerEntry,
    EntryPurpose,
    LedgerKind,
    SourceDataset,
    SynthesisJob,
)

MAX_EPSILON = Decimal("100")
MAX_DELTA = Decimal("0.001")  # above this, (epsilon, delta)-DP protects nobody in a hospital table
# Composition of the ledger, stated on every entry and release: epsilons add up, and so do deltas.
COMPOSITION = "basic"


def epsilon_to_micro(value: Any, *, field: str = "epsilon", is_cap: bool = False) -> int:
    """Parse a user-supplied epsilon exactly into whole micro-epsilon.

    Amounts to spend round *up* (never under-charge; any positive amount costs at least one
    micro-epsilon). Caps round *down* (never allow more than the steward declared) and must be
    at least one micro-epsilon. The arithmetic runs in a decimal context wide enough for the
    input, so no digit is lost before rounding.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "required"})
    text = str(value).strip()
    try:
        if len(text) > 64:
            raise ValueError(text[:8])
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "invalid"}) from None
    if not number.is_finite() or number <= 0:
        raise ValidationFailed(f"{field} must be a positive, finite number.", fields={field: "invalid"})
    if number > MAX_EPSILON:
        raise ValidationFailed(
            f"{field} above {MAX_EPSILON} gives no meaningful privacy; choose a smaller value.",
            fields={field: "too_large"},
        )
    with localcontext() as ctx:
        ctx.prec = len(number.as_tuple().digits) + 16
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        micro = int((number * MICRO).to_integral_value(rounding=ROUND_FLOOR if is_cap else ROUND_CEILING))
    if is_cap and micro < 1:
        raise ValidationFailed(f"{field} must be at least 0.000001.", fields={field: "too_small"})
    return max(1, micro)


def delta_to_atto(value: Any, *, field: str = "delta", is_cap: bool = False) -> int:
    """Parse a delta exactly into whole 1e-18 units: spends round up, caps round down."""
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationFailed(
            f"{field} must be a number between 0 and {MAX_DELTA}.", fields={field: "required"}
        )
    text = str(value).strip()
    try:
        if len(text) > 64:
            raise ValueError(text[:8])
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a number.", fields={field: "invalid"}) from None
    if not number.is_finite() or number < 0 or (number == 0 and is_cap):
        raise ValidationFailed(f"{field} must be a finite number above 0.", fields={field: "invalid"})
    if number > MAX_DELTA:
        raise ValidationFailed(
            f"{field} above {MAX_DELTA} gives no meaningful privacy.", fields={field: "too_large"}
        )
    with localcontext() as ctx:
        ctx.prec = len(number.as_tuple().digits) + 24
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        atto = int((number * ATTO).to_integral_value(rounding=ROUND_FLOOR if is_cap else ROUND_CEILING))
    if number > 0 and atto < 1:
        atto = 0 if is_cap else 1
    if is_cap and atto < 1:
        raise ValidationFailed(f"{field} must be at least 1e-18.", fields={field: "too_small"})
    return atto


def _plain(value: Decimal) -> str:
    """A Decimal without exponent and without trailing fractional zeros: 50 -> "50", 0.50 -> "0.5"."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def format_epsilon(micro: int) -> str:
    # Only fractional zeros are dropped: a whole 50 stays "50" (it used to print "5").
    return _plain(Decimal(micro) / MICRO)


def format_delta(atto: int) -> str:
    """Exact, readable: 1e-9 prints as "1E-9", 0 as "0", 2.5e-7 as "2.5E-7"."""
    if not atto:
        return "0"
    return f"{(Decimal(atto) / ATTO).normalize():E}".replace("E-0", "E-").replace(".0E", "E")


def ledger_owner(dataset: SourceDataset) -> SourceDataset:
    """The dataset whose budget a version spends: its population's first version, or itself."""
    if dataset.population_id is None:
        return dataset
    return SourceDataset.objects.get(pk=dataset.population_id)


def budget_remaining(dataset: SourceDataset) -> tuple[int, int]:
    """(micro-epsilon, atto-delta) left on the ledger that `dataset` spends from, read fresh."""
    row = SourceDataset.objects.values(
        "epsilon_cap_micro", "epsilon_spent_micro", "delta_cap_atto", "delta_spent_atto"
    ).get(pk=dataset.ledger_owner_id)
    return (
        row["epsilon_cap_micro"] - row["epsilon_spent_micro"],
        row["delta_cap_atto"] - row["delta_spent_atto"],
    )


def _debit(*, owner_id: Any, epsilon_micro: int, delta_atto: int, what: str) -> SourceDataset:
    """One conditional UPDATE that raises both spent counters or changes nothing (409)."""
    updated = SourceDataset.objects.filter(
        pk=owner_id,
        epsilon_spent_micro__lte=F("epsilon_cap_micro") - epsilon_micro,
        delta_spent_atto__lte=F("delta_cap_atto") - delta_atto,
    ).update(
        epsilon_spent_micro=F("epsilon_spent_micro") + epsilon_micro,
        delta_spent_atto=F("delta_spent_atto") + delta_atto,
    )
    owner = SourceDataset.objects.get(pk=owner_id)
    if updated != 1:
        left_eps = owner.epsilon_cap_micro - owner.epsilon_spent_micro
        left_delta = owner.delta_cap_atto - owner.delta_spent_atto
        needs = f"epsilon {format_epsilon(epsilon_micro)}"
        has = f"{format_epsilon(left_eps)}"
        if delta_atto:
            needs += f" and delta {format_delta(delta_atto)}"
            has += f" (delta {format_delta(left_delta)})"
        raise Conflict(
            f"Not enough privacy budget: {what} needs {needs} but {owner} has {has} left. Ask for a "
            "smaller epsilon or a steward-approved budget increase.",
            code="budget_exhausted",
            fields={
                "epsilon_remaining": format_epsilon(left_eps),
                "delta_remaining": format_delta(left_delta),
            },
        )
    return owner


def _spend(
    *,
    source: SourceDataset,
    job: Any,
    purpose: str,
    epsilon_micro: int,
    delta_atto: int,
    actor: PortalUser,
    action: str,
    what: str,
    reason: str = "",
) -> Any:
    """Debit the ledger owner of `source` (one conditional UPDATE, or 409 and nothing changed),
    append its ledger entry and audit it, all in the caller's transaction."""
    owner = _debit(
        owner_id=source.ledger_owner_id, epsilon_micro=epsilon_micro, delta_atto=delta_atto, what=what
    )
    entry = BudgetLedgerEntry.objects.create(
        dataset=owner,
        source=source,
        job=job,
        purpose=purpose,
        kind=LedgerKind.RESERVE,
        amount_micro=epsilon_micro,
        spent_after_micro=owner.epsilon_spent_micro,
        delta_atto=delta_atto,
        delta_spent_after_atto=owner.delta_spent_atto,
        composition=COMPOSITION,
        actor_name=_name(actor),
        reason=reason[:200],
    )
    details: dict[str, Any] = {
        "source": str(source.pk),
        "epsilon_micro": epsilon_micro,
        "delta_atto": delta_atto,
        "spent_after_micro": owner.epsilon_spent_micro,
        "delta_spent_after_atto": owner.delta_spent_atto,
    }
    if job is not None:
        details["job"] = str(job.pk)
    if reason:
        details["reason"] = reason[:200]
    audit_record(actor=actor, action=action, target_type="dataset", target_id=owner.pk, details=details)
    return entry


def budget_reserve(*, job: Any, actor: PortalUser) -> Any:
    """Reserve the job's epsilon (and delta) from its dataset's ledger owner with one conditional
    UPDATE, in the caller's transaction (the approval). Never overspends, even under concurrency:
    the UPDATE's WHERE clause is evaluated under the row lock, and CHECK constraints back it up.
    """
    return _spend(
        source=SourceDataset.objects.get(pk=job.dataset_id),
        job=job,
        purpose=EntryPurpose.SYNTHESIS,
        epsilon_micro=job.epsilon_micro,
        delta_atto=job.delta_atto or 0,
        actor=actor,
        action="budget.reserve",
        what="this request",
    )


def budget_spend_estimate(
    *, dataset: SourceDataset, epsilon_micro: int, actor: PortalUser, reason: str, delta_atto: int = 0
) -> Any:
    """Debit a DP domain estimate (no job) from the dataset's ledger owner, in the caller's
    transaction. It is never refunded: it is spent as soon as the worker may read the data."""
    if epsilon_micro < 1:
        raise ValidationFailed("epsilon must be positive.", fields={"epsilon": "invalid"})
    return _spend(
        source=dataset,
        job=None,
        purpose=EntryPurpose.DOMAIN_ESTIMATE,
        epsilon_micro=epsilon_micro,
        delta_atto=delta_atto,
        actor=actor,
        action="budget.estimate",
        what="this estimate",
        reason=reason,
    )


def budget_refund(*, job: Any, reason: str) -> bool:
    """Give the reservation back, only if the job never read the data. At most once per job."""
    with transaction.atomic():
        locked = SynthesisJob.objects.select_for_update().get(pk=job.pk)
        reserved = locked.ledger.filter(kind=LedgerKind.RESERVE).first()
        if (
            reserved is None
            or locked.data_accessed_at is not None
            or locked.ledger.filter(kind=LedgerKind.REFUND).exists()
        ):
            return False
        # The reservation's owner row, not the job's dataset: a later version spends its population's.
        owner_id = reserved.dataset_id
        SourceDataset.objects.filter(pk=owner_id).update(
            epsilon_spent_micro=F("epsilon_spent_micro") - reserved.amount_micro,
            delta_spent_atto=F("delta_spent_atto") - reserved.delta_atto,
        )
        spent, delta_spent = SourceDataset.objects.values_list("epsilon_spent_micro", "delta_spent_atto").get(
            pk=owner_id
        )
        BudgetLedgerEntry.objects.create(
            dataset_id=owner_id,
            source_id=locked.dataset_id,
            job=locked,
            purpose=EntryPurpose.SYNTHESIS,
            kind=LedgerKind.REFUND,
            amount_micro=reserved.amount_micro,
            spent_after_micro=spent,
            delta_atto=reserved.delta_atto,
            delta_spent_after_atto=delta_spent,
            composition=COMPOSITION,
            actor_name="system",
            reason=reason[:200],
        )
        audit_record(
            actor=None,
            action="budget.refund",
            target_type="dataset",
            target_id=owner_id,
            details={
                "job": str(locked.pk),
                "epsilon_micro": reserved.amount_micro,
                "delta_atto": reserved.delta_atto,
                "reason": reason[:200],
            },
        )
    return True


def _name(actor: PortalUser) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"

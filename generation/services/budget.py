"""Exact epsilon arithmetic. Budgets are integer micro-epsilon; never floats."""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from django.db import transaction
from django.db.models import F

from audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from generation.models import MICRO, BudgetLedgerEntry, LedgerKind, SourceDataset, SynthesisJob

MAX_EPSILON = Decimal("100")


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


def format_epsilon(micro: int) -> str:
    return f"{Decimal(micro) / MICRO:f}".rstrip("0").rstrip(".") or "0"


def budget_reserve(*, job: Any, actor: Any) -> Any:
    """Reserve the job's epsilon from its dataset with one conditional UPDATE, in the caller's
    transaction (the approval). Never overspends, even under concurrency: the UPDATE's WHERE
    clause is evaluated under the row lock, and a CHECK constraint backs it up.
    """
    amount = job.epsilon_micro
    updated = SourceDataset.objects.filter(
        pk=job.dataset_id, epsilon_spent_micro__lte=F("epsilon_cap_micro") - amount
    ).update(epsilon_spent_micro=F("epsilon_spent_micro") + amount)
    dataset = SourceDataset.objects.get(pk=job.dataset_id)
    if updated != 1:
        remaining = dataset.epsilon_cap_micro - dataset.epsilon_spent_micro
        raise Conflict(
            f"Not enough privacy budget: this request needs epsilon {format_epsilon(amount)} but "
            f"{dataset} has {format_epsilon(remaining)} left. Ask for a smaller epsilon or a "
            "steward-approved budget increase.",
            code="budget_exhausted",
            fields={"epsilon_remaining": format_epsilon(remaining)},
        )
    entry = BudgetLedgerEntry.objects.create(
        dataset=dataset,
        job=job,
        kind=LedgerKind.RESERVE,
        amount_micro=amount,
        spent_after_micro=dataset.epsilon_spent_micro,
        actor_name=_name(actor),
    )
    audit_record(
        actor=actor,
        action="budget.reserve",
        target_type="dataset",
        target_id=dataset.pk,
        details={
            "job": str(job.pk),
            "epsilon_micro": amount,
            "spent_after_micro": dataset.epsilon_spent_micro,
        },
    )
    return entry


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
        SourceDataset.objects.filter(pk=locked.dataset_id).update(
            epsilon_spent_micro=F("epsilon_spent_micro") - reserved.amount_micro
        )
        spent = SourceDataset.objects.values_list("epsilon_spent_micro", flat=True).get(pk=locked.dataset_id)
        BudgetLedgerEntry.objects.create(
            dataset_id=locked.dataset_id,
            job=locked,
            kind=LedgerKind.REFUND,
            amount_micro=reserved.amount_micro,
            spent_after_micro=spent,
            actor_name="system",
            reason=reason[:200],
        )
        audit_record(
            actor=None,
            action="budget.refund",
            target_type="dataset",
            target_id=locked.dataset_id,
            details={"job": str(locked.pk), "epsilon_micro": reserved.amount_micro, "reason": reason[:200]},
        )
    return True


def _name(actor: Any) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"

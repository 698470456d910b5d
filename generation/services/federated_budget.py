"""A federated study's movements on each site's ledger: reserve at approval, settle at the end.

The study lives in `federation` (a higher layer), so these functions take ledger entries and
amounts, never the study: the reservation is one `BudgetLedgerEntry` (purpose federated_study, no
job) and the settlement refunds `reserved - spent` with a second entry. Spending more than was
reserved is refused here, whatever the caller says: the accountant's figure is capped by the
reservation, and a figure above it is an error the caller must handle.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from core.roles import PortalUser
from generation.models import BudgetLedgerEntry, EntryPurpose, LedgerKind, SourceDataset
from generation.services.budget import COMPOSITION, _spend


def federated_reserve(
    *, dataset: SourceDataset, epsilon_micro: int, delta_atto: int, actor: PortalUser, reference: str
) -> BudgetLedgerEntry:
    """Reserve a study's per-site epsilon (and delta) from `dataset`'s ledger owner with one
    conditional UPDATE, in the caller's transaction (the approval): 409 and nothing changed when
    the budget is short. `reference` names the study (ids only, never data)."""
    if epsilon_micro < 1:
        raise ValidationFailed("epsilon must be positive.", fields={"epsilon": "invalid"})
    entry: BudgetLedgerEntry = _spend(
        source=dataset,
        job=None,
        purpose=EntryPurpose.FEDERATED_STUDY,
        epsilon_micro=epsilon_micro,
        delta_atto=delta_atto,
        actor=actor,
        action="budget.reserve",
        what=f"federated {reference}",
        reason=reference,
    )
    return entry


def federated_settle(
    *, reserve_entry: BudgetLedgerEntry, spent_micro: int, spent_delta_atto: int, reference: str
) -> BudgetLedgerEntry | None:
    """Debit exactly `spent_micro` of a reservation: refund `reserved - spent` (None when nothing
    is left to refund). The caller locks its own row so a settlement happens once; `spent` above
    the reservation is refused (ValidationFailed), never charged."""
    if reserve_entry.kind != LedgerKind.RESERVE or reserve_entry.purpose != EntryPurpose.FEDERATED_STUDY:
        raise ValidationFailed("Only a federated study's reservation can be settled.")
    if spent_micro < 0 or spent_delta_atto < 0:
        raise ValidationFailed("A spent amount cannot be negative.")
    if spent_micro > reserve_entry.amount_micro or spent_delta_atto > reserve_entry.delta_atto:
        raise Conflict(
            "The accountant reports more epsilon than was reserved; the reservation stays spent in "
            "full and an operator must look at the run.",
            code="overspent",
        )
    refund_eps = reserve_entry.amount_micro - spent_micro
    refund_delta = reserve_entry.delta_atto - spent_delta_atto
    if refund_eps == 0:
        if refund_delta:
            # Delta is spent whenever any epsilon is (the accountant's delta is fixed in advance).
            raise ValidationFailed("A settlement that spends all the epsilon spends the delta too.")
        return None
    with transaction.atomic():
        owner_id = reserve_entry.dataset_id
        SourceDataset.objects.filter(pk=owner_id).update(
            epsilon_spent_micro=F("epsilon_spent_micro") - refund_eps,
            delta_spent_atto=F("delta_spent_atto") - refund_delta,
        )
        spent, delta_spent = SourceDataset.objects.values_list("epsilon_spent_micro", "delta_spent_atto").get(
            pk=owner_id
        )
        entry = BudgetLedgerEntry.objects.create(
            dataset_id=owner_id,
            source_id=reserve_entry.source_id,
            job=None,
            purpose=EntryPurpose.FEDERATED_STUDY,
            kind=LedgerKind.REFUND,
            amount_micro=refund_eps,
            spent_after_micro=spent,
            delta_atto=refund_delta,
            delta_spent_after_atto=delta_spent,
            composition=COMPOSITION,
            actor_name="system",
            reason=reference[:200],
        )
        details: dict[str, Any] = {
            "reference": reference[:200],
            "reserve_entry": reserve_entry.pk,
            "reserved_micro": reserve_entry.amount_micro,
            "spent_micro": spent_micro,
            "epsilon_micro": refund_eps,
            "delta_atto": refund_delta,
        }
        audit_record(
            actor=None, action="budget.refund", target_type="dataset", target_id=owner_id, details=details
        )
    return entry

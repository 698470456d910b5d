"""DP domain estimates: a steward spends privacy budget to have a worker estimate a column's
domain (DP bounds, or DP category discovery) and record it as the column's declaration.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from celery import current_app
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core.errors import ValidationFailed
from core.roles import PortalUser
from generation.choices import ColumnKind, DatasetStatus
from generation.models import MICRO, BudgetLedgerEntry, DatasetColumn, SourceDataset
from generation.policies import DeclarationSource, declaration_source
from generation.profiling import DP_QUANTILES, dp_bounds, dp_categories, dp_category_threshold
from generation.services.budget import (
    budget_spend_estimate,
    delta_to_atto,
    epsilon_to_micro,
    format_delta,
    format_epsilon,
)
from generation.services.columns import bound_number, parse_bound
from generation.services.stewards import dataset_get_for_steward
from generation.storage import read_encrypted_parquet

DOMAIN_ESTIMATE_TASK = "synthgate.datasets.estimate_domain"
DEFAULT_ESTIMATE_DELTA = "1e-9"  # category discovery's delta when the steward gives none
_CATEGORY_KINDS = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_BOUNDED_KINDS = (ColumnKind.NUMERIC, ColumnKind.DATETIME)


def dataset_request_domain_estimate(
    *,
    actor: PortalUser,
    dataset_id: Any,
    column: str,
    epsilon: Any,
    lower: Any = None,
    upper: Any = None,
    delta: Any = None,
) -> BudgetLedgerEntry:
    """Spend privacy budget on a DP domain for one column and queue the estimate.

    Numeric and date columns: DP bounds (epsilon-DP quantiles) inside the steward's wide, public
    search range `lower`/`upper`. Categorical and boolean columns: DP category discovery, which is
    (epsilon, delta)-DP (a category one record holds is released with probability at most delta),
    so it spends delta from the same ledger. The spend is the ledger entry written here, in this
    transaction: it is charged the moment a worker may read the data, and never refunded. The
    worker (`dataset_estimate_domain`) records the result as the column's declaration, marked
    `dp_estimate`. A new request replaces one still pending.
    """
    dataset = dataset_get_for_steward(actor=actor, dataset_id=dataset_id, action="dataset.domain_estimate")
    target = dataset.columns.filter(name=str(column)).first()
    if target is None:
        raise ValidationFailed(
            f"Column `{str(column)[:80]}` is not in this dataset.", fields={"column": "unknown"}
        )
    categorical = target.kind in _CATEGORY_KINDS
    if not categorical and target.kind not in _BOUNDED_KINDS:
        raise ValidationFailed(
            f"`{target.name}` is {target.get_kind_display().lower()}; a DP domain is estimated for numeric, "
            "date, categorical and boolean columns only.",
            fields={"column": "kind"},
        )
    micro = epsilon_to_micro(epsilon)
    if categorical:
        delta_atto = delta_to_atto(DEFAULT_ESTIMATE_DELTA if delta in (None, "") else delta)
        search: tuple[Any, Any] | None = None
        what = f"DP categories of `{target.name}`"
    else:
        delta_atto, search = 0, _search_range(target, lower, upper)
        what = f"DP bounds of `{target.name}`"
    with transaction.atomic():
        locked = DatasetColumn.objects.select_for_update().get(pk=target.pk)
        entry = budget_spend_estimate(
            dataset=dataset, epsilon_micro=micro, delta_atto=delta_atto, actor=actor, reason=what[:200]
        )
        locked.declared = {
            **locked.declared,
            "estimate_request": {
                "entry": entry.pk,
                "mode": "categories" if categorical else "bounds",
                "epsilon_micro": micro,
                "delta_atto": delta_atto,
                "search": list(search) if search else None,
                "state": "queued",
                "requested_by": actor.get_username(),
            },
        }
        locked.save(update_fields=["declared"])
        audit_record(
            actor=actor,
            action="dataset.domain_estimate.request",
            target_type="dataset",
            target_id=dataset.pk,
            details={
                "column": locked.name,
                "epsilon_micro": micro,
                "delta_atto": delta_atto,
                "ledger_entry": entry.pk,
            },
        )
        _enqueue_domain_estimate(column_id=locked.pk, entry_id=entry.pk)
    return entry


def _search_range(column: DatasetColumn, lower: Any, upper: Any) -> tuple[Any, Any]:
    low, high = parse_bound(column, "lower", lower), parse_bound(column, "upper", upper)
    if low is None or high is None or bound_number(low) >= bound_number(high):
        raise ValidationFailed(
            f"`{column.name}`: give a wide public search range, lower below upper (for example 0 to 200 "
            "for a lab value); the estimate never looks outside it.",
            fields={"lower": "required", "upper": "required"},
        )
    return low, high


def _enqueue_domain_estimate(*, column_id: int, entry_id: int) -> None:
    # Ids only cross the broker; the worker reads the search range and epsilon from the database.
    # Sent by name through the current app: generation does not import the project's Celery module.
    kwargs = {"column_id": column_id, "entry_id": entry_id}
    transaction.on_commit(lambda: current_app.send_task(DOMAIN_ESTIMATE_TASK, kwargs=kwargs))


def _claim_estimate(column_id: Any, entry_id: Any) -> tuple[DatasetColumn, dict[str, Any]] | None:
    """Move the request from queued to running, once: a redelivered task finds it running and
    does nothing, so the data is never read twice under one debit."""
    with transaction.atomic():
        column = (
            DatasetColumn.objects.select_for_update().select_related("dataset").filter(pk=column_id).first()
        )
        request = (column.declared.get("estimate_request") or {}) if column else {}
        if column is None or request.get("entry") != entry_id or request.get("state") != "queued":
            return None
        request = {**request, "state": "running"}
        column.declared = {**column.declared, "estimate_request": request}
        column.save(update_fields=["declared"])
    return column, request


def dataset_estimate_domain(*, column_id: Any, entry_id: Any) -> dict[str, Any] | None:
    """Worker side: compute the DP bounds and record them as the column's declaration."""
    claimed = _claim_estimate(column_id, entry_id)
    if claimed is None:
        return None
    column, request = claimed
    epsilon = request["epsilon_micro"] / MICRO
    # The training split only: the rows every synthesis job of this dataset reads.
    values = read_encrypted_parquet(column.dataset.storage_path)[column.name]
    if request.get("mode") == "categories":
        delta = request["delta_atto"] / 10**18
        found = dp_categories(values, epsilon=epsilon, delta=delta)
        threshold = dp_category_threshold(epsilon=epsilon, delta=delta)
        return _record_estimate(column.pk, request, {"categories": found}, {"threshold": threshold})
    search = request["search"]
    span = (bound_number(search[0]), bound_number(search[1]))
    low, high = dp_bounds(values, kind=column.kind, search=span, epsilon=epsilon)
    bounds = {"lower": _public_bound(column, low), "upper": _public_bound(column, high)}
    return _record_estimate(column.pk, request, bounds, {"quantiles": list(DP_QUANTILES)})


def _public_bound(column: DatasetColumn, value: float) -> Any:
    if column.kind == ColumnKind.DATETIME:
        return pd.Timestamp(value, unit="s").isoformat()
    return round(value, 6)


def _record_estimate(
    column_id: Any, request: dict[str, Any], found: dict[str, Any], method: dict[str, Any]
) -> dict[str, Any] | None:
    with transaction.atomic():
        column = DatasetColumn.objects.select_for_update().select_related("dataset").get(pk=column_id)
        pending = column.declared.get("estimate_request") or {}
        if pending.get("entry") != request["entry"]:
            return None  # replaced by a newer request while this one ran; its spend stands
        declared = {k: v for k, v in column.declared.items() if k != "estimate_request"}
        if declaration_source(declared) == DeclarationSource.PROFILE_SUGGESTION:
            declared = {key: declared[key] for key in ("outcome",) if key in declared}
        estimate = {
            "epsilon": format_epsilon(request["epsilon_micro"]),
            "epsilon_micro": request["epsilon_micro"],
            "delta": format_delta(request.get("delta_atto") or 0),
            "delta_atto": request.get("delta_atto") or 0,
            **method,
            "search": request["search"],
            "ledger_entry": request["entry"],
            "at": timezone.now().isoformat(),
        }
        declared.update(found, source=DeclarationSource.DP_ESTIMATE.value, estimate=estimate)
        column.declared = declared
        column.save(update_fields=["declared"])
        dataset = column.dataset
        if dataset.status == DatasetStatus.READY:  # a changed declaration reopens review
            SourceDataset.objects.filter(pk=dataset.pk).update(status=DatasetStatus.PENDING_REVIEW)
        # The DP bounds are public once released; the audit row holds them, the column and epsilon.
        audit_record(
            actor=None,
            action="dataset.domain_estimate",
            target_type="dataset",
            target_id=dataset.pk,
            details={
                "column": column.name,
                "epsilon_micro": request["epsilon_micro"],
                "delta_atto": request.get("delta_atto") or 0,
                **found,
                "ledger_entry": request["entry"],
            },
        )
    return declared

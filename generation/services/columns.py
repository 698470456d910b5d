"""Column review: classifications, declared domains and the entity column, edited by stewards.

Any edit reopens review; `column_spec_snapshot` is what a sign-off pins of each column.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from django.db import transaction

from audit.services import audit_record
from core.errors import ValidationFailed
from core.roles import PortalUser
from generation.choices import Classification, ColumnKind, DatasetStatus
from generation.models import DatasetColumn, SourceDataset
from generation.policies import (
    DOMAIN_FIELDS,
    MAX_ALLOWED_VALUES,
    MAX_DECIMALS,
    NUMERIC_ONLY_FIELDS,
    DeclarationSource,
    declaration_source,
    outcome_refusal,
    second_outcome_refusal,
)
from generation.services.stewards import dataset_get_for_steward


def _apply_declaration(column: DatasetColumn, change: dict[str, Any]) -> None:
    """Apply one column's edits to its kind and declared domain (in memory; the caller saves).

    Entering any domain field makes the declaration the steward's. When it was a profile
    suggestion, the suggestion is dropped first, so a value read from the data never becomes
    public under the steward's name unless the steward typed it.
    """
    declared = dict(column.declared)
    if any(key in change for key in DOMAIN_FIELDS):
        if declaration_source(declared) == DeclarationSource.PROFILE_SUGGESTION:
            declared = {key: declared[key] for key in ("outcome",) if key in declared}
        declared["source"] = DeclarationSource.STEWARD.value
    if "kind" in change:
        _change_kind(column, declared, change["kind"])
    for key in ("lower", "upper"):
        if key in change:
            declared[key] = parse_bound(column, key, change[key])
    if "categories" in change:
        declared["categories"] = _categories(column, change["categories"])
    if "unit" in change:
        declared["unit"] = str(change["unit"] or "")[:40]
    for key in ("integer", "nullable", "outcome"):
        if key in change:
            declared[key] = _flag(column, key, change[key])
    if "decimals" in change:
        declared["decimals"] = _decimals(column, change["decimals"])
    if "allowed_values" in change:
        declared["allowed_values"] = _allowed_values(column, change["allowed_values"])
    _check_value_shape(column, declared)
    lower, upper = declared.get("lower"), declared.get("upper")
    if lower is not None and upper is not None and bound_number(lower) > bound_number(upper):
        raise ValidationFailed(
            f"`{column.name}`: the lower bound is above the upper bound.", fields={column.name: "bounds"}
        )
    column.declared = declared


def _change_kind(column: DatasetColumn, declared: dict[str, Any], kind: Any) -> None:
    if kind not in ColumnKind.values:
        raise ValidationFailed(
            f"`{column.name}`: kind must be one of {', '.join(ColumnKind.values)}.",
            fields={column.name: "kind"},
        )
    if kind != column.kind:
        # What described the old kind does not describe the new one (a date bound is no number).
        for key in ("lower", "upper", "integer", "categories", "decimals", "allowed_values"):
            declared.pop(key, None)
        column.kind = kind


def _categories(column: DatasetColumn, categories: Any) -> list[str]:
    if not isinstance(categories, list) or not all(isinstance(c, str | int | float) for c in categories):
        raise ValidationFailed(
            f"Categories of `{column.name}` must be a list of values.", fields={column.name: "categories"}
        )
    return sorted({str(c).strip() for c in categories if str(c).strip()})


def _decimals(column: DatasetColumn, value: Any) -> int | None:
    """Declared precision: a whole number of decimals from 0 to MAX_DECIMALS, or None (undeclared)."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DECIMALS:
        raise ValidationFailed(
            f"`{column.name}`: decimals must be a whole number from 0 to {MAX_DECIMALS}.",
            fields={column.name: "decimals"},
        )
    return value


def _allowed_values(column: DatasetColumn, values: Any) -> list[float | int] | None:
    """Declared allowed values (a score's or code's support): sorted distinct numbers, or None."""
    if values in (None, "", []):
        return None
    message = (
        f"`{column.name}`: allowed values must be a list of at most {MAX_ALLOWED_VALUES} finite numbers."
    )
    if not isinstance(values, list) or len(values) > MAX_ALLOWED_VALUES:
        raise ValidationFailed(message, fields={column.name: "allowed_values"})
    numbers: set[float] = set()
    for value in values:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValidationFailed(message, fields={column.name: "allowed_values"})
        numbers.add(number)
    return [int(v) if v.is_integer() else v for v in sorted(numbers)]


def _check_value_shape(column: DatasetColumn, declared: dict[str, Any]) -> None:
    """Precision and allowed values describe numbers: numeric columns only, inside the bounds,
    whole when the column is whole-number."""
    present = [key for key in NUMERIC_ONLY_FIELDS if declared.get(key) is not None]
    if not present:
        return
    if column.kind != ColumnKind.NUMERIC:
        raise ValidationFailed(
            f"`{column.name}`: {' and '.join(present)} can be declared for numeric columns only.",
            fields={column.name: present[0]},
        )
    allowed = declared.get("allowed_values")
    if not allowed:
        return
    lower, upper = declared.get("lower"), declared.get("upper")
    if (lower is not None and min(allowed) < float(lower)) or (
        upper is not None and max(allowed) > float(upper)
    ):
        raise ValidationFailed(
            f"`{column.name}`: every allowed value must lie within the declared bounds.",
            fields={column.name: "allowed_values"},
        )
    if declared.get("integer") and not all(float(v).is_integer() for v in allowed):
        raise ValidationFailed(
            f"`{column.name}`: the column is declared whole numbers only, so its allowed values must be whole.",
            fields={column.name: "allowed_values"},
        )


def _flag(column: DatasetColumn, key: str, value: Any) -> bool:
    # Strictly a boolean: "false" as text would be truthy and silently declare the flag.
    if not isinstance(value, bool):
        raise ValidationFailed(f"`{column.name}`: {key} must be true or false.", fields={column.name: key})
    return value


def _check_outcome(columns: list[DatasetColumn], previously: set[str]) -> None:
    """The declared outcome, after all of a review's edits: eligible, and at most one per dataset.

    Checked on the edited state as a whole, so one review can move the flag from one column to
    another, and an edit that makes the outcome ineligible (a third category) is refused too.
    """
    flagged = [c for c in columns if c.declared.get("outcome")]
    for column in flagged:
        refusal = outcome_refusal(
            name=column.name, kind=column.kind, classification=column.classification, declared=column.declared
        )
        if refusal:
            raise ValidationFailed(refusal, code="invalid_outcome", fields={column.name: "outcome"})
    refusal = second_outcome_refusal(flagged=[c.name for c in flagged], previously=previously)
    if refusal:
        newcomer = next((c.name for c in flagged if c.name not in previously), flagged[-1].name)
        raise ValidationFailed(refusal, code="second_outcome", fields={newcomer: "outcome"})


def bound_number(bound: Any) -> float:
    """A parsed bound as a number to compare: a date's POSIX seconds, or the number itself."""
    return pd.Timestamp(bound).timestamp() if isinstance(bound, str) else float(bound)


def parse_bound(column: DatasetColumn, key: str, value: Any) -> Any:
    """A bound as entered, checked for `column`'s kind: an ISO date or a finite number (None if blank)."""
    if value in (None, ""):
        return None
    if column.kind == ColumnKind.DATETIME:
        try:
            return pd.Timestamp(str(value)).isoformat()
        except ValueError:
            raise ValidationFailed(
                f"`{column.name}`: {key} must be a date like 2020-01-31.", fields={column.name: key}
            ) from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValidationFailed(f"`{column.name}`: {key} must be a finite number.", fields={column.name: key})
    return number


def dataset_update_columns(
    *, actor: PortalUser, dataset_id: Any, changes: list[dict[str, Any]], entity_column: str | None = None
) -> SourceDataset:
    """Edit classifications, declared domains and the entity column (None: unchanged, "": none).

    Any edit reopens review (a new sign-off).
    """
    dataset = dataset_get_for_steward(actor=actor, dataset_id=dataset_id, action="dataset.review")
    columns = {c.name: c for c in dataset.columns.all()}
    previous_outcomes = {c.name for c in columns.values() if c.declared.get("outcome")}
    edited: dict[str, list[str]] = {}
    for change in changes:
        column = columns.get(str(change.get("name", "")))
        if column is None:
            raise ValidationFailed(
                f"Column `{change.get('name')}` is not in this dataset.", fields={"columns": "unknown"}
            )
        if "classification" in change:
            if change["classification"] not in Classification.values:
                raise ValidationFailed(
                    f"`{column.name}`: classification must be one of {', '.join(Classification.values)}.",
                    fields={column.name: "classification"},
                )
            column.classification = change["classification"]
        _apply_declaration(column, change)
        edited[column.name] = sorted(k for k in change if k != "name")
    _check_outcome(list(columns.values()), previous_outcomes)
    entity = _entity_change(dataset, columns, entity_column)
    with transaction.atomic():
        for column in columns.values():
            if column.name in edited:
                column.save(update_fields=["classification", "kind", "declared"])
        if entity is not None:
            dataset.entity_column = entity
            dataset.save(update_fields=["entity_column"])
        if (edited or entity is not None) and dataset.status == DatasetStatus.READY:
            dataset.status = DatasetStatus.PENDING_REVIEW
            dataset.save(update_fields=["status"])
        details: dict[str, Any] = {"edited": edited}
        if entity is not None:
            details["entity_column"] = entity
        audit_record(
            actor=actor, action="dataset.review", target_type="dataset", target_id=dataset.pk, details=details
        )
    return dataset


def _entity_change(
    dataset: SourceDataset, columns: dict[str, DatasetColumn], entity: str | None
) -> str | None:
    """The new entity column, or None when it does not change. It must name a column."""
    if entity is None:
        return None
    name = str(entity).strip()
    if name and name not in columns:
        raise ValidationFailed(
            f"The entity column must be one of this dataset's columns; `{name[:80]}` is not.",
            code="unknown_entity_column",
            fields={"entity_column": "unknown"},
        )
    return None if name == dataset.entity_column else name


def column_spec_snapshot(column: DatasetColumn, *, entity_column: str | None = None) -> dict[str, Any]:
    """A column as signed off: what jobs pin into their metadata, and where each part came from."""
    declared = column.declared
    entity = column.dataset.entity_column if entity_column is None else entity_column
    estimate = declared.get("estimate") or {}
    return {
        "name": column.name,
        "kind": column.kind,
        "classification": column.classification,
        **{k: declared.get(k) for k in ("lower", "upper", "categories", "unit")},
        "integer": bool(declared.get("integer")),
        # Numeric precision and support; releases are rounded and snapped to them.
        "decimals": declared.get("decimals"),
        "allowed_values": declared.get("allowed_values"),
        # Undeclared, missing values are allowed: the data-independent choice.
        "nullable": bool(declared.get("nullable", True)),
        # DP synthesis refuses a column whose domain is a profile suggestion (read from the data).
        "source": declaration_source(declared),
        "estimate_epsilon": estimate.get("epsilon"),
        "entity": bool(entity) and column.name == entity,
        # Pinned into each job's metadata, where validation reads which column TSTR predicts.
        "outcome": bool(declared.get("outcome")),
    }

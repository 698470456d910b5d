from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.choices import ColumnKind, DatasetStatus
from generation.models import DatasetColumn, SourceDataset
from generation.policies import (
    CUSTODIANS,
    MAX_ALLOWED_VALUES,
    MAX_DECIMALS,
    declaration_warnings,
    sees_exact_figures,
)
from generation.selectors import (
    budget_totals,
    column_figures,
    dataset_figures,
    declared_visible_to,
    ledger_entries_visible_to,
    loaded_ledger_owner,
)
from generation.services.budget import format_delta

__all__ = ["CUSTODIANS"]  # re-exported: roles that see value-revealing aggregates


def _user(serializer: serializers.Serializer) -> Any:
    return serializer.context.get("user")


class ColumnOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField(source="kind")
    classification = serializers.CharField()
    suggested_classification = serializers.CharField()
    suggestion_reason = serializers.CharField()
    missing_rate = serializers.SerializerMethodField()
    distinct = serializers.SerializerMethodField()
    declared = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField()
    entity = serializers.SerializerMethodField()
    profile = serializers.SerializerMethodField()

    def get_missing_rate(self, obj: Any) -> float:
        return column_figures(user=_user(self), column=obj)["missing_rate"]

    def get_distinct(self, obj: Any) -> int | None:
        return column_figures(user=_user(self), column=obj)["distinct"]

    def get_declared(self, obj: Any) -> dict[str, Any]:
        return declared_visible_to(user=_user(self), column=obj)

    def get_outcome(self, obj: Any) -> bool:
        return bool(obj.declared.get("outcome"))

    def get_entity(self, obj: Any) -> bool:
        return bool(obj.dataset.entity_column) and obj.name == obj.dataset.entity_column

    def get_profile(self, obj: Any) -> dict[str, Any] | None:
        return obj.stats if sees_exact_figures(_user(self)) else None


def column_item(column: DatasetColumn | ListedColumn, *, user: Any, dataset: SourceDataset) -> dict[str, Any]:
    """What `ColumnOutputSerializer` renders, built directly: a list of 50 datasets holds ~800
    columns, and DRF's per-field machinery (a serializer and its fields copied per dataset, eleven
    attribute lookups per column) was most of the list's CPU. The same JSON, byte for byte
    (generation/tests/test_dataset_list_speed.py compares them)."""
    figures = column_figures(user=user, column=column)
    exact = figures["exact"]
    return {
        "name": column.name,
        "dtype": column.kind,
        "classification": column.classification,
        "suggested_classification": column.suggested_classification,
        "suggestion_reason": column.suggestion_reason,
        "missing_rate": figures["missing_rate"],
        "distinct": figures["distinct"],
        "declared": declared_visible_to(user=user, column=column),
        "outcome": bool(column.declared.get("outcome")),
        "entity": bool(dataset.entity_column) and column.name == dataset.entity_column,
        "profile": column.stats if exact else None,
    }


class BudgetOutputSerializer(serializers.Serializer):
    """The ledger owner's totals: a later version of a source spends its first version's budget."""

    ledger_owner = serializers.UUIDField(source="ledger_owner.pk")
    shared = serializers.BooleanField()
    epsilon_cap = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_spent = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_remaining = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    # Strings: a delta such as 1E-9 keeps every digit.
    delta_cap = serializers.CharField()
    delta_spent = serializers.CharField()
    delta_remaining = serializers.CharField()


def budget_payload(dataset: SourceDataset, *, owner_loaded: bool = False) -> dict[str, Any]:
    """`owner_loaded`: the dataset came from `dataset_list_rows`, whose query already read its
    ledger owner (no query per row); otherwise the owner is read fresh."""
    owner = loaded_ledger_owner(dataset) if owner_loaded else None
    # One serializer for every call: DRF copies a serializer's fields when it is made, and a list
    # of 50 datasets made 50 (the fields' output is the same; it keeps no state between calls).
    return dict(_BUDGET.to_representation(budget_totals(dataset=dataset, owner=owner)))


_BUDGET = BudgetOutputSerializer()


# Where listed_columns_of (and so prefetch_columns) puts a dataset's columns: a plain list on
# the dataset. A prefetch_related cache is a queryset whose filter names every dataset of the page,
# so the page's rows and that queryset referred to each other and waited for the cycle collector
# (issue 16).
_LISTED_COLUMNS = "listed_columns"


@dataclass(frozen=True, slots=True)
class ListedColumn:
    """A column as a list of datasets renders it: the DatasetColumn fields column_item and
    declaration_warnings read, from one values query. A page of datasets holds hundreds of columns,
    and a model instance per column (its __init__, the dataset set on each, the reference back to
    clear) was a fifth of the dataset API's CPU (bench/pages.py profile, issue 16)."""

    name: str
    kind: str
    classification: str
    suggested_classification: str
    suggestion_reason: str
    missing_rate: float
    distinct: int
    stats: dict[str, Any]
    declared: dict[str, Any]


_LISTED_FIELDS = tuple(f.name for f in fields(ListedColumn))


def listed_columns_of(datasets: list[SourceDataset]) -> list[SourceDataset]:
    """`datasets` (a page's rows), each with its columns in position order as ListedColumn rows:
    one query for the page, whatever its number of datasets or columns."""
    listed: dict[Any, list[ListedColumn]] = {dataset.pk: [] for dataset in datasets}
    if listed:
        rows = (
            DatasetColumn.objects.filter(dataset_id__in=list(listed))
            .order_by("dataset_id", "position")
            .values_list("dataset_id", *_LISTED_FIELDS)
        )
        for dataset_id, *values in rows:
            listed[dataset_id].append(ListedColumn(*values))
    for dataset in datasets:
        dataset.__dict__[_LISTED_COLUMNS] = listed[dataset.pk]
    return datasets


def prefetch_columns(dataset: SourceDataset) -> SourceDataset:
    """One dataset already loaded (as a service returns it), with its columns fetched in position
    order, so DatasetOutputSerializer reads no column rows of its own; a no-op if done."""
    if _LISTED_COLUMNS not in dataset.__dict__:
        listed_columns_of([dataset])
    return dataset


def ordered_columns(dataset: SourceDataset) -> list[Any]:
    # The columns the caller fetched (`listed_columns_of`, `prefetch_columns`: ListedColumn rows);
    # otherwise DatasetColumn rows, one query per call, in the model's order (by position within
    # the dataset).
    listed = dataset.__dict__.get(_LISTED_COLUMNS)
    return list(listed) if listed is not None else list(dataset.columns.all())


class DatasetOutputSerializer(serializers.ModelSerializer):
    rows = serializers.SerializerMethodField()
    rows_exact = serializers.SerializerMethodField()
    training_rows = serializers.SerializerMethodField()
    reidentification_risk = serializers.SerializerMethodField()
    small_cell_count = serializers.SerializerMethodField()
    columns = serializers.SerializerMethodField()
    budget = serializers.SerializerMethodField()
    holdout = serializers.SerializerMethodField()
    population = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = SourceDataset
        fields = [
            "id",
            "name",
            "version",
            "status",
            "rows",
            "rows_exact",
            "sha256",
            "description",
            "created_at",
            "file_format",
            "encoding",
            "delimiter",
            "classification_version",
            "training_rows",
            "holdout",
            "reidentification_risk",
            "risk_columns",
            "small_cell_count",
            "entity_column",
            "population",
            "columns",
            "budget",
            "warnings",
        ]

    def _figures(self, obj: SourceDataset) -> dict[str, Any]:
        return dataset_figures(user=_user(self), dataset=obj)

    def get_rows(self, obj: SourceDataset) -> int:
        # Custodians: exact. Everyone else: rounded to the nearest 100 (see `rows_exact`).
        return self._figures(obj)["rows"]

    def get_rows_exact(self, obj: SourceDataset) -> bool:
        return self._figures(obj)["exact"]

    def get_training_rows(self, obj: SourceDataset) -> int:
        return self._figures(obj)["training_rows"]

    def get_reidentification_risk(self, obj: SourceDataset) -> float | None:
        risk = obj.reidentification_risk
        if risk is None or sees_exact_figures(_user(self)):
            return risk
        return round(risk, 2)

    def get_small_cell_count(self, obj: SourceDataset) -> int | None:
        return obj.small_cell_count if sees_exact_figures(_user(self)) else None

    @extend_schema_field(ColumnOutputSerializer(many=True))
    def get_columns(self, obj: SourceDataset) -> list[dict[str, Any]]:
        user = _user(self)
        return [column_item(column, user=user, dataset=obj) for column in ordered_columns(obj)]

    def get_budget(self, obj: SourceDataset) -> dict[str, Any]:
        return budget_payload(obj, owner_loaded=bool(self.context.get("owner_loaded")))

    def get_holdout(self, obj: SourceDataset) -> dict[str, Any]:
        return {"share": obj.holdout_share, "rows": self._figures(obj)["holdout_rows"]}

    def get_population(self, obj: SourceDataset) -> dict[str, Any]:
        # The owner's id is on the dataset itself; only its budget figures need a fresh read.
        data: dict[str, Any] = {
            "ledger_owner": str(obj.ledger_owner_id),
            "disjoint": bool(obj.population_reason),
        }
        if sees_exact_figures(_user(self)):
            data["reason"] = obj.population_reason
        return data

    def get_warnings(self, obj: SourceDataset) -> list[dict[str, str]]:
        # Custodians only: a warning compares the declaration with the data's extremes.
        if not sees_exact_figures(_user(self)):
            return []
        return [
            warning
            for column in ordered_columns(obj)
            for warning in declaration_warnings(
                name=column.name,
                classification=column.classification,
                declared=column.declared,
                stats=column.stats,
            )
        ]


class LedgerEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    purpose = serializers.CharField()
    epsilon = serializers.DecimalField(
        source="amount", max_digits=12, decimal_places=6, coerce_to_string=False
    )
    delta = serializers.SerializerMethodField()
    epsilon_spent_after = serializers.DecimalField(
        source="spent_after", max_digits=12, decimal_places=6, coerce_to_string=False
    )
    job = serializers.UUIDField(source="job_id", allow_null=True)
    source = serializers.UUIDField(source="source_id", allow_null=True)
    actor = serializers.CharField(source="actor_name")
    reason = serializers.CharField()
    composition = serializers.CharField()

    def get_delta(self, obj: Any) -> str:
        return format_delta(obj.delta_atto)


# How many entries the budget summary carries: the newest ones. The whole ledger is paginated
# at /api/v1/datasets/{id}/budget/entries/ (a year of estimates and jobs is thousands of rows).
LEDGER_SUMMARY_ENTRIES = 50


def ledger_payload(dataset: SourceDataset, user: Any, *, entries_url: str) -> dict[str, Any]:
    """Totals for everyone who may see the dataset; the newest entries (in time order) and their
    total count for custodians only, with the paginated list to read them all."""
    if not sees_exact_figures(user):
        return {**budget_payload(dataset), "entries": None}
    entries = ledger_entries_visible_to(user=user, dataset=dataset)
    newest = list(entries.reverse()[:LEDGER_SUMMARY_ENTRIES])[::-1]
    count = entries.count()
    return {
        **budget_payload(dataset),
        "entries": LedgerEntrySerializer(newest, many=True).data,
        "entries_count": count,
        "entries_truncated": count > len(newest),
        "entries_url": entries_url,
    }


class DatasetFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/datasets/ (each narrows what the caller may see)."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=120, help_text="Name contains.")
    status = serializers.ChoiceField(choices=DatasetStatus.choices, required=False, allow_blank=True)
    signed_off = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Classification signed off at least once."
    )
    created_from = serializers.DateField(required=False, help_text="First day included (UTC).")
    created_to = serializers.DateField(required=False, help_text="Last day included (UTC).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("created_from"), attrs.get("created_to")
        if start and end and start > end:
            raise serializers.ValidationError({"created_to": "Give a day on or after `created_from`."})
        return attrs


class DatasetInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    file = serializers.FileField(allow_empty_file=True)
    # Kept as text so the service parses it exactly (Decimal), never through a float.
    epsilon_cap = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    encoding = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    delimiter = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2, trim_whitespace=False
    )
    disjoint_population = serializers.BooleanField(
        required=False,
        default=False,
        help_text="This version holds people disjoint from earlier versions of the name: it gets its "
        "own budget instead of sharing theirs. Needs `population_reason`.",
    )
    population_reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ColumnChangeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    classification = serializers.CharField(required=False)
    kind = serializers.ChoiceField(choices=ColumnKind.choices, required=False)
    integer = serializers.BooleanField(required=False, help_text="Whole numbers only.")
    lower = serializers.JSONField(required=False, allow_null=True)
    upper = serializers.JSONField(required=False, allow_null=True)
    categories = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=200), required=False, max_length=5000
    )
    unit = serializers.CharField(required=False, allow_blank=True, max_length=40)
    nullable = serializers.BooleanField(required=False, help_text="Whether missing values are allowed.")
    decimals = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_DECIMALS,
        help_text="Numeric: the decimals values are recorded to; releases are rounded to it. Null: undeclared.",
    )
    allowed_values = serializers.ListField(
        child=serializers.FloatField(allow_null=False),
        required=False,
        allow_null=True,
        max_length=MAX_ALLOWED_VALUES,
        help_text="Numeric scores and codes: the only values the column takes; releases snap to the "
        "nearest. Null or []: undeclared.",
    )
    outcome = serializers.BooleanField(
        required=False,
        help_text="The outcome the train-on-synthetic test predicts (at most one per dataset).",
    )


class ColumnsInputSerializer(serializers.Serializer):
    columns = ColumnChangeSerializer(many=True, required=False, default=list)
    entity_column = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=255,
        help_text="The column identifying the person (patient id): the privacy unit. Empty: none.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("columns") and "entity_column" not in attrs:
            raise serializers.ValidationError(
                {"columns": "Give at least one column change or `entity_column`."}
            )
        return attrs


class DomainEstimateInputSerializer(serializers.Serializer):
    # Text, parsed exactly by the service (epsilon never passes through a float).
    epsilon = serializers.CharField(max_length=64)
    lower = serializers.JSONField(
        required=False, help_text="Numeric/date columns: lower end of a wide, public search range."
    )
    upper = serializers.JSONField(
        required=False, help_text="Numeric/date columns: upper end of a wide, public search range."
    )
    delta = serializers.CharField(
        max_length=64,
        required=False,
        help_text="Categorical/boolean columns: the delta of DP category discovery (default 1e-9).",
    )

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.roles import Role, has_role
from generation.models import SourceDataset

# Roles that hold custody of the data see value-revealing aggregates (min/max, top categories).
CUSTODIANS = (Role.DATA_STEWARD, Role.ADMIN, Role.PRIVACY_OFFICER, Role.AUDITOR)


class ColumnOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField(source="kind")
    classification = serializers.CharField()
    suggested_classification = serializers.CharField()
    suggestion_reason = serializers.CharField()
    missing_rate = serializers.FloatField()
    distinct = serializers.IntegerField()
    declared = serializers.DictField()
    outcome = serializers.SerializerMethodField()
    profile = serializers.SerializerMethodField()

    def get_outcome(self, obj: Any) -> bool:
        return bool(obj.declared.get("outcome"))

    def get_profile(self, obj: Any) -> dict[str, Any] | None:
        user = self.context.get("user")
        return obj.stats if has_role(user, *CUSTODIANS) else None


class BudgetOutputSerializer(serializers.Serializer):
    epsilon_cap = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_spent = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_remaining = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)


class DatasetOutputSerializer(serializers.ModelSerializer):
    columns = serializers.SerializerMethodField()
    budget = serializers.SerializerMethodField()
    holdout = serializers.SerializerMethodField()

    class Meta:
        model = SourceDataset
        fields = [
            "id",
            "name",
            "version",
            "status",
            "rows",
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
            "columns",
            "budget",
        ]

    def get_columns(self, obj: SourceDataset) -> list[dict[str, Any]]:
        columns = obj.columns.order_by("position")
        return ColumnOutputSerializer(columns, many=True, context=self.context).data  # type: ignore[return-value]

    def get_budget(self, obj: SourceDataset) -> dict[str, Any]:
        return BudgetOutputSerializer(obj).data  # type: ignore[return-value]

    def get_holdout(self, obj: SourceDataset) -> dict[str, Any]:
        return {"share": obj.holdout_share, "rows": obj.holdout_rows}


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


class ColumnChangeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    classification = serializers.CharField(required=False)
    lower = serializers.JSONField(required=False, allow_null=True)
    upper = serializers.JSONField(required=False, allow_null=True)
    categories = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=200), required=False, max_length=5000
    )
    unit = serializers.CharField(required=False, allow_blank=True, max_length=40)
    outcome = serializers.BooleanField(
        required=False,
        help_text="The outcome the train-on-synthetic test predicts (at most one per dataset).",
    )


class ColumnsInputSerializer(serializers.Serializer):
    columns = ColumnChangeSerializer(many=True, allow_empty=False)

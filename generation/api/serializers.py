from __future__ import annotations

from typing import Any

from rest_framework import serializers

from generation.models import SourceDataset


class ColumnOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField(source="kind")
    classification = serializers.CharField()
    missing_rate = serializers.FloatField()
    distinct = serializers.IntegerField()


class BudgetOutputSerializer(serializers.Serializer):
    epsilon_cap = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_spent = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
    epsilon_remaining = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)


class DatasetOutputSerializer(serializers.ModelSerializer):
    columns = serializers.SerializerMethodField()
    budget = serializers.SerializerMethodField()

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
            "columns",
            "budget",
        ]

    def get_columns(self, obj: SourceDataset) -> list[dict[str, Any]]:
        return ColumnOutputSerializer(obj.columns.order_by("position"), many=True).data  # type: ignore[return-value]

    def get_budget(self, obj: SourceDataset) -> dict[str, Any]:
        return BudgetOutputSerializer(obj).data  # type: ignore[return-value]


class DatasetInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    file = serializers.FileField(allow_empty_file=True)
    # Kept as text so the service parses it exactly (Decimal), never through a float.
    epsilon_cap = serializers.CharField(max_length=40)
    description = serializers.CharField(required=False, allow_blank=True, default="")

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import Release


class GateCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField()
    passed = serializers.BooleanField()


class ReleaseOutputSerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id")
    dataset = serializers.UUIDField(source="dataset_id")
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    privacy = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "request",
            "dataset",
            "title",
            "rows",
            "columns",
            "created_at",
            "expires_at",
            "audience",
            "synthesizer",
            "is_dp",
            "epsilon",
            "privacy",
            "gate",
            "metrics",
            "receipt",
            "sha256",
        ]

    def get_privacy(self, obj: Release) -> str:
        if obj.is_dp:
            return f"Differentially private: epsilon = {obj.epsilon} spent from the dataset's budget."
        return (
            f"Not differentially private ({obj.synthesizer}). Privacy rests on the release gate's tests only."
        )

    def get_gate(self, obj: Release) -> dict[str, Any]:
        checks = GateCheckSerializer(obj.gate.get("checks", []), many=True).data
        return {"passed": bool(obj.gate.get("passed")), "checks": checks}

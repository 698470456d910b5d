from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import Release
from validation.selectors import gate_visible_to, metrics_visible_to


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
    metrics = serializers.SerializerMethodField()

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

    def _user(self) -> Any:
        request = self.context.get("request")
        return getattr(request, "user", None)

    def get_gate(self, obj: Release) -> dict[str, Any]:
        # Everyone who sees the release sees the verdict and each check's name and result;
        # values are for oversight roles only (validation.selectors explains why).
        visible = gate_visible_to(user=self._user(), gate=obj.gate)
        checks = GateCheckSerializer(visible["checks"], many=True).data
        body = {"passed": visible["passed"], "checks": checks}
        if visible.get("overridden"):
            body.update(overridden=True, override=visible["override"])
        return body

    def get_metrics(self, obj: Release) -> dict[str, Any]:
        return metrics_visible_to(user=self._user(), metrics=obj.metrics, checks=obj.gate.get("checks", []))


class GlossaryEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField(source="entry.title")
    measures = serializers.CharField(source="entry.measures")
    good = serializers.CharField(source="entry.good")
    threshold_key = serializers.CharField(source="entry.threshold_key")
    why = serializers.CharField(source="entry.why")
    value = serializers.JSONField()
    threshold = serializers.JSONField()
    passed = serializers.BooleanField(allow_null=True)


class ReleaseReportOutputSerializer(serializers.Serializer):
    """The release's validation report as the caller may see it (full for oversight roles)."""

    release = serializers.UUIDField()
    full = serializers.BooleanField()
    gate = serializers.JSONField()
    metrics = serializers.JSONField()
    glossary = GlossaryEntrySerializer(many=True)

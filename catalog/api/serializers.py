from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to
from catalog.models import Release
from catalog.privacy import receipt_visible_to, release_privacy_of
from generation.models import ATTO
from generation.services import format_delta


class MechanismSerializer(serializers.Serializer):
    step = serializers.CharField(allow_null=True)
    mechanism = serializers.CharField(allow_null=True)
    library = serializers.CharField(allow_null=True)
    version = serializers.CharField(allow_null=True)
    epsilon = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True)
    sensitivity = serializers.JSONField(allow_null=True)


class SpentSerializer(serializers.Serializer):
    epsilon = serializers.FloatField()
    delta = serializers.FloatField()


class PrivacyBlockSerializer(serializers.Serializer):
    """Documents the `privacy` block's shape in the OpenAPI schema (the value is stored JSON)."""

    dp = serializers.BooleanField()
    unit = serializers.CharField(allow_null=True, help_text="patient or record; null when not DP")
    neighbouring = serializers.CharField(allow_null=True)
    epsilon = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True)
    flavour = serializers.CharField(allow_null=True)
    mechanisms = MechanismSerializer(many=True)
    covers = serializers.ListField(child=serializers.CharField())
    not_covered = serializers.ListField(child=serializers.CharField())
    source_spent = SpentSerializer()
    trust_model = serializers.CharField()


class GateCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField()
    passed = serializers.BooleanField()
    # passed / failed / not_run, why in plain words, and whether the tier requires it (issue 12).
    status = serializers.CharField(default="")
    reason = serializers.CharField(default="", allow_blank=True)
    required = serializers.BooleanField(default=False)


class ReleaseOutputSerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id")
    dataset = serializers.UUIDField(source="dataset_id")
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    delta = serializers.SerializerMethodField()
    privacy = serializers.SerializerMethodField()
    privacy_statement = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    receipt = serializers.SerializerMethodField()

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
            "delta",
            "privacy",
            "privacy_statement",
            "gate",
            "metrics",
            "receipt",
            "sha256",
        ]

    def get_delta(self, obj: Release) -> float | None:
        """The release's delta ((epsilon, delta) synthesizers); 0 for pure DP, null when not DP."""
        if not obj.is_dp:
            return None
        return float(Decimal(obj.delta_atto or 0) / ATTO)

    @extend_schema_field(PrivacyBlockSerializer)
    def get_privacy(self, obj: Release) -> dict[str, Any]:
        """What is and is not protected (NIST SP 800-226 fields): see catalog.privacy."""
        return release_privacy_of(obj)

    def get_privacy_statement(self, obj: Release) -> str:
        """One sentence for people: what the `privacy` block says."""
        if obj.is_dp:
            delta = f", delta = {format_delta(obj.delta_atto)}" if obj.delta_atto else ""
            return f"Differentially private: epsilon = {obj.epsilon}{delta} spent from the dataset's budget."
        return (
            f"Not differentially private ({obj.synthesizer}). Privacy rests on the release gate's tests only."
        )

    def get_receipt(self, obj: Release) -> dict[str, Any]:
        return receipt_visible_to(user=self._user(), receipt=obj.receipt or {}, is_dp=obj.is_dp)

    def _user(self) -> Any:
        request = self.context.get("request")
        return getattr(request, "user", None)

    def get_gate(self, obj: Release) -> dict[str, Any]:
        # Everyone who sees the release sees the verdict and each check's name and result;
        # values are for oversight roles only (validation.selectors explains why).
        # For a DP release, values (computed on the real rows, outside the budget) go to
        # custodians only: approvals.dp.dp_gate_visible_to.
        visible = dp_gate_visible_to(user=self._user(), gate=obj.gate, is_dp=obj.is_dp)
        checks = GateCheckSerializer(visible["checks"], many=True).data
        body = {
            "passed": visible["passed"],
            "checks": checks,
            "needs_acknowledgement": visible.get("needs_acknowledgement", []),
        }
        if visible.get("overridden"):
            body.update(overridden=True, override=visible["override"])
        return body

    def get_metrics(self, obj: Release) -> dict[str, Any]:
        return dp_metrics_visible_to(
            user=self._user(), metrics=obj.metrics, checks=obj.gate.get("checks", []), is_dp=obj.is_dp
        )


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

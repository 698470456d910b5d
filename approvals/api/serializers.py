from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import serializers

from approvals.choices import Audience, DecisionKind
from approvals.models import Decision, GenerationRequest


class DecisionOutputSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer_name")
    at = serializers.DateTimeField()

    class Meta:
        model = Decision
        fields = ["reviewer", "decision", "comment", "at", "review_round"]


class TierOutputSerializer(serializers.Serializer):
    level = serializers.CharField(source="tier_level")
    reasons = serializers.ListField(child=serializers.CharField(), source="tier_reasons")
    required_approvals = serializers.IntegerField()
    policy_version = serializers.CharField()
    controls = serializers.DictField(source="tier_controls")


class JobOutputSerializer(serializers.Serializer):
    state = serializers.CharField()
    progress = serializers.FloatField()
    attempts = serializers.IntegerField()
    stage = serializers.CharField()


class RequestOutputSerializer(serializers.ModelSerializer):
    requester = serializers.CharField(source="requester.username")
    dataset = serializers.UUIDField(source="dataset_id")
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    tier = serializers.SerializerMethodField()
    decisions = DecisionOutputSerializer(many=True)
    job = serializers.SerializerMethodField()
    release = serializers.SerializerMethodField()
    is_dp = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRequest
        fields = [
            "id",
            "title",
            "status",
            "requester",
            "dataset",
            "audience",
            "synthesizer",
            "epsilon",
            "is_dp",
            "purpose",
            "intended_use",
            "columns",
            "rows",
            "tier",
            "decisions",
            "job",
            "release",
            "created_at",
            "submitted_at",
        ]

    def get_tier(self, obj: GenerationRequest) -> dict[str, Any] | None:
        return TierOutputSerializer(obj).data if obj.tier_level else None  # type: ignore[return-value]

    def get_job(self, obj: GenerationRequest) -> dict[str, Any] | None:
        return JobOutputSerializer(obj.job).data if obj.job else None  # type: ignore[return-value]

    def get_release(self, obj: GenerationRequest) -> str | None:
        try:
            return str(obj.release.pk)  # type: ignore[attr-defined]
        except ObjectDoesNotExist:
            return None

    def get_is_dp(self, obj: GenerationRequest) -> bool:
        from generation.synthesizers import REGISTRY

        cls = REGISTRY.get(obj.synthesizer)
        return bool(cls and cls.is_dp)


class RequestInputSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    title = serializers.CharField(max_length=200)
    purpose = serializers.CharField()
    intended_use = serializers.CharField()
    audience = serializers.ChoiceField(choices=Audience.choices)
    columns = serializers.ListField(
        child=serializers.CharField(max_length=255), allow_empty=False, max_length=2000
    )
    synthesizer = serializers.CharField(max_length=40)
    rows = serializers.IntegerField(min_value=1)
    # Any JSON value: the service accepts only finite positive numbers (or null for non-DP).
    epsilon = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_epsilon(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise serializers.ValidationError("epsilon must be a number, or null for non-DP synthesizers.")
        return value


class DecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=DecisionKind.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

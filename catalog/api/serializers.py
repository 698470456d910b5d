from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to
from catalog.model_cards import model_card, model_card_summary
from catalog.models import Release, ReleaseKind
from catalog.privacy import receipt_visible_to, release_privacy_of
from catalog.selectors import RELEASE_STATES, release_state
from catalog.study_cards import sources_visible_to
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
    # Null for a federated study's model (origin "study"): its study is `study`, its site
    # datasets are `sources`.
    request = serializers.UUIDField(source="request_id", allow_null=True)
    dataset = serializers.UUIDField(source="dataset_id", allow_null=True)
    study = serializers.UUIDField(source="origin_ref", allow_null=True)
    sources = serializers.SerializerMethodField()
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    delta = serializers.SerializerMethodField()
    privacy = serializers.SerializerMethodField()
    privacy_statement = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    receipt = serializers.SerializerMethodField()
    model_card = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "origin",
            "request",
            "study",
            "dataset",
            "sources",
            "title",
            "kind",
            "artifact_format",
            "model_card",
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
        return _privacy_statement(obj)

    @extend_schema_field(serializers.ListField(child=serializers.JSONField()))
    def get_sources(self, obj: Release) -> list[dict[str, Any]]:
        """A study's site datasets (site, dataset, steward, epsilon debited); empty otherwise."""
        return sources_visible_to(user=self._user(), release=obj)

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

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_model_card(self, obj: Release) -> dict[str, Any] | None:
        """A model release's model card as the caller may see it (catalog.model_cards); null for a table."""
        return model_card(release=obj, user=self._user()) if obj.is_model else None

    def get_metrics(self, obj: Release) -> dict[str, Any]:
        return dp_metrics_visible_to(
            user=self._user(), metrics=obj.metrics, checks=obj.gate.get("checks", []), is_dp=obj.is_dp
        )


def _privacy_statement(obj: Release) -> str:
    if obj.is_from_study:
        delta = f", delta = {format_delta(obj.delta_atto)}" if obj.delta_atto else ""
        return (
            f"Federated model with client-level differential privacy: each site's ledger was debited "
            f"epsilon = {obj.epsilon}{delta} per record; its per-site holdout evaluation is outside the "
            "DP guarantee."
        )
    if obj.is_model:
        delta = f", delta = {format_delta(obj.delta_atto)}" if obj.delta_atto else ""
        return (
            f"Differentially private model: its parameters are protected at epsilon = {obj.epsilon}{delta}; "
            "its holdout evaluation is outside the DP guarantee."
        )
    if obj.is_dp:
        delta = f", delta = {format_delta(obj.delta_atto)}" if obj.delta_atto else ""
        return f"Differentially private: epsilon = {obj.epsilon}{delta} spent from the dataset's budget."
    return f"Not differentially private ({obj.synthesizer}). Privacy rests on the release gate's tests only."


class GateSummarySerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    overridden = serializers.BooleanField(help_text="Published by a two-officer override of a failed gate.")
    failed_checks = serializers.ListField(
        child=serializers.CharField(), help_text="Names of the checks that failed (values: the detail)."
    )


class ReleaseSummarySerializer(serializers.ModelSerializer):
    """One catalog list item (issue 16): what a reader chooses by. The gate's checks and values, the
    metrics, the privacy block and the receipt are on GET /api/v1/releases/{id}/ only; the list of
    a year's releases stays small (each release's metrics alone are tens of kilobytes)."""

    url = serializers.SerializerMethodField()
    request = serializers.UUIDField(source="request_id", allow_null=True)
    dataset = serializers.UUIDField(source="dataset_id", allow_null=True)
    study = serializers.UUIDField(source="origin_ref", allow_null=True)
    dataset_name = serializers.SerializerMethodField()
    team = serializers.SerializerMethodField()
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    delta = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    privacy_statement = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "url",
            "kind",
            "artifact_format",
            "model",
            "origin",
            "request",
            "study",
            "dataset",
            "dataset_name",
            "team",
            "title",
            "rows",
            "columns",
            "created_at",
            "expires_at",
            "withdrawn_at",
            "state",
            "audience",
            "synthesizer",
            "is_dp",
            "epsilon",
            "delta",
            "privacy_statement",
            "gate",
            "sha256",
        ]

    def get_url(self, obj: Release) -> str:
        """The detail endpoint: the full gate, metrics, privacy block and receipt."""
        return self.context["request"].build_absolute_uri(reverse("api-release-detail", args=[obj.pk]))

    def get_dataset_name(self, obj: Release) -> str:
        """The source dataset, or a study's site datasets (name and version each)."""
        if obj.dataset_id is None:
            return ", ".join(
                f"{s.get('dataset_name')} v{s.get('dataset_version')}" for s in obj.sources or []
            )
        return str(obj.dataset)

    def get_team(self, obj: Release) -> str | None:
        return obj.team.name if obj.team_id else None

    def get_delta(self, obj: Release) -> float | None:
        return float(Decimal(obj.delta_atto or 0) / ATTO) if obj.is_dp else None

    @extend_schema_field(serializers.ChoiceField(choices=RELEASE_STATES))
    def get_state(self, obj: Release) -> str:
        return release_state(obj)

    def get_privacy_statement(self, obj: Release) -> str:
        return _privacy_statement(obj)

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_model(self, obj: Release) -> dict[str, Any] | None:
        """A model release's summary (family, target, feature count, format); its card is on
        the detail. Null for a table."""
        return model_card_summary(obj) if obj.is_model else None

    @extend_schema_field(GateSummarySerializer)
    def get_gate(self, obj: Release) -> dict[str, Any]:
        # The verdict and the failed checks' names: everyone who sees the release sees these on
        # the detail too (the values are withheld there by role; none are given here).
        checks = (obj.gate or {}).get("checks") or []
        failed = [
            c.get("name", "")
            for c in checks
            if c.get("status", "passed" if c.get("passed") else "failed") == "failed"
        ]
        return {
            "passed": bool((obj.gate or {}).get("passed")),
            "overridden": bool((obj.gate or {}).get("overridden")),
            "failed_checks": failed,
        }


class ReleaseFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/releases/ (each narrows what the caller may see)."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Title contains.")
    kind = serializers.ChoiceField(
        choices=ReleaseKind.choices, required=False, allow_blank=True, help_text="table or model."
    )
    dataset = serializers.UUIDField(required=False, help_text="Source dataset id.")
    team = serializers.CharField(required=False, allow_blank=True, max_length=80, help_text="Team name.")
    dp = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: DP releases only; false: not DP."
    )
    state = serializers.ChoiceField(choices=RELEASE_STATES, required=False, allow_blank=True)
    published_from = serializers.DateField(required=False, help_text="First day included (UTC).")
    published_to = serializers.DateField(required=False, help_text="Last day included (UTC).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("published_from"), attrs.get("published_to")
        if start and end and start > end:
            raise serializers.ValidationError({"published_to": "Give a day on or after `published_from`."})
        return attrs


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

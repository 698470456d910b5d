"""Read-only audit API: the event log and chain verification, for auditors and officers."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent, AuditVerification, Outcome, VerificationMode, VerificationTrigger
from audit.selectors import (
    REASONS,
    ChainStatus,
    audit_chain_status,
    audit_events_filter,
    audit_events_visible_to,
)
from audit.services import audit_verification_run
from core.errors import NotFound
from core.pagination import PortalPagination
from core.roles import AUDIT_READERS, has_role


class IsAuditReader(BasePermission):
    """Auditors, privacy officers and admins. Anyone else signed in gets 404, as from the audit
    pages (audit.views.audit_reader_only): the log does not exist for them, and one answer for
    both keeps the pages and the API from telling a caller different things. Anonymous callers
    get 401 from IsAuthenticated, listed first."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not has_role(request.user, *AUDIT_READERS):
            # Raised, not returned: a False here is DRF's 403. Noted for the audit log by the
            # API's exception handler like any other 404.
            raise NotFound("Not found.")
        return True


class AuditEventFilterSerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, allow_blank=True, help_text="Exact username.")
    action = serializers.CharField(required=False, allow_blank=True, help_text="Substring of the action.")
    target = serializers.CharField(
        required=False, allow_blank=True, help_text="`type`, `type:id` or a bare id."
    )
    date_from = serializers.DateField(required=False, help_text="First day included (UTC).")
    date_to = serializers.DateField(required=False, help_text="Last day included (UTC).")


class AuditEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField(
        allow_null=True,
        help_text="Position in the chain; null while the event waits to be linked (sequenced mode).",
    )
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name", help_text="Username at the time; `system` for none.")
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    hash = serializers.CharField(allow_null=True, help_text="Chain hash; null while pending.")
    request_id = serializers.CharField()
    details = serializers.DictField(help_text="Ids and column names only, never data values.")


class AuditVerdictSerializer(serializers.Serializer):
    """A recorded verification (audit.models.AuditVerification). `ok` is null when none has run."""

    ok = serializers.BooleanField(allow_null=True)
    events = serializers.IntegerField(help_text="Events checked.")
    first_bad_seq = serializers.IntegerField(
        allow_null=True, help_text="First entry that cannot be trusted; null when intact."
    )
    # A CharField, not a ChoiceField: a generic `reason` enum would collide in the schema with
    # other endpoints' reasons. The codes are listed in the help text.
    reason = serializers.CharField(
        help_text="Why verification failed; empty when intact. One of: "
        + ", ".join(f"`{code}`" for code in REASONS)
        + " (docs/security.md explains each)."
    )
    detail = serializers.SerializerMethodField(help_text="The reason in words; empty when intact.")
    unkeyed_events = serializers.IntegerField(
        help_text="Entries written before keying (unkeyed SHA-256), accepted only as the chain's start."
    )
    checkpoints = serializers.IntegerField(help_text="Signed checkpoints whose signature verifies.")
    checkpoint_seq = serializers.IntegerField(
        allow_null=True, help_text="Head sequence number of the newest valid checkpoint."
    )
    bad_checkpoints = serializers.IntegerField(help_text="Checkpoint lines whose signature fails.")
    verified_at = serializers.DateTimeField(
        source="finished_at",
        allow_null=True,
        help_text="When the verification finished; null when none has run.",
    )
    mode = serializers.CharField(help_text="`full` (the whole chain) or `incremental` (after `from_seq`).")
    trigger = serializers.CharField(help_text="`manual`, `scheduled` or `command`.")
    from_seq = serializers.IntegerField(help_text="The walk started after this entry (0: the whole chain).")
    upto_seq = serializers.IntegerField(help_text="The last entry verified.")
    upto_hash = serializers.CharField(help_text="That entry's hash.")
    head_seq = serializers.IntegerField(help_text="The log's head now.")
    pending_events = serializers.IntegerField(
        help_text="Events committed but not linked into the chain yet, now (sequenced mode; else 0)."
    )
    oldest_pending_age_seconds = serializers.FloatField(
        allow_null=True, help_text="How long the oldest pending event has waited, now; null when none."
    )
    max_merge_delay_seconds = serializers.FloatField(
        help_text="The longest a pending event may wait; verification fails beyond it (`merge_delay_exceeded`)."
    )

    def get_detail(self, record: Any) -> str:
        return REASONS.get(record.reason, "")


def _verdict_data(record: AuditVerification | None, status: ChainStatus) -> dict[str, Any]:
    head_seq = status.head_seq
    live = {
        "pending_events": status.pending,
        "oldest_pending_age_seconds": status.oldest_pending_age,
        "max_merge_delay_seconds": status.max_merge_delay,
    }
    if record is None:
        # Nothing has run yet: the same fields, `ok` and `verified_at` null.
        return {
            "ok": None,
            "events": 0,
            "first_bad_seq": None,
            "reason": "",
            "detail": "",
            "unkeyed_events": 0,
            "checkpoints": 0,
            "checkpoint_seq": None,
            "bad_checkpoints": 0,
            "verified_at": None,
            "mode": "",
            "trigger": "",
            "from_seq": 0,
            "upto_seq": 0,
            "upto_hash": "",
            "head_seq": head_seq,
            **live,
        }
    record.head_seq = head_seq  # type: ignore[attr-defined]
    for name, value in live.items():
        setattr(record, name, value)
    return dict(AuditVerdictSerializer(record).data)


class AuditVerifyRunSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=VerificationMode.choices,
        default=VerificationMode.FULL,
        help_text="`full` (default) walks the whole chain; `incremental` starts after the last verified entry.",
    )


# The error shape every operation answers in (portal.api.errors adds the component to the schema).
# Listed here because the schema lists 404 by default only for paths that name an object.
NOT_AN_AUDIT_READER = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"},
    description="Not an auditor, privacy officer or admin: the log does not exist for you.",
)


class AuditEventPagination(PortalPagination):
    page_size = 100


class AuditEventListApi(ListAPIView):
    permission_classes = [IsAuthenticated, IsAuditReader]
    serializer_class = AuditEventSerializer
    pagination_class = AuditEventPagination

    def get_queryset(self) -> QuerySet[AuditEvent]:
        params = AuditEventFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        filters: dict[str, Any] = params.validated_data
        return audit_events_filter(audit_events_visible_to(user=self.request.user), **filters)

    @extend_schema(
        parameters=[AuditEventFilterSerializer],
        responses={200: AuditEventSerializer(many=True), 404: NOT_AN_AUDIT_READER},
        summary="Audit events, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AuditVerifyApi(APIView):
    """GET: the newest recorded verification (no walk: issue 16). POST: verify now, record the
    verdict and audit the run (`audit.verify`), answering the new record."""

    permission_classes = [IsAuthenticated, IsAuditReader]

    @extend_schema(
        responses={200: AuditVerdictSerializer, 404: NOT_AN_AUDIT_READER},
        summary="The latest recorded verification of the audit chain",
    )
    def get(self, request: Request) -> Response:
        status = audit_chain_status()
        return Response(_verdict_data(status.latest, status))

    @extend_schema(
        request=AuditVerifyRunSerializer,
        responses={200: AuditVerdictSerializer, 404: NOT_AN_AUDIT_READER},
        summary="Verify the audit chain now against the audit key and the signed checkpoints",
    )
    def post(self, request: Request) -> Response:
        params = AuditVerifyRunSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        record = audit_verification_run(
            mode=params.validated_data["mode"],
            trigger=VerificationTrigger.MANUAL,
            # IsAuthenticated ran first: a User, never AnonymousUser.
            actor=request.user,  # type: ignore[arg-type]
        )
        return Response(_verdict_data(record, audit_chain_status()))

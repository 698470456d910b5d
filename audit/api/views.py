"""Read-only audit API: the event log and chain verification, for auditors and officers."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent, Outcome
from audit.selectors import REASONS, audit_events_filter, audit_events_visible_to, audit_verify
from core.errors import NotFound
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
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name", help_text="Username at the time; `system` for none.")
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    hash = serializers.CharField()
    request_id = serializers.CharField()
    details = serializers.DictField(help_text="Ids and column names only, never data values.")


class AuditVerdictSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
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
    detail = serializers.CharField(help_text="The reason in words; empty when intact.")
    unkeyed_events = serializers.IntegerField(
        help_text="Entries written before keying (unkeyed SHA-256), accepted only as the chain's start."
    )
    checkpoints = serializers.IntegerField(help_text="Signed checkpoints whose signature verifies.")
    checkpoint_seq = serializers.IntegerField(
        allow_null=True, help_text="Head sequence number of the newest valid checkpoint."
    )
    bad_checkpoints = serializers.IntegerField(help_text="Checkpoint lines whose signature fails.")


# The error shape every operation answers in (portal.api.errors adds the component to the schema).
# Listed here because the schema lists 404 by default only for paths that name an object.
NOT_AN_AUDIT_READER = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"},
    description="Not an auditor, privacy officer or admin: the log does not exist for you.",
)


class AuditEventPagination(PageNumberPagination):
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
    permission_classes = [IsAuthenticated, IsAuditReader]

    @extend_schema(
        responses={200: AuditVerdictSerializer, 404: NOT_AN_AUDIT_READER},
        summary="Verify the audit chain against the audit key and the signed checkpoints",
    )
    def get(self, request: Request) -> Response:
        verdict = audit_verify()
        return Response(AuditVerdictSerializer(verdict).data)

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import rules
from approvals.api.serializers import GateOverrideDecisionInputSerializer
from approvals.services import request_get_for
from catalog.api.serializers import (
    ReleaseFilterSerializer,
    ReleaseOutputSerializer,
    ReleaseReportOutputSerializer,
    ReleaseSummarySerializer,
)
from catalog.downloads import release_file_response
from catalog.models import Release
from catalog.reports import report_visible_to
from catalog.selectors import release_list_rows, releases_filter, releases_visible_to
from catalog.services import gate_override_approve, release_get_for
from core.errors import PermissionDenied
from core.pagination import PortalPagination


class ReleaseListApi(ListAPIView):
    """Releases the caller may see, newest first, filtered, a page at a time; each item a summary
    (the full gate, metrics, privacy block and receipt: GET /api/v1/releases/{id}/)."""

    serializer_class = ReleaseSummarySerializer
    pagination_class = PortalPagination

    def get_queryset(self) -> QuerySet[Release]:
        params = ReleaseFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        visible = releases_filter(releases_visible_to(user=self.request.user), **params.validated_data)
        return release_list_rows(visible)

    @extend_schema(parameters=[ReleaseFilterSerializer], summary="Releases the caller may see, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ReleaseDetailApi(APIView):
    @extend_schema(responses=ReleaseOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        release = release_get_for(actor=request.user, release_id=release_id)
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data)


class ReleaseReportApi(APIView):
    @extend_schema(responses=ReleaseReportOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        release = release_get_for(actor=request.user, release_id=release_id)
        report = report_visible_to(
            user=request.user, gate=release.gate, metrics=release.metrics, is_dp=release.is_dp, charts=False
        )
        body = {
            "release": release.pk,
            "full": report["full_report"],
            "gate": report["gate"],
            "metrics": report["metrics"],
            "glossary": report["glossary"],
        }
        return Response(ReleaseReportOutputSerializer(body).data)


class ReleaseDownloadApi(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, release_id: str) -> StreamingHttpResponse:
        return release_file_response(actor=request.user, release_id=release_id)


class GateOverrideApproveApi(APIView):
    """Under /api/v1/requests/{id}/gate-override/approve/ (routed in portal.api.urls: publishing
    lives in catalog, the request in approvals)."""

    @extend_schema(request=GateOverrideDecisionInputSerializer, responses={201: ReleaseOutputSerializer})
    def post(self, request: Request, request_id: str) -> Response:
        """The second privacy officer approves the pending override; 201 with the new release."""
        item = request_get_for(actor=request.user, request_id=request_id)  # 404 for the unseen
        # Who is asking before the body and the override's state: anyone but a privacy officer
        # other than the requester gets 403 whatever they send (the proposer: the service's 403).
        if refusal := rules.override_officer_refusal(request.user, item):
            raise PermissionDenied(refusal)
        payload = GateOverrideDecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        release = gate_override_approve(
            actor=request.user, request_id=request_id, comment=payload.validated_data["comment"]
        )
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data, status=201)

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import GateOverrideDecisionInputSerializer
from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to, is_custodian
from approvals.services import request_get_for
from catalog.api.serializers import ReleaseOutputSerializer, ReleaseReportOutputSerializer
from catalog.selectors import releases_visible_to
from catalog.services import gate_override_approve, release_get_for, release_open_download
from validation.report import glossary_rows
from validation.selectors import sees_full_report


class ReleaseListApi(APIView):
    @extend_schema(responses=ReleaseOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        releases = releases_visible_to(user=request.user)
        return Response(ReleaseOutputSerializer(releases, many=True, context={"request": request}).data)


class ReleaseDetailApi(APIView):
    @extend_schema(responses=ReleaseOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        release = release_get_for(actor=request.user, release_id=release_id)
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data)


class ReleaseReportApi(APIView):
    @extend_schema(responses=ReleaseReportOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        release = release_get_for(actor=request.user, release_id=release_id)
        is_dp = release.is_dp
        full = sees_full_report(request.user) and (not is_dp or is_custodian(request.user))
        checks = release.gate.get("checks", [])
        body = {
            "release": release.pk,
            "full": full,
            "gate": dp_gate_visible_to(user=request.user, gate=release.gate, is_dp=is_dp),
            "metrics": dp_metrics_visible_to(
                user=request.user, metrics=release.metrics, checks=checks, is_dp=is_dp
            ),
            "glossary": glossary_rows(release.metrics, checks) if full else [],
        }
        return Response(ReleaseReportOutputSerializer(body).data)


def release_file_response(*, actor: object, release_id: str) -> StreamingHttpResponse:
    """Shared by the API and the page: authorize, audit, then stream the CSV, decrypted chunk by
    chunk. Its bytes are exactly those the release's `sha256` was computed over; formula-like
    cells were neutralised when the file was written (generation.csv_safety)."""
    release, opened = release_open_download(actor=actor, release_id=release_id)
    filename = f"{slugify(release.title)[:60] or 'release'}-{str(release.pk)[:8]}.csv"
    response = StreamingHttpResponse(opened.chunks, content_type="text/csv; charset=utf-8")
    response["Content-Length"] = str(opened.size)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


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
        request_get_for(actor=request.user, request_id=request_id)  # 404 before 400 for the unseen
        payload = GateOverrideDecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        release = gate_override_approve(
            actor=request.user, request_id=request_id, comment=payload.validated_data["comment"]
        )
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data, status=201)

"""GET /api/v1/requests/{id}/evidence/: a request's evidence package, for auditors and privacy
officers (catalog.evidence). Routed in portal.api.urls, beside the other request routes catalog
serves."""

from __future__ import annotations

import json
from typing import Any, cast

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from catalog.evidence import evidence_package
from core.ids import parse_uuid
from core.roles import PortalUser


class ZipRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/zip` (DRF answers 406 to media types no
    renderer offers); errors are still JSON bodies."""

    media_type = "application/zip"
    format = "zip"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")


class RequestEvidenceApi(APIView):
    renderer_classes = [JSONRenderer, ZipRenderer]

    def handle_exception(self, exc: Exception) -> Any:
        # Errors (401, 404, ...) are JSON whatever the client accepted: the zip renderer is for
        # the package only, which the view returns as a plain HttpResponse.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, request_id: str) -> HttpResponse:
        # IsAuthenticated (the API's default permission) lets only signed-in users this far.
        actor = cast("PortalUser", request.user)
        package = evidence_package(request_id=request_id, actor=actor)
        # The service refused anything but a well-formed id of a visible request by now.
        name = f"evidence-{parse_uuid(request_id)}.zip"
        response = HttpResponse(package, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response

from __future__ import annotations

from django.http import FileResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.serializers import ReleaseOutputSerializer
from catalog.selectors import releases_visible_to
from catalog.services import release_get_for, release_open_download


class ReleaseListApi(APIView):
    @extend_schema(responses=ReleaseOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ReleaseOutputSerializer(releases_visible_to(user=request.user), many=True).data)


class ReleaseDetailApi(APIView):
    @extend_schema(responses=ReleaseOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        return Response(
            ReleaseOutputSerializer(release_get_for(actor=request.user, release_id=release_id)).data
        )


def release_file_response(*, actor: object, release_id: str) -> FileResponse:
    """Shared by the API and the page: authorize, audit, then stream the CSV."""
    release, path = release_open_download(actor=actor, release_id=release_id)
    filename = f"{slugify(release.title)[:60] or 'release'}-{str(release.pk)[:8]}.csv"
    response = FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type="text/csv")
    response["Cache-Control"] = "no-store"
    return response


class ReleaseDownloadApi(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, release_id: str) -> FileResponse:
        return release_file_response(actor=request.user, release_id=release_id)

"""GET /api/v1/releases/{id}/lineage/: the release's lineage graph (catalog.lineage)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.lineage import release_lineage
from catalog.services import release_get_for


class LineageNodeOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField()
    # A declared field named like Field.label: DRF's metaclass takes it off the class, so the
    # serializer's own label is untouched; mypy only sees the class body.
    label = serializers.CharField()  # type: ignore[assignment]
    at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(allow_null=True)


# "from" is a Python keyword, so the edge's fields are declared through type().
LineageEdgeOutputSerializer = type(
    "LineageEdgeOutputSerializer",
    (serializers.Serializer,),
    {"from": serializers.CharField(), "to": serializers.CharField()},
)


class LineageOutputSerializer(serializers.Serializer):
    nodes = LineageNodeOutputSerializer(many=True)
    edges = LineageEdgeOutputSerializer(many=True)


class ReleaseLineageApi(APIView):
    @extend_schema(responses=LineageOutputSerializer)
    def get(self, request: Request, release_id: str) -> Response:
        """Source version to downloads, each node with the page that shows it (null when this user
        may not open that page); 404 for a release this user may not see."""
        release = release_get_for(actor=request.user, release_id=release_id)
        graph = release_lineage(release=release, user=request.user)
        return Response(LineageOutputSerializer(graph).data)

"""GET /api/v1/releases/{id}/card/: a release's data card (catalog.cards) as JSON, or with
`?format=croissant` as Croissant 1.0 JSON-LD with the RAI fields (application/ld+json).

Visibility is the release detail API's: a release outside the user's scope is 404."""

from __future__ import annotations

from typing import Any, cast

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.cards import card_to_croissant, release_card
from catalog.model_cards import model_card
from catalog.services import release_get_for
from core.errors import Conflict
from core.roles import PortalUser


class CroissantRenderer(JSONRenderer):
    """`?format=croissant` (DRF's format override) or `Accept: application/ld+json`."""

    media_type = "application/ld+json"
    format = "croissant"


class ReleaseCardApi(APIView):
    renderer_classes = [JSONRenderer, CroissantRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are the API's one JSON `Error` shape whichever format was asked for (the schema
        # documents them as application/json).
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=["json", "croissant"], description="croissant: Croissant 1.0 + RAI"
            )
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The data card"),
            (200, "application/ld+json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Croissant 1.0"),
        },
    )
    def get(self, request: Request, release_id: str, **_: Any) -> Response:
        # IsAuthenticated (the API's default permission) lets only signed-in users this far.
        actor = cast("PortalUser", request.user)
        release = release_get_for(actor=actor, release_id=release_id)
        if release.is_model:
            # A model has a model card (catalog.model_cards); Croissant describes datasets only.
            if request.accepted_renderer.format == CroissantRenderer.format:
                raise Conflict("A model release has a model card, not a Croissant dataset description.")
            return Response(model_card(release=release, user=actor))
        card = release_card(release=release, user=actor)
        if request.accepted_renderer.format != CroissantRenderer.format:
            return Response(card)
        download_url = request.build_absolute_uri(reverse("api-release-download", args=[release.pk]))
        return Response(card_to_croissant(card, download_url=download_url))

"""Choosing a bake-off candidate publishes a release, so its API view is catalog's (approvals may
not import the release path); it is routed under /api/v1/requests/{id}/choose/ in portal.api.urls."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.bakeoff import choose_refusal
from approvals.services import request_get_for
from catalog.services import bakeoff_choose
from core.errors import PermissionDenied
from core.roles import acting_user


class ChooseCandidateInputSerializer(serializers.Serializer):
    candidate = serializers.IntegerField(min_value=0, max_value=50)


class ChosenOutputSerializer(serializers.Serializer):
    release = serializers.UUIDField()
    request = serializers.UUIDField()
    candidate = serializers.IntegerField()


class RequestChooseCandidateApi(APIView):
    @extend_schema(request=ChooseCandidateInputSerializer, responses={201: ChosenOutputSerializer})
    def post(self, request: Request, request_id: str) -> Response:
        """Publish one bake-off candidate that passed the gate (the requester; a privacy officer
        for a high tier): 201 with the release id; 409 for a candidate that failed the gate or a
        request not awaiting a choice; 403 for anyone else who may see the request."""
        item = request_get_for(actor=request.user, request_id=request_id)  # 404 for the unseen
        # Who picks, before the body is read: anyone else gets 403 whatever they send.
        actor = acting_user(request.user)
        if refusal := choose_refusal(actor, requester_id=item.requester_id, tier_level=item.tier_level):
            raise PermissionDenied(refusal)
        payload = ChooseCandidateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        index = payload.validated_data["candidate"]
        release = bakeoff_choose(actor=request.user, request_id=request_id, index=index)
        body = {"release": release.pk, "request": release.request_id, "candidate": index}
        return Response(ChosenOutputSerializer(body).data, status=201)

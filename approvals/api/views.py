from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import (
    DecisionInputSerializer,
    DecisionOutputSerializer,
    RequestInputSerializer,
    RequestOutputSerializer,
)
from approvals.selectors import requests_visible_to
from approvals.services import (
    RequestInput,
    request_cancel,
    request_create,
    request_decide,
    request_get_for,
    request_submit,
)


def _render(request_obj: object) -> dict:
    return RequestOutputSerializer(request_obj).data  # type: ignore[return-value]


class RequestListCreateApi(APIView):
    @extend_schema(responses=RequestOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        items = requests_visible_to(user=request.user).prefetch_related("decisions")
        return Response(RequestOutputSerializer(items, many=True).data)

    @extend_schema(request=RequestInputSerializer, responses={201: RequestOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = RequestInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        created = request_create(
            actor=request.user,
            data=RequestInput(
                dataset_id=data["dataset"],
                title=data["title"],
                purpose=data["purpose"],
                intended_use=data["intended_use"],
                audience=data["audience"],
                columns=data["columns"],
                synthesizer=data["synthesizer"],
                rows=data["rows"],
                epsilon=data["epsilon"],
            ),
        )
        return Response(_render(created), status=201)


class RequestDetailApi(APIView):
    @extend_schema(responses=RequestOutputSerializer)
    def get(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_get_for(actor=request.user, request_id=request_id)))


class RequestSubmitApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_submit(actor=request.user, request_id=request_id)))


class RequestCancelApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_cancel(actor=request.user, request_id=request_id)))


class RequestDecisionApi(APIView):
    @extend_schema(request=DecisionInputSerializer, responses={201: DecisionOutputSerializer})
    def post(self, request: Request, request_id: str) -> Response:
        payload = DecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        decision = request_decide(
            actor=request.user,
            request_id=request_id,
            decision=payload.validated_data["decision"],
            comment=payload.validated_data["comment"],
        )
        return Response(DecisionOutputSerializer(decision).data, status=201)

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api.serializers import (
    DecisionInputSerializer,
    DecisionOutputSerializer,
    PreviewOutputSerializer,
    RequestInputSerializer,
    RequestOutputSerializer,
    RequestPreviewInputSerializer,
)
from approvals.selectors import requests_visible_to
from approvals.services import (
    RequestInput,
    request_cancel,
    request_create,
    request_decide_outcome,
    request_get_for,
    request_preview,
    request_submit,
    request_update,
)
from core.errors import ValidationFailed


def _render(request_obj: object) -> dict:
    return RequestOutputSerializer(request_obj).data  # type: ignore[return-value]


def _input(data: dict[str, Any]) -> RequestInput:
    return RequestInput(
        dataset_id=data["dataset"],
        title=data["title"],
        purpose=data["purpose"],
        intended_use=data["intended_use"],
        audience=data["audience"],
        columns=data["columns"],
        synthesizer=data["synthesizer"],
        rows=data["rows"],
        epsilon=data["epsilon"],
        fidelity=data["fidelity"],
        purpose_category=data["purpose_category"],
    )


class RequestListCreateApi(APIView):
    @extend_schema(responses=RequestOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        items = requests_visible_to(user=request.user).prefetch_related("decisions")
        return Response(RequestOutputSerializer(items, many=True).data)

    @extend_schema(request=RequestInputSerializer, responses={201: RequestOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = RequestInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        created = request_create(actor=request.user, data=_input(payload.validated_data))
        return Response(_render(created), status=201)


class RequestDetailApi(APIView):
    @extend_schema(responses=RequestOutputSerializer)
    def get(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_get_for(actor=request.user, request_id=request_id)))

    @extend_schema(request=RequestInputSerializer, responses=RequestOutputSerializer)
    def put(self, request: Request, request_id: str) -> Response:
        """Replace a draft's (or a changes-requested request's) fields; resubmit to re-tier it."""
        request_get_for(actor=request.user, request_id=request_id)  # 404 before 400 for the unseen
        payload = RequestInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = request_update(
            actor=request.user, request_id=request_id, data=_input(payload.validated_data)
        )
        return Response(_render(updated))


class RequestPreviewApi(APIView):
    @extend_schema(request=RequestPreviewInputSerializer, responses=PreviewOutputSerializer)
    def post(self, request: Request) -> Response:
        """What the active policy would decide if this request were submitted now (no writes)."""
        payload = RequestPreviewInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        preview = request_preview(actor=request.user, dataset_id=data.pop("dataset"), **data)
        if preview is None:
            raise ValidationFailed("Choose a dataset you may request from.", fields={"dataset": "unknown"})
        a = preview.assessment
        body = {
            "level": a.level,
            "reasons": a.reasons,
            "rules": [{"id": f.id, "tier": f.tier, "message": f.message} for f in a.fired],
            "required_approvals": a.required_approvals,
            "controls": a.controls,
            "suggestions": [{"change": s.change, "level": s.level} for s in preview.suggestions],
            "policy_version": str(preview.policy_number),
        }
        return Response(PreviewOutputSerializer(body).data)


class RequestSubmitApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_submit(actor=request.user, request_id=request_id)))


class RequestCancelApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request_cancel(actor=request.user, request_id=request_id)))


class RequestDecisionApi(APIView):
    @extend_schema(
        request=DecisionInputSerializer,
        responses={201: DecisionOutputSerializer, 200: DecisionOutputSerializer},
    )
    def post(self, request: Request, request_id: str) -> Response:
        """201 with the new decision; 200 with the earlier one when the reviewer repeats the
        decision they already made this round (a no-op)."""
        payload = DecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        decision, created = request_decide_outcome(
            actor=request.user,
            request_id=request_id,
            decision=payload.validated_data["decision"],
            comment=payload.validated_data["comment"],
            conditions=payload.validated_data["conditions"],
        )
        return Response(DecisionOutputSerializer(decision).data, status=201 if created else 200)

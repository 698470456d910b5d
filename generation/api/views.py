from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, ValidationFailed
from core.ids import parse_uuid
from core.roles import acting_user
from generation.api.serializers import (
    ColumnsInputSerializer,
    DatasetInputSerializer,
    DatasetOutputSerializer,
    DomainEstimateInputSerializer,
    budget_payload,
    ledger_payload,
    prefetch_columns,
    with_columns,
)
from generation.selectors import datasets_visible_to
from generation.services import (
    dataset_get_for_steward,
    dataset_register,
    dataset_request_domain_estimate,
    dataset_sign_off,
    dataset_update_columns,
)
from generation.services.stewards import require_steward
from generation.uploads import upload_was_too_large


def _render(dataset: Any, request: Request) -> dict[str, Any]:
    dataset = prefetch_columns(dataset)
    return DatasetOutputSerializer(dataset, context={"user": request.user}).data  # type: ignore[return-value]


class DatasetListCreateApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=DatasetOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        datasets = with_columns(datasets_visible_to(user=request.user))
        return Response(DatasetOutputSerializer(datasets, many=True, context={"user": request.user}).data)

    @extend_schema(request=DatasetInputSerializer, responses={201: DatasetOutputSerializer})
    def post(self, request: Request) -> Response:
        # Who is asking before the body is read: anyone but a steward gets 403 whatever they send.
        require_steward(acting_user(request.user), "dataset.register", "-")
        data = request.data  # parses the body; the size cap is enforced while it streams
        if upload_was_too_large(request):
            raise ValidationFailed(
                "The file is larger than the upload limit; upload a smaller extract.",
                code="file_too_large",
                fields={"file": "too_large"},
            )
        payload = DatasetInputSerializer(data=data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        dataset = dataset_register(
            actor=request.user,
            name=values["name"],
            uploaded_file=values["file"],
            epsilon_cap=values["epsilon_cap"],
            description=values.get("description", ""),
            encoding=values.get("encoding") or None,
            delimiter=values.get("delimiter") or None,
            disjoint_population=values.get("disjoint_population", False),
            population_reason=values.get("population_reason", ""),
        )
        return Response(_render(dataset, request), status=201)


def _visible(request: Request, dataset_id: str) -> Any:
    dataset = datasets_visible_to(user=request.user).filter(pk=parse_uuid(dataset_id)).first()
    if dataset is None:
        raise NotFound("No such dataset.")
    return dataset


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetOutputSerializer)
    def get(self, request: Request, dataset_id: str) -> Response:
        return Response(_render(_visible(request, dataset_id), request))


class DatasetBudgetApi(APIView):
    """The budget this dataset spends (its population's ledger): totals for everyone who may see
    the dataset, every entry (jobs, approvers) for custodians only."""

    @extend_schema(responses=None)
    def get(self, request: Request, dataset_id: str) -> Response:
        return Response(ledger_payload(_visible(request, dataset_id), request.user))


class DatasetColumnsApi(APIView):
    """Stewards edit classifications and declared metadata; any edit reopens review."""

    parser_classes = [JSONParser]

    @extend_schema(request=ColumnsInputSerializer, responses=DatasetOutputSerializer)
    def patch(self, request: Request, dataset_id: str) -> Response:
        # 404 for a dataset the caller may not see, then 403 for a non-steward, before the body.
        dataset_get_for_steward(actor=request.user, dataset_id=dataset_id, action="dataset.review")
        payload = ColumnsInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = [dict(item) for item in payload.validated_data.get("columns", [])]
        dataset = dataset_update_columns(
            actor=request.user,
            dataset_id=dataset_id,
            changes=changes,
            entity_column=payload.validated_data.get("entity_column"),
        )
        return Response(_render(dataset, request))


class DatasetColumnEstimateApi(APIView):
    """Stewards spend budget on a DP domain for a column (bounds for numeric/date columns, category
    discovery for categorical/boolean ones); a worker computes it."""

    parser_classes = [JSONParser]

    @extend_schema(request=DomainEstimateInputSerializer, responses={202: None})
    def post(self, request: Request, dataset_id: str, column: str) -> Response:
        # 404 for a dataset the caller may not see, then 403 for a non-steward, before the body.
        dataset_get_for_steward(actor=request.user, dataset_id=dataset_id, action="dataset.domain_estimate")
        payload = DomainEstimateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        entry = dataset_request_domain_estimate(
            actor=request.user,
            dataset_id=dataset_id,
            column=column,
            epsilon=values["epsilon"],
            lower=values.get("lower"),
            upper=values.get("upper"),
            delta=values.get("delta"),
        )
        body = {
            "column": column,
            "state": "queued",
            "ledger_entry": entry.pk,
            "epsilon": entry.amount,
            "budget": budget_payload(entry.source),
        }
        return Response(body, status=202)


class DatasetSignOffApi(APIView):
    @extend_schema(request=None, responses=DatasetOutputSerializer)
    def post(self, request: Request, dataset_id: str) -> Response:
        return Response(_render(dataset_sign_off(actor=request.user, dataset_id=dataset_id), request))

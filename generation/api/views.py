from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, ValidationFailed
from core.ids import parse_uuid
from core.pagination import PortalPagination
from core.roles import acting_user
from generation.api.serializers import (
    ColumnsInputSerializer,
    DatasetFilterSerializer,
    DatasetInputSerializer,
    DatasetOutputSerializer,
    DomainEstimateInputSerializer,
    LedgerEntrySerializer,
    budget_payload,
    ledger_payload,
    listed_columns_of,
    prefetch_columns,
)
from generation.models import BudgetLedgerEntry, SourceDataset
from generation.policies import sees_exact_figures
from generation.selectors import (
    datasets_filter,
    datasets_visible_to,
    ledger_entries_visible_to,
)
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


class DatasetListCreateApi(ListAPIView):
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = DatasetOutputSerializer
    pagination_class = PortalPagination

    def get_queryset(self) -> QuerySet[SourceDataset]:
        params = DatasetFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        visible = datasets_filter(datasets_visible_to(user=self.request.user), **params.validated_data)
        # The ledger owner joined (owner_loaded); the page's columns are read in one query by
        # paginate_queryset: no query per dataset.
        return visible.select_related("population")

    def paginate_queryset(self, queryset: QuerySet[SourceDataset]) -> list[SourceDataset] | None:
        rows = super().paginate_queryset(queryset)
        return None if rows is None else listed_columns_of(rows)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "user": self.request.user, "owner_loaded": True}

    @extend_schema(parameters=[DatasetFilterSerializer], summary="Datasets the caller may see, by name")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Filtered, a page at a time (API.md's count/next/previous/results): the same number of
        queries for a page of 3 or of 200."""
        return super().get(request, *args, **kwargs)

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
        dataset = _visible(request, dataset_id)
        entries_url = request.build_absolute_uri(reverse("api-dataset-ledger", args=[dataset.pk]))
        return Response(ledger_payload(dataset, request.user, entries_url=entries_url))


class DatasetLedgerApi(ListAPIView):
    """Every entry of the ledger the dataset spends, oldest first, a page at a time. Custodians
    only: to anyone else who may see the dataset the entries do not exist (404), as `/budget/`
    gives them totals and `"entries": null`."""

    serializer_class = LedgerEntrySerializer
    pagination_class = PortalPagination

    def get_queryset(self) -> QuerySet[BudgetLedgerEntry]:
        dataset = _visible(self.request, self.kwargs["dataset_id"])
        if not sees_exact_figures(self.request.user):
            raise NotFound("No such ledger.")
        return ledger_entries_visible_to(user=self.request.user, dataset=dataset)

    @extend_schema(summary="A dataset's budget ledger, oldest entry first (custodians)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


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

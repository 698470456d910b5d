from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.ids import parse_uuid
from generation.api.serializers import DatasetInputSerializer, DatasetOutputSerializer
from generation.selectors import datasets_visible_to
from generation.services import dataset_register


class DatasetListCreateApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=DatasetOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        datasets = datasets_visible_to(user=request.user).prefetch_related("columns")
        return Response(DatasetOutputSerializer(datasets, many=True).data)

    @extend_schema(request=DatasetInputSerializer, responses={201: DatasetOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = DatasetInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        dataset = dataset_register(
            actor=request.user,
            name=payload.validated_data["name"],
            uploaded_file=payload.validated_data["file"],
            epsilon_cap=payload.validated_data["epsilon_cap"],
            description=payload.validated_data.get("description", ""),
        )
        return Response(DatasetOutputSerializer(dataset).data, status=201)


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetOutputSerializer)
    def get(self, request: Request, dataset_id: str) -> Response:
        dataset = datasets_visible_to(user=request.user).filter(pk=parse_uuid(dataset_id)).first()
        if dataset is None:
            raise NotFound("No such dataset.")
        return Response(DatasetOutputSerializer(dataset).data)

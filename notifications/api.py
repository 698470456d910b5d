"""The inbox over the API: GET /api/v1/notifications/, POST /api/v1/notifications/read/.

Mounted by portal/api/urls.py (no namespace, so names carry a notifications- prefix).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import PortalPagination
from notifications.models import Notification, NotificationKind
from notifications.selectors import notifications_of
from notifications.services import mark_read


class NotificationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=NotificationKind.choices)
    message = serializers.CharField()
    url = serializers.CharField(help_text="The page where the action is.")
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class NotificationListApi(ListAPIView):
    serializer_class = NotificationOutputSerializer
    pagination_class = PortalPagination

    def get_queryset(self) -> QuerySet[Notification]:
        return notifications_of(self.request.user)

    @extend_schema(summary="Your notifications, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class NotificationReadApi(APIView):
    class NotificationReadInputSerializer(serializers.Serializer):
        # Bounded like the primary key (a BigAutoField): a larger id cannot name a row, and would
        # overflow the database's integer before the lookup (the fuzz found a 500 on SQLite).
        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), max_length=1000
        )

    class OutputSerializer(serializers.Serializer):
        marked = serializers.IntegerField(help_text="How many of your unread notifications were marked.")

    @extend_schema(
        request=NotificationReadInputSerializer,
        responses={200: OutputSerializer},
        summary="Mark notifications read",
    )
    def post(self, request: Request) -> Response:
        data = self.NotificationReadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        marked = mark_read(user=request.user, ids=data.validated_data["ids"])
        return Response(self.OutputSerializer({"marked": marked}).data)


urlpatterns = [
    path("", NotificationListApi.as_view(), name="notifications-list"),
    path("read/", NotificationReadApi.as_view(), name="notifications-read"),
]

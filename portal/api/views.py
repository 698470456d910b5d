from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_denied, audit_record


class TokenApi(APIView):
    """Exchange a username and password for an API token (throttled; audited without secrets)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "auth"

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("TokenOut", {"token": serializers.CharField()}),
    )
    def post(self, request: Request) -> Response:
        payload = AuthTokenSerializer(data=request.data, context={"request": request})
        if not payload.is_valid():
            username = str(request.data.get("username", ""))[:150]
            audit_denied(
                actor=None,
                action="auth.token",
                target_type="user",
                target_id=username or "-",
                reason="bad credentials",
            )
            payload.is_valid(raise_exception=True)
        user = payload.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        audit_record(actor=user, action="auth.token", target_type="user", target_id=user.pk)
        return Response({"token": token.key})

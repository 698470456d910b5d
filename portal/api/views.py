from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.errors import error_response
from portal.auth_mfa import mfa_enrolled, mfa_required_for, mfa_verify
from portal.auth_tokens import token_issue


def _error(code: str, message: str, http_status: int = 400, fields: dict[str, str] | None = None) -> Response:
    return error_response(code, message, http_status, fields)


class TokenApi(APIView):
    """Exchange a username, password (and second-factor code) for a new, expiring API token.

    The password goes through `authenticate(request=...)`, so django-axes counts every failure
    per account and per client address and refuses locked-out ones before checking anything;
    DRF's `auth` throttle (in the shared cache) limits the rate per address. Failures and
    lockouts are audited by portal.auth_signals, without secrets.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "auth"

    class TokenInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(
            max_length=4096, trim_whitespace=False, style={"input_type": "password"}
        )
        otp = serializers.CharField(
            max_length=16, required=False, allow_blank=True, help_text="Code from the authenticator app."
        )

    @extend_schema(
        request=TokenInputSerializer,
        responses={
            200: inline_serializer("TokenOut", {"token": serializers.CharField()}),
            400: inline_serializer("TokenError", {"error": serializers.DictField()}),
            429: inline_serializer("TokenLocked", {"error": serializers.DictField()}),
        },
    )
    def post(self, request: Request) -> Response:
        payload = self.TokenInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        user = authenticate(request=request, username=data["username"], password=data["password"])
        if getattr(request, "axes_locked_out", False):
            return _error(
                "locked_out",
                "Too many failed sign-ins for this account or address; wait and try again, or ask an admin.",
                status.HTTP_429_TOO_MANY_REQUESTS,
            )
        if user is None:
            return _error("invalid_credentials", "Unable to log in with provided credentials.")
        if mfa_enrolled(user):
            if not data.get("otp"):
                return _error(
                    "otp_required",
                    "This account has a second factor: send the current code from your app as `otp`.",
                    fields={"otp": "required"},
                )
            if mfa_verify(user=user, code=data["otp"], channel="api") is None:
                return _error(
                    "otp_invalid", "The `otp` code is wrong or was already used.", fields={"otp": "invalid"}
                )
        elif mfa_required_for(user):
            return _error(
                "mfa_enrolment_required",
                "Your role needs a second factor: sign in to the portal in a browser and enrol one first.",
            )
        issued = token_issue(user=user, channel="api")
        return Response({"token": issued.key})

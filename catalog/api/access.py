"""API for enforced access (catalog.access): renew, withdraw, access requests and their decisions.

Each view parses, calls one service and renders; the services authorize and audit. Expired and
withdrawn downloads answer 410 from the shared download path (catalog.downloads)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.access import (
    access_request_authorize_decision,
    access_request_check_asker,
    access_request_create,
    access_request_decide,
    access_request_revoke,
    access_requests_visible_to,
    dataset_withdraw_releases,
    release_downloaders,
    release_renew,
    release_withdraw,
)
from catalog.models import AccessRequestStatus
from core.errors import NotFound, ValidationFailed
from core.ids import first_by_uuid
from core.pagination import PortalPagination, paginated_response
from core.roles import acting_user
from generation.selectors import datasets_visible_to


def _field(request: Request, name: str) -> str:
    """A text field read without validating first: the service checks who is asking before the
    input, so a non-officer gets 403 whatever is sent; the service validates the text."""
    data = request.data
    value = data.get(name, "") if isinstance(data, dict) else ""
    return value if isinstance(value, str) else ""


class DownloaderOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    downloads = serializers.IntegerField()
    last_at = serializers.DateTimeField()


class ReleaseStateOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField(allow_null=True)
    is_expired = serializers.BooleanField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    withdrawn_reason = serializers.CharField()
    withdrawn_by_name = serializers.CharField()
    downloaders = DownloaderOutputSerializer(many=True, required=False)


class AccessRequestOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    release = serializers.UUIDField(source="release_id")
    requester = serializers.CharField(source="requester_name")
    purpose = serializers.CharField()
    requested_expires_at = serializers.DateTimeField()
    status = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by_name")
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_comment = serializers.CharField()
    grant_expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ReleaseRenewApi(APIView):
    class ReleaseRenewInputSerializer(serializers.Serializer):
        expires_at = serializers.DateTimeField()

    @extend_schema(request=ReleaseRenewInputSerializer, responses=ReleaseStateOutputSerializer)
    def post(self, request: Request, release_id: str) -> Response:
        """A privacy officer moves the release's expiry to a later date (403 for anyone else)."""
        # The service checks who is asking before the input (403 whatever is sent).
        body = self.ReleaseRenewInputSerializer(data=request.data)
        expires_at = body.validated_data["expires_at"] if body.is_valid() else None
        release = release_renew(actor=acting_user(request.user), release_id=release_id, expires_at=expires_at)
        return Response(ReleaseStateOutputSerializer(release).data)


class ReleaseWithdrawApi(APIView):
    class ReleaseWithdrawInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=ReleaseWithdrawInputSerializer, responses=ReleaseStateOutputSerializer)
    def post(self, request: Request, release_id: str) -> Response:
        """A privacy officer withdraws the release; downloads then answer 410 with the reason."""
        release = release_withdraw(
            actor=acting_user(request.user), release_id=release_id, reason=_field(request, "reason")
        )
        # Who to follow up with: everyone who downloaded it before the withdrawal.
        body = {**ReleaseStateOutputSerializer(release).data}
        body["downloaders"] = DownloaderOutputSerializer(release_downloaders(release=release), many=True).data
        return Response(body)


class ReleaseAccessRequestCreateApi(APIView):
    class AccessRequestCreateInputSerializer(serializers.Serializer):
        purpose = serializers.CharField(max_length=2000)
        expires_at = serializers.DateTimeField()

    @extend_schema(request=AccessRequestCreateInputSerializer, responses={201: AccessRequestOutputSerializer})
    def post(self, request: Request, release_id: str) -> Response:
        """Ask for access to a release whose card you can find but whose data you cannot use."""
        access_request_check_asker(actor=acting_user(request.user), release_id=release_id)  # before the input
        body = self.AccessRequestCreateInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = access_request_create(
            actor=acting_user(request.user), release_id=release_id, **body.validated_data
        )
        return Response(AccessRequestOutputSerializer(created).data, status=status.HTTP_201_CREATED)


class AccessRequestListApi(APIView):
    pagination_class = PortalPagination  # for the schema: the API.md page shape

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=AccessRequestStatus.values, description="Only this status."),
        ],
        responses=AccessRequestOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """Officers and auditors see every access request; everyone else their own. Newest first,
        paged (`count`, `next`, `previous`, `results`)."""
        rows = access_requests_visible_to(user=request.user).order_by("-created_at", "pk")
        status_ = request.query_params.get("status")
        if status_:
            if status_ not in AccessRequestStatus.values:
                raise ValidationFailed(
                    "Filter by a known status.", fields={"status": " | ".join(AccessRequestStatus.values)}
                )
            rows = rows.filter(status=status_)
        return paginated_response(
            request, rows, lambda page: AccessRequestOutputSerializer(page, many=True).data, view=self
        )


class AccessRequestDecisionApi(APIView):
    class AccessRequestDecisionInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["grant", "refuse"])
        comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    @extend_schema(
        request=AccessRequestDecisionInputSerializer, responses={201: AccessRequestOutputSerializer}
    )
    def post(self, request: Request, access_request_id: str) -> Response:
        """A privacy officer grants (until `expires_at`, by default the date asked for) or refuses."""
        body = self.AccessRequestDecisionInputSerializer(data=request.data)
        if not body.is_valid():
            # Who is asking is checked before the input: a non-officer gets 403 whatever is sent.
            access_request_authorize_decision(actor=acting_user(request.user), request_id=access_request_id)
            raise serializers.ValidationError(body.errors)
        decided = access_request_decide(
            actor=acting_user(request.user), request_id=access_request_id, **body.validated_data
        )
        return Response(AccessRequestOutputSerializer(decided).data, status=status.HTTP_201_CREATED)


class AccessRequestRevokeApi(APIView):
    class AccessRequestRevokeInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=AccessRequestRevokeInputSerializer, responses=AccessRequestOutputSerializer)
    def post(self, request: Request, access_request_id: str) -> Response:
        """A privacy officer revokes a grant; the grantee loses the release at once."""
        revoked = access_request_revoke(
            actor=acting_user(request.user), request_id=access_request_id, reason=_field(request, "reason")
        )
        return Response(AccessRequestOutputSerializer(revoked).data)


class AccessRequestDetailApi(APIView):
    @extend_schema(responses=AccessRequestOutputSerializer)
    def get(self, request: Request, access_request_id: str) -> Response:
        found = first_by_uuid(access_requests_visible_to(user=request.user), access_request_id)
        if found is None:
            raise NotFound("No such access request.")
        return Response(AccessRequestOutputSerializer(found).data)


class DatasetWithdrawReleasesApi(APIView):
    class DatasetWithdrawInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    class DatasetWithdrawOutputSerializer(serializers.Serializer):
        dataset = serializers.UUIDField()
        withdrawn = ReleaseStateOutputSerializer(many=True, help_text="The releases this call withdrew.")

    @extend_schema(request=DatasetWithdrawInputSerializer, responses=DatasetWithdrawOutputSerializer)
    def post(self, request: Request, dataset_id: str) -> Response:
        """A privacy officer withdraws every release of a source dataset version (an incident in
        the source); their downloads then answer 410 with the reason. 404 for a dataset the caller
        cannot see, 403 (audited) for anyone but a privacy officer."""
        withdrawn = dataset_withdraw_releases(
            actor=acting_user(request.user), dataset_id=dataset_id, reason=_field(request, "reason")
        )
        # The service found it visible a moment ago; the canonical id, whatever spelling was sent.
        dataset = first_by_uuid(datasets_visible_to(user=request.user), dataset_id)
        assert dataset is not None
        body = {
            "dataset": str(dataset.pk),
            "withdrawn": ReleaseStateOutputSerializer(withdrawn, many=True).data,
        }
        return Response(body)


# For catalog/api/urls.py (under /api/v1/releases/):
release_urlpatterns = [
    path("<str:release_id>/renew/", ReleaseRenewApi.as_view(), name="api-release-renew"),
    path("<str:release_id>/withdraw/", ReleaseWithdrawApi.as_view(), name="api-release-withdraw"),
    path(
        "<str:release_id>/access-requests/",
        ReleaseAccessRequestCreateApi.as_view(),
        name="api-release-access-request-create",
    ),
]

# For portal/api/urls.py: path("access-requests/", include(access_request_urlpatterns)).
access_request_urlpatterns = [
    path("", AccessRequestListApi.as_view(), name="api-access-request-list"),
    path("<str:access_request_id>/", AccessRequestDetailApi.as_view(), name="api-access-request-detail"),
    path(
        "<str:access_request_id>/decisions/",
        AccessRequestDecisionApi.as_view(),
        name="api-access-request-decide",
    ),
    path(
        "<str:access_request_id>/revoke/", AccessRequestRevokeApi.as_view(), name="api-access-request-revoke"
    ),
]

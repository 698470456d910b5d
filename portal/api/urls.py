from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from catalog.api.access import DatasetWithdrawReleasesApi, access_request_urlpatterns
from catalog.api.bakeoff import RequestChooseCandidateApi
from catalog.api.evidence import RequestEvidenceApi
from catalog.api.views import GateOverrideApproveApi
from portal.api.views import TokenApi

urlpatterns = [
    path("auth/token/", TokenApi.as_view(), name="api-token"),
    # Withdrawing a dataset's releases is catalog's (catalog.access); before the datasets include.
    path(
        "datasets/<str:dataset_id>/withdraw-releases/",
        DatasetWithdrawReleasesApi.as_view(),
        name="api-dataset-withdraw-releases",
    ),
    path("datasets/", include("generation.api.urls")),
    # Approving an override publishes a release, so its view is catalog's (see its docstring).
    path(
        "requests/<str:request_id>/gate-override/approve/",
        GateOverrideApproveApi.as_view(),
        name="api-request-gate-override-approve",
    ),
    # Choosing a bake-off candidate publishes it: catalog's view too.
    path("requests/<str:request_id>/choose/", RequestChooseCandidateApi.as_view(), name="api-request-choose"),
    # The evidence package joins approvals' request with catalog's release: catalog's view.
    path("requests/<str:request_id>/evidence/", RequestEvidenceApi.as_view(), name="api-request-evidence"),
    path("requests/", include("approvals.api.urls")),
    path("releases/", include("catalog.api.urls")),
    path("studies/", include("federation.api_urls")),
    path("audit/", include("audit.api.urls")),
    path("access-requests/", include(access_request_urlpatterns)),
    path("notifications/", include("notifications.api")),
    # The schema documents the contract, not data: readable without signing in.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

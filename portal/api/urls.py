from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from portal.api.views import TokenApi

urlpatterns = [
    path("auth/token/", TokenApi.as_view(), name="api-token"),
    path("datasets/", include("generation.api.urls")),
    path("requests/", include("approvals.api.urls")),
    path("releases/", include("catalog.api.urls")),
    path("audit/", include("audit.api.urls")),
    # The schema documents the contract, not data: readable without signing in.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

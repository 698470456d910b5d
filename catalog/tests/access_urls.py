"""A test URLconf: the project's routes plus catalog.access's, which are not registered yet.

The access pages come first inside the `catalog` namespace (before the release-id routes), and
the API routes before portal.api's."""

from __future__ import annotations

from django.urls import include, path

from catalog import access_views
from catalog import urls as catalog_urls
from catalog.api.access import access_request_urlpatterns, release_urlpatterns

catalog_routes = [
    *access_views.urlpatterns,
    *catalog_urls.urlpatterns,
]

urlpatterns = [
    path("catalog/", include((catalog_routes, "catalog"))),
    path("api/v1/releases/", include(release_urlpatterns)),
    path("api/v1/access-requests/", include(access_request_urlpatterns)),
    # By its dotted name: catalog sits below portal (tests/test_layers.py).
    path("", include("portal.urls")),
]
handler404 = "portal.api.errors.page_not_found"
handler500 = "portal.api.errors.server_error"

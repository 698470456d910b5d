from django.urls import path

from catalog.api import views
from catalog.api.access import release_urlpatterns as access_release_urlpatterns
from catalog.api.cards import ReleaseCardApi
from catalog.api.lineage import ReleaseLineageApi

urlpatterns = [
    path("", views.ReleaseListApi.as_view(), name="api-release-list"),
    path("<str:release_id>/", views.ReleaseDetailApi.as_view(), name="api-release-detail"),
    path("<str:release_id>/download/", views.ReleaseDownloadApi.as_view(), name="api-release-download"),
    path("<str:release_id>/report/", views.ReleaseReportApi.as_view(), name="api-release-report"),
    path("<str:release_id>/card/", ReleaseCardApi.as_view(), name="api-release-card"),
    path("<str:release_id>/lineage/", ReleaseLineageApi.as_view(), name="api-release-lineage"),
    # Renew, withdraw, request access.
    *access_release_urlpatterns,
]

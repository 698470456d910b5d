from django.urls import path

from catalog import access_views, bakeoff_views, governance_views, lineage_views, views

app_name = "catalog"
urlpatterns = [
    path("", views.release_list, name="release-list"),
    path("jobs/<str:job_id>/report/", views.job_report, name="job-report"),
    path(
        "overrides/<str:request_id>/propose/", views.gate_override_propose_view, name="gate-override-propose"
    ),
    path("overrides/<str:request_id>/decide/", views.gate_override_decide_view, name="gate-override-decide"),
    path("bakeoffs/<str:request_id>/choose/", bakeoff_views.bakeoff_choose_view, name="bakeoff-choose"),
    # Before the release routes, or "governance" would be read as a release id.
    path("governance/", governance_views.governance_dashboard, name="governance"),
    # Access requests, withdrawal and renewal; "access-requests/" before the release-id routes too.
    *access_views.urlpatterns,
    path("<str:release_id>/", views.release_detail, name="release-detail"),
    path("<str:release_id>/lineage/", lineage_views.release_lineage_view, name="release-lineage"),
    path("<str:release_id>/download/", views.release_download, name="release-download"),
    path("<str:release_id>/report.html", views.release_report_export, name="release-report-export"),
]

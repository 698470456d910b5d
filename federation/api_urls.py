from __future__ import annotations

from django.urls import path

from federation import api

urlpatterns = [
    path("", api.StudyListCreateApi.as_view(), name="api-study-list"),
    path("<str:study_id>/", api.StudyDetailApi.as_view(), name="api-study-detail"),
    path("<str:study_id>/submit/", api.StudySubmitApi.as_view(), name="api-study-submit"),
    path("<str:study_id>/decisions/", api.StudyDecisionApi.as_view(), name="api-study-decisions"),
    path("<str:study_id>/cancel/", api.StudyCancelApi.as_view(), name="api-study-cancel"),
    path("<str:study_id>/evidence/", api.StudyEvidenceApi.as_view(), name="api-study-evidence"),
]

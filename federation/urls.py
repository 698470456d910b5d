from __future__ import annotations

from django.urls import path

from federation import views

app_name = "federation"

urlpatterns = [
    path("", views.study_list, name="study-list"),
    path("new/", views.study_new, name="study-new"),
    path("<str:study_id>/", views.study_detail, name="study-detail"),
    path("<str:study_id>/progress/", views.study_progress, name="study-progress"),
    path("<str:study_id>/submit/", views.study_submit_view, name="study-submit"),
    path("<str:study_id>/decide/", views.study_decide_view, name="study-decide"),
    path("<str:study_id>/cancel/", views.study_cancel_view, name="study-cancel"),
]

from django.urls import path

from approvals import views

app_name = "approvals"
urlpatterns = [
    path("", views.request_list, name="request-list"),
    path("new/", views.request_new, name="request-new"),
    path("preview/", views.request_preview_view, name="request-preview"),
    path("review/", views.review_queue_view, name="review-queue"),
    path("evidence/", views.review_evidence, name="review-evidence"),
    path("checks/", views.check_glossary, name="check-glossary"),
    path("<str:request_id>/", views.request_detail, name="request-detail"),
    path("<str:request_id>/edit/", views.request_edit, name="request-edit"),
    path("<str:request_id>/job/", views.request_job, name="request-job"),
    path("<str:request_id>/submit/", views.request_submit_view, name="request-submit"),
    path("<str:request_id>/cancel/", views.request_cancel_view, name="request-cancel"),
    path("<str:request_id>/decide/", views.request_decide_view, name="request-decide"),
    path("<str:request_id>/regenerate/", views.request_regenerate_view, name="request-regenerate"),
    path("<str:request_id>/upload/", views.request_upload_view, name="request-upload"),
    path("<str:request_id>/retry/", views.request_retry_ask_view, name="request-retry-ask"),
    path("<str:request_id>/retry/decide/", views.request_retry_decide_view, name="request-retry-decide"),
]

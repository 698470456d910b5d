from django.urls import path

from approvals.api import views

urlpatterns = [
    path("", views.RequestListCreateApi.as_view(), name="api-request-list"),
    path("preview/", views.RequestPreviewApi.as_view(), name="api-request-preview"),
    path("<str:request_id>/", views.RequestDetailApi.as_view(), name="api-request-detail"),
    path("<str:request_id>/submit/", views.RequestSubmitApi.as_view(), name="api-request-submit"),
    path("<str:request_id>/cancel/", views.RequestCancelApi.as_view(), name="api-request-cancel"),
    path("<str:request_id>/decisions/", views.RequestDecisionApi.as_view(), name="api-request-decisions"),
    path("<str:request_id>/attempts/", views.RequestAttemptsApi.as_view(), name="api-request-attempts"),
    path("<str:request_id>/regenerate/", views.RequestRegenerateApi.as_view(), name="api-request-regenerate"),
    path("<str:request_id>/retry/", views.RequestRetryAskApi.as_view(), name="api-request-retry"),
    path(
        "<str:request_id>/retry/decisions/",
        views.RequestRetryDecisionApi.as_view(),
        name="api-request-retry-decisions",
    ),
    path("<str:request_id>/upload/", views.RequestUploadApi.as_view(), name="api-request-upload"),
    path(
        "<str:request_id>/gate-override/",
        views.GateOverrideProposeApi.as_view(),
        name="api-request-gate-override",
    ),
    path(
        "<str:request_id>/gate-override/decline/",
        views.GateOverrideDeclineApi.as_view(),
        name="api-request-gate-override-decline",
    ),
]

"""Mounted by portal/api/urls.py at /api/v1/audit/ (no namespace, so names carry an audit- prefix)."""

from django.urls import path

from audit.api.views import AuditEventListApi, AuditVerifyApi

urlpatterns = [
    path("events/", AuditEventListApi.as_view(), name="audit-event-list"),
    path("verify/", AuditVerifyApi.as_view(), name="audit-verify"),
]

"""The portal's URLs plus the inbox page and API, until portal/urls.py mounts them itself."""

from django.urls import include, path

urlpatterns = [
    path("inbox/", include("notifications.urls")),
    path("api/v1/notifications/", include("notifications.api")),
    path("", include("portal.urls")),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("manage/", include("portal.manage_urls")),
    path("datasets/", include("generation.urls")),
    path("requests/", include("approvals.urls")),
    path("catalog/", include("catalog.urls")),
    path("audit/", include("audit.urls")),
    path("api/v1/", include("portal.api.urls")),
    path("django-admin/", admin.site.urls),
]

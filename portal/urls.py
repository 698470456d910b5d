from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from portal import account_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/mfa/setup/", account_views.mfa_setup, name="mfa-setup"),
    path("accounts/mfa/verify/", account_views.mfa_verify_view, name="mfa-verify"),
    path("accounts/", account_views.account, name="account"),
    path("accounts/tokens/", account_views.token_list, name="account-tokens"),
    path(
        "accounts/tokens/<int:token_id>/revoke/", account_views.token_revoke_view, name="account-token-revoke"
    ),
    path("accounts/password/change/", account_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password/reset/", account_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        account_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("manage/", include("portal.manage_urls")),
    path("datasets/", include("generation.urls")),
    path("requests/", include("approvals.urls")),
    path("catalog/", include("catalog.urls")),
    path("studies/", include("federation.urls")),
    path("audit/", include("audit.urls")),
    path("inbox/", include("notifications.urls")),
    path("api/v1/", include("portal.api.urls")),
]

# Under /api/, unknown paths and unknown failures answer the JSON error shape, never HTML.
handler400 = "portal.api.errors.bad_request"
handler403 = "portal.api.errors.permission_denied"
handler404 = "portal.api.errors.page_not_found"
handler500 = "portal.api.errors.server_error"

# Django's admin is a second way into every table: not mounted in production, and where it is
# mounted (development) it asks for the second factor too (ASVS V8.2, V6.3).
if not settings.IS_PRODUCTION:
    admin.site.__class__ = OTPAdminSite
    urlpatterns.append(path("django-admin/", admin.site.urls))

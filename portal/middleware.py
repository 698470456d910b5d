from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from audit.services import audit_record
from portal.auth_mfa import mfa_enrolled, mfa_required_for
from portal.auth_signals import SESSION_STARTED_KEY


class PortalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every page requires sign-in unless marked `@login_not_required`.

    The API authenticates inside DRF (token or session) and answers 401/403 itself, so it is
    exempt here; DRF's default permission is IsAuthenticated, so it is deny-by-default too.
    """

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every response but static files and the health check.

    Pages and API answers carry request details, dataset profiles and releases: no browser,
    proxy or shared cache may keep them (ASVS V14.3). Whitenoise answers static files before
    this middleware runs, so they keep their long cache lifetimes.
    """

    EXEMPT_PREFIXES = ("/static/", "/healthz")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path_info.startswith(self.EXEMPT_PREFIXES):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        return response


class SessionLifetimeMiddleware:
    """Ends a browser session SYNTHGATE_SESSION_ABSOLUTE_HOURS after sign-in, however active.

    The idle timeout is the session's own expiry (SESSION_COOKIE_AGE, renewed on every request);
    this adds the absolute limit (ASVS V7.3). Sessions without a recorded start (signed in
    before this was deployed) are ended too, so none outlives the rule.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            started = request.session.get(SESSION_STARTED_KEY)
            limit = settings.SYNTHGATE_SESSION_ABSOLUTE_HOURS * 3600
            if not isinstance(started, int) or time.time() - started > limit:
                audit_record(
                    actor=user,
                    action="auth.session.expire",
                    target_type="user",
                    target_id=user.pk,
                    details={"reason": "absolute_lifetime"},
                )
                logout(request)
                if not request.path_info.startswith("/api/"):
                    return redirect(f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


class MfaRequiredMiddleware:
    """A signed-in user whose role needs a second factor sees no page before verifying it.

    Without a confirmed device they are sent to enrolment; with one, to the code page. The API
    is exempt: its token view demands the code itself, and DRF's session authentication accepts
    only sessions that passed this middleware's pages (see portal.api.views.TokenApi).
    """

    ALLOWED_NAMES = ("mfa-setup", "mfa-verify", "logout")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and not self._allowed(request)
            # Anyone who has a factor uses it; the custody and oversight roles must have one.
            and (mfa_required_for(user) or mfa_enrolled(user))
        ):
            if request.path_info.startswith("/api/"):
                from django.http import JsonResponse

                return JsonResponse(
                    {
                        "error": {
                            "code": "mfa_required",
                            "message": "Verify your second factor in the browser first, or use an API token.",
                        }
                    },
                    status=403,
                )
            target = "mfa-verify" if mfa_enrolled(user) else "mfa-setup"
            return redirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)

    def _allowed(self, request: HttpRequest) -> bool:
        match = getattr(request, "resolver_match", None)
        if match is None:
            from django.urls import Resolver404, resolve

            try:
                match = resolve(request.path_info)
            except Resolver404:
                return False
        return match.url_name in self.ALLOWED_NAMES or request.path_info.startswith("/static/")

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest


class PortalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every page requires sign-in unless marked `@login_not_required`.

    The API authenticates inside DRF (token or session) and answers 401/403 itself, so it is
    exempt here; DRF's default permission is IsAuthenticated, so it is deny-by-default too.
    """

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

"""Helpers shared by the HTML views of every app."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import DomainError, NotFound, note_refusal


def domain_errors_as_messages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show a service's refusal to the user and send them back, instead of a 500.

    NotFound becomes a real 404 (objects the user may not see do not exist for them).
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None
        except DomainError as exc:
            note_refusal(request, status=exc.status, code=exc.code)  # audited by the middleware
            messages.error(request, exc.message)
            back = request.META.get("HTTP_REFERER", "")
            safe = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
            return redirect(back if back and safe else "dashboard")

    return wrapper

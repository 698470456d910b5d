from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals.selectors import requests_visible_to, review_queue
from catalog.selectors import releases_visible_to
from generation.selectors import datasets_visible_to


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "my_requests": requests_visible_to(user=user).filter(requester=user)[:8],
        "queue": review_queue(user=user)[:8],
        "releases": releases_visible_to(user=user)[:8],
        "datasets": datasets_visible_to(user=user)[:8],
    }
    return render(request, "portal/dashboard.html", context)

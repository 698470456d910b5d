from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals.selectors import requests_visible_to, review_queue
from catalog.selectors import releases_visible_to
from generation.policies import about, sees_exact_figures
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
    exact = sees_exact_figures(user)
    context = {
        "my_requests": requests_visible_to(user=user).filter(requester=user)[:8],
        "queue": review_queue(user=user)[:8],
        "releases": releases_visible_to(user=user)[:8],
        "datasets": [
            # Exact source row counts are for custodians; everyone else sees a rounded figure.
            (d, d.rows if exact else about(d.rows))
            for d in datasets_visible_to(user=user)[:8]
        ],
        "rows_exact": exact,
    }
    return render(request, "portal/dashboard.html", context)

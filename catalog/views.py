from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.api.views import release_file_response
from catalog.selectors import releases_visible_to
from catalog.services import release_get_for
from core.errors import NotFound


def release_list(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/release_list.html", {"releases": releases_visible_to(user=request.user)})


def release_detail(request: HttpRequest, release_id: str) -> HttpResponse:
    try:
        release = release_get_for(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    shapes = sorted((release.metrics.get("column_shapes") or {}).items())
    return render(request, "catalog/release_detail.html", {"release": release, "shapes": shapes})


def release_download(request: HttpRequest, release_id: str) -> FileResponse:
    try:
        return release_file_response(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None

"""A DRF response freed as soon as it is sent, not left to the cycle collector.

DRF's view keeps its response (`view.response`) and the response keeps its view (in
`renderer_context`), and a serializer's `data` keeps the serializer, which keeps it back (`_data`).
So every API response, its data included (a page of the dataset API is ~330 KB of dicts and lists,
~5,900 objects), stayed in reference cycles until CPython's cycle collector found them, and the
collector then freed many responses at once: the dataset API's p95 was 2-3x its p50 at 10,000
requests (bench/pages.py, issue 16). Once the WSGI server has sent the body and closed the response,
nothing reads these references, so they are dropped then and the response goes with its last
reference (tests/test_page_garbage.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from core.pagination import release_serializer


class FreeApiResponseMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(response, "renderer_context", None) is not None:  # a DRF Response
            # Django calls these when the response is closed, then clears the list.
            closers: list[Callable[[], None]] = response._resource_closers  # type: ignore[attr-defined]
            closers.append(lambda: _forget_cycles(response))
        return response


def _forget_cycles(response: Any) -> None:
    context = response.renderer_context or {}
    view = context.get("view")
    if view is not None:
        view.__dict__.pop("response", None)
    response.renderer_context = None
    serializer = getattr(response.data, "serializer", None)  # DRF's ReturnDict / ReturnList
    if serializer is not None:
        release_serializer(serializer)
        response.data.serializer = None

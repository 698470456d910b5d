"""One way to page a list, for pages and for the API (API.md: list endpoints answer
`{"count", "next", "previous", "results"}` and clients follow `next`).

Pages: `page_of(request, queryset)` gives a Django Page for templates/includes/pager.html.
API:   `PortalPagination` (DRF), or `paginated_response(request, queryset, serialize)` for an
       APIView that is not a generic ListAPIView.

Page sizes are bounded: `?page_size=` is honoured up to MAX_PAGE_SIZE, so no request can ask for
the whole table. An out-of-range page is 404 in the API (documented by portal.api.errors) and the
last page in the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class PortalPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


def page_of(request: HttpRequest, items: Any, *, per_page: int = PAGE_SIZE, param: str = "page") -> Page:
    """The page `?page=` (or `?<param>=`, for a second list on the same page) names: the last one
    if past the end, the first if unreadable."""
    return Paginator(items, per_page).get_page(request.GET.get(param))


def paginated_response(
    request: Request, items: Any, serialize: Callable[[Sequence[Any]], Any], *, view: Any = None
) -> Response:
    """Page `items` for an APIView: `serialize` turns the page's rows into the results list."""
    paginator = PortalPagination()
    rows: list[Any] | None = paginator.paginate_queryset(items, request, view=view)
    assert rows is not None  # page_size is always set
    return paginator.get_paginated_response(serialize(rows))

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
from typing import Any, overload

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


class KeysFirst:
    """A queryset paged in two steps, for lists whose rows join other tables: the page's primary
    keys from the queryset's own filter and order alone (no joins, no prefetches: an index on the
    ordering column serves it and stops at the page's end), then those rows with everything the
    queryset joins and prefetches. Without it SQLite may plan the joined table first and sort
    every visible row to keep 50 (the request list at 10,000 requests: its page query took 19-33
    ms, the keys alone ~2 ms). The count is the queryset's own. Same rows, same order, one more
    query per page."""

    def __init__(self, queryset: Any) -> None:
        self.queryset = queryset

    def count(self) -> int:
        return int(self.queryset.count())

    def __len__(self) -> int:
        return self.count()

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        keys = list(self.queryset.prefetch_related(None).values_list("pk", flat=True)[index])
        rows = {row.pk: row for row in self.queryset.filter(pk__in=keys)}
        return [rows[key] for key in keys if key in rows]


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

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

# 25 rows a page, as GitHub's issue lists show (its API: 30; Stripe's: 10). A page's rows, not the
# table's size, set what a list costs once the queries are constant: at 50 a full page cost 2.2-3.1x
# a page of 10 rows (docs/benchmarks.md, issue 16). Clients that want more ask for ?page_size=.
PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


class PortalPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    # A page's rows are let go of as soon as the response is built (see released): DRF's list
    # serializer and its child refer to each other, and the list serializer holds the rows and
    # its rendered items, so without this a page waited for the cycle collector.
    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        rows: list[Any] | None = super().paginate_queryset(queryset, request, view)
        return None if rows is None else released(rows)

    def get_paginated_response(self, data: Any) -> Response:
        serializer = getattr(data, "serializer", None)  # DRF's ReturnList
        if serializer is not None:
            data = list(data)
            release_serializer(serializer)
        response = super().get_paginated_response(data)
        # A generic view keeps its paginator, and the view and its request refer to each other.
        self.__dict__.pop("page", None)
        return response


def release_serializer(serializer: Any) -> None:
    """Make `serializer` (and a list serializer's child) let go of what it rendered. A serializer
    keeps its rows (as `instance` and in the arguments it was made with, `_args`, which DRF keeps
    to copy a serializer) and its rendered data (`_data`, a ReturnList or ReturnDict that refers
    back to it), and a list serializer and its child refer to each other: without this, the rows
    and the response's data waited for the cycle collector. For PortalPagination (a page's rows)
    and core.middleware (any API response, once sent)."""
    for holder in (serializer, getattr(serializer, "child", None)):
        if holder is not None:
            holder.instance = None
            holder._args = ()
            holder.__dict__.pop("_data", None)


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


def released(rows: list[Any]) -> list[Any]:
    """`rows` (a page's model instances), each without the references its related rows keep back
    to it: what both paginators (page_of and PortalPagination) do with every page they fetch."""
    for row in rows:
        _forget_parents(row, ())
    return rows


def _forget_parents(obj: Any, parents: tuple[int, ...]) -> None:
    """Drop what `obj`'s related rows cache of `obj` or its parents. Django caches the parent on
    each prefetched child (a decision's `request`) and on a select_related one-to-one's other end
    (a job's `request`): a reference cycle per row, so a page's rows waited for the cycle
    collector (3,000 objects per 50-row page, freed 30-60 ms at a time) instead of being freed as
    the response is done. A list reads children from their parent, never the way back up (asking
    for it would be a query, which the query-count tests would see)."""
    state = getattr(obj, "_state", None)
    if state is None:
        return
    path = (*parents, id(obj))
    cache = state.fields_cache
    for name, value in list(cache.items()):
        if value is None:
            continue
        if id(value) in path:
            del cache[name]
        else:
            _forget_parents(value, path)
    for name, value in vars(obj).items():
        if type(value) is list:  # a Prefetch's to_attr
            for child in value:
                _forget_parents(child, path)
        elif name == "_prefetched_objects_cache":  # a plain prefetch_related: querysets
            for related in value.values():
                # Fetched already; it names the parent only to set it on rows it would fetch.
                related._known_related_objects = {}
                for child in related._result_cache or ():
                    _forget_parents(child, path)


def page_of(request: HttpRequest, items: Any, *, per_page: int = PAGE_SIZE, param: str = "page") -> Page:
    """The page `?page=` (or `?<param>=`, for a second list on the same page) names: the last one
    if past the end, the first if unreadable. Its rows are fetched here, once, and `released`."""
    page = Paginator(items, per_page).get_page(request.GET.get(param))
    page.object_list = released(list(page.object_list))
    return page


def paginated_response(
    request: Request, items: Any, serialize: Callable[[Sequence[Any]], Any], *, view: Any = None
) -> Response:
    """Page `items` for an APIView: `serialize` turns the page's rows into the results list."""
    paginator = PortalPagination()
    rows: list[Any] | None = paginator.paginate_queryset(items, request, view=view)
    assert rows is not None  # page_size is always set
    return paginator.get_paginated_response(serialize(rows))

"""A list page's rows are freed when the response is done, not left to the cycle collector.

Reference cycles held every row of a page (Django's template Context and its dicts; DRF's list
serializer and its child, and a generic view's paginator; the parent Django caches on each
prefetched child), so each 50-row page left ~2,000-3,000 objects for CPython's cycle collector,
which then freed them 30-60 ms at a time every few requests: half of the request API's p95 in
bench/pages.py (issue 16). These tests request a page with the collector paused and ask it what
it would have had to free: no model instances (what is left is the request machinery's own
objects and the response's data, whatever the page's size)."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.db.models import Model
from django.test import Client, RequestFactory

from approvals.services import request_submit
from portal.auth_tokens import token_mint

pytestmark = pytest.mark.django_db


def _garbage_of(run: Callable[[], Any], keep: Callable[[list[Any]], Any]) -> Any:
    """Run `run` with the collector paused; `keep` of what it left in reference cycles."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return keep(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


@pytest.fixture
def cycle_garbage() -> Callable[[Callable[[], Any]], Counter[str]]:
    """Run a callable with the collector paused; the model classes of what it left in cycles."""

    def left_by(run: Callable[[], Any]) -> Counter[str]:
        return _garbage_of(
            run, lambda left: Counter(type(o).__name__ for o in left if issubclass(type(o), Model))
        )

    return left_by


@pytest.fixture
def listed(make_request: Callable[..., Any], alice: Any) -> None:
    # Requests in review with a decision-free quorum, drafts: rows with and without children.
    for i in range(6):
        item = make_request(title=f"Readmission {i}")
        if i % 2:
            request_submit(actor=alice, request_id=item.pk)


def served(url: str, **headers: str) -> Callable[[], None]:
    """A GET through Django's WSGI handler, as gunicorn calls it (the test Client keeps each
    rendered context for assertions, which is exactly what must not outlive a response here)."""
    handler = WSGIHandler()

    def get() -> None:
        factory: Any = RequestFactory()
        environ = factory._base_environ(PATH_INFO=url, REQUEST_METHOD="GET", **headers)
        # As the test Client does: the test's database connection stays open across the request.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            ignore: Any = lambda status, response_headers, exc_info=None: None  # noqa: E731
            response = handler(environ, ignore)
            assert response.status_code == 200, url
            b"".join(response)
            response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return get


# What a signed-in request leaves whatever the page: its user (with their team), and their token
# or second factor.
THE_REQUESTS_OWN = {"User", "Team", "ApiToken", "TOTPDevice"}


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize(
    "url", ["/api/v1/requests/", "/api/v1/datasets/", "/api/v1/releases/", "/api/v1/notifications/"]
)
def test_an_api_list_leaves_no_rows_to_the_cycle_collector(url: str, olivia: Any, cycle_garbage: Any) -> None:
    get = served(url, HTTP_AUTHORIZATION=f"Token {token_mint(user=olivia).key}")
    get()  # warm: first-request caches are not a page's garbage
    left = cycle_garbage(get)
    assert set(left) <= THE_REQUESTS_OWN and sum(left.values()) <= 3, left


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize("url", ["/requests/", "/requests/review/", "/datasets/", "/catalog/", "/inbox/"])
def test_a_list_page_leaves_no_rows_to_the_cycle_collector(url: str, olivia: Any, cycle_garbage: Any) -> None:
    client = Client()
    client.force_login(olivia)
    get = served(url, HTTP_COOKIE=f"sessionid={client.cookies['sessionid'].value}")
    get()
    left = cycle_garbage(get)
    assert set(left) <= THE_REQUESTS_OWN and sum(left.values()) <= 3, left


def _left_total(run: Callable[[], Any]) -> tuple[int, int]:
    """(objects `run` left in reference cycles, of which the response's data)."""

    def count(left: list[Any]) -> tuple[int, int]:
        # The page itself ({"count", ..., "results"}) and its items (each with its "id"; a model
        # instance's own __dict__, which has one too, is the request's user).
        data = [
            o
            for o in left
            if issubclass(type(o), dict)
            and (
                ("results" in o and "count" in o)
                or (isinstance(o.get("id"), str | int) and "_state" not in o)
            )
        ]
        return len(left), len(data)

    return _garbage_of(run, count)


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize("url", ["/api/v1/requests/", "/api/v1/datasets/", "/api/v1/releases/"])
def test_an_api_response_and_its_data_are_freed_when_it_is_sent(url: str, olivia: Any) -> None:
    # DRF's view and response refer to each other (view.response, renderer_context["view"]), and
    # the list serializer keeps its rendered items (`_data`), so each response and all of its data
    # waited for the collector (core.middleware, core.pagination).
    get = served(url, HTTP_AUTHORIZATION=f"Token {token_mint(user=olivia).key}")
    get()
    total, data = _left_total(get)
    print(f"{url}: {total} objects left in cycles")
    assert data == 0, f"the response's data was left to the cycle collector ({total} objects in all)"

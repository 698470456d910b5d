"""The styled 404 page: the same plain answer for what does not exist and for what is not the
user's to see, with a way on, for anonymous and signed-in users alike; /api/ stays JSON."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PLAIN = "This page does not exist, or it is not yours to see."


@pytest.fixture(autouse=True)
def _production_errors(settings: Any) -> None:
    # Django renders templates/404.html only with DEBUG off (with it on, the technical page).
    settings.DEBUG = False


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_anonymous_visitor_gets_the_page_with_a_way_to_sign_in() -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert PLAIN in body and 'href="/accounts/login/"' in body
    assert "Sign out" not in body  # the base template's signed-in furniture stays hidden
    assert "no-such-page" not in body


def test_a_signed_in_user_gets_navigation_home_requests_datasets_and_catalog(alice: Any) -> None:
    response = _signed_in(alice).get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert PLAIN in body
    for href in ('href="/"', 'href="/requests/"', 'href="/datasets/"', 'href="/catalog/"'):
        assert href in body


def test_another_teams_request_looks_exactly_like_a_missing_one(
    submitted_request: Any, make_user: Any
) -> None:
    outsider = make_user("olga", "data_scientist", "Oncology")
    client = _signed_in(outsider)
    theirs = client.get(f"/requests/{submitted_request.pk}/")
    missing = client.get(f"/requests/{uuid.uuid4()}/")
    assert theirs.status_code == missing.status_code == 404
    body = theirs.content.decode()
    assert PLAIN in body
    # Neither the id nor the lookup's exception text is echoed back.
    assert str(submitted_request.pk) not in body and "No such request" not in body
    assert PLAIN in missing.content.decode()


def test_api_404s_stay_json(alice: Any, api: Any) -> None:
    response = api(alice).get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"

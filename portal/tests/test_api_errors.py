"""Hostile JSON and unexpected failures, tried as an attacker would: every API answer is the JSON
error shape ({"error": {"code", "message"}}) with a 4xx, never a 5xx or an HTML page for bad
input, and a fault of ours is a JSON 500 under /api/, not Django's HTML page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.parsers import JSONParser
from rest_framework.test import APIClient

from portal.api.parsers import BoundedJSONParser, json_depth

TOKEN_URL = "/api/v1/auth/token/"
REQUESTS_URL = "/api/v1/requests/"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = json.loads(response.content)["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.mark.parametrize(
    "body",
    ["[1,2]", '"x"', "42", "null", "true", nested(100_000), '{"username": ' + nested(50_000) + "}"],
    ids=["array", "string", "number", "null", "boolean", "arrays 100000 deep", "object holding deep arrays"],
)
def test_hostile_json_to_the_token_endpoint_is_a_400_in_the_error_shape(db: Any, body: str) -> None:
    response = APIClient().post(TOKEN_URL, body, content_type="application/json")
    _error(response, 400, "parse_error")


def test_a_deeply_nested_request_body_is_a_400(api: Any, alice: Any) -> None:
    body = '{"title": "t", "columns": ' + nested(100_000) + "}"
    _error(api(alice).post(REQUESTS_URL, body, content_type="application/json"), 400, "parse_error")


def test_a_body_nested_just_past_the_limit_is_refused_and_at_the_limit_reaches_the_view(
    api: Any, alice: Any, settings: Any
) -> None:
    settings.SYNTHGATE_MAX_JSON_DEPTH = 8
    too_deep = {"title": json.loads(nested(8))}  # 9 levels with the outer object
    at_limit = {"title": json.loads(nested(7))}
    _error(api(alice).post(REQUESTS_URL, too_deep, format="json"), 400, "parse_error")
    # Parsed, then refused by the serializer for what it is (a list is not a title).
    error = _error(api(alice).post(REQUESTS_URL, at_limit, format="json"), 400, "invalid")
    assert "title" in error["fields"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"username": "alice", ', "application/json", 400, "parse_error"),
        (b'{"username": "\xff\xfe"}', "application/json", 400, "parse_error"),
        ('{"a": NaN}', "application/json", 400, "parse_error"),
        ("username=alice", "text/plain", 415, "unsupported_media_type"),
        ("<xml/>", "application/xml", 415, "unsupported_media_type"),
        ('{"username": "alice"}', "application/json; charset=rot13", 400, "parse_error"),
    ],
    ids=["truncated", "not utf-8", "NaN", "text/plain", "xml", "bogus charset"],
)
def test_malformed_bodies_and_wrong_content_types_are_4xx_json(
    db: Any, body: Any, content_type: str, status: int, code: str
) -> None:
    _error(APIClient().post(TOKEN_URL, body, content_type=content_type), status, code)


def test_an_oversized_json_body_is_a_413(api: Any, alice: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"title": "x" * 4096})
    _error(api(alice).post(REQUESTS_URL, body, content_type="application/json"), 413, "too_large")


def test_an_unknown_api_path_is_a_json_404(api: Any, alice: Any) -> None:
    _error(api(alice).get("/api/v1/no-such-thing/"), 404, "not_found")


def test_an_unexpected_failure_is_a_json_500_not_an_html_page(
    api: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("approvals.api.views.requests_listed_for", broken)
    client = api(alice)
    client.raise_request_exception = False
    error = _error(client.get(REQUESTS_URL), 500, "server_error")
    assert "boom" not in error["message"]


def test_pages_outside_the_api_keep_their_html_error_pages(client: Any, alice: Any) -> None:
    client.force_login(alice)
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_the_parser_refuses_what_json_would_recurse_on_and_counts_depth_without_recursion() -> None:
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    assert json_depth(deep) == 50_001
    assert json_depth({"a": [1, {"b": []}]}) == 4 and json_depth(7) == 0
    assert json_depth(deep, stop_above=10) == 11
    assert issubclass(BoundedJSONParser, JSONParser)  # so DRF hands it the capped request.body


def test_the_schema_documents_every_error_in_the_one_error_shape(db: Any) -> None:
    schema = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    error = {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    detail = schema["paths"]["/api/v1/requests/{request_id}/"]
    assert {"400", "401", "403", "404"} <= set(detail["get"]["responses"])
    assert detail["get"]["responses"]["404"]["content"]["application/json"]["schema"] == error
    create = schema["paths"]["/api/v1/requests/"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "415"} <= set(create)
    submit = schema["paths"]["/api/v1/requests/{request_id}/submit/"]["post"]["responses"]
    assert submit["409"]["content"]["application/json"]["schema"] == error
    # A response the view documents itself is kept (the token endpoint's own 400 shape).
    token = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert "401" not in token and "400" in token

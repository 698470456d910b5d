"""The API's JSON parser: a body is one JSON object, nested no deeper than a real request needs.

DRF's JSONParser turns only ValueError into a 400. A body nested 100,000 arrays deep makes
Python's json raise RecursionError instead, which escaped as an HTML 500; and a body that is a
list or a string (`[1, 2]`, `"x"`) reached views that call `request.data.get(...)` and failed
there. Every body of this API is an object (docs: /work/shared/API.md), so anything else is a
400 here, before a view sees it. The body's size is already capped by Django
(DATA_UPLOAD_MAX_MEMORY_SIZE, enforced when DRF reads `request.body`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any body the API defines (request candidates' options are three levels down),
# shallow enough that no serializer, validator or error renderer recurses dangerously.
DEFAULT_MAX_DEPTH = 32


class BoundedJSONParser(JSONParser):
    """JSONParser that answers 400 for deep nesting and for bodies that are not an object."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_too_deep_message()) from None
        except UnicodeError:
            raise ParseError("The body is not valid text in the declared charset; send UTF-8 JSON.") from None
        if not isinstance(data, dict):
            raise ParseError(
                f"The body must be a JSON object ({{...}}), not {_json_type(data)}; "
                "see /api/v1/docs/ for each operation's fields."
            )
        if json_depth(data, stop_above=max_depth()) > max_depth():
            raise ParseError(_too_deep_message())
        return data


def max_depth() -> int:
    return int(getattr(settings, "SYNTHGATE_MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH))


def json_depth(value: Any, *, stop_above: int | None = None) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, `{}` is 1), walked without recursion.

    Only containers are stacked, and the walk stops once `stop_above` is exceeded."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if stop_above is not None and deepest > stop_above:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep_message() -> str:
    return f"The JSON body is nested too deeply (the limit is {max_depth()} levels); flatten it."


def _json_type(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a boolean"
    return "a number"

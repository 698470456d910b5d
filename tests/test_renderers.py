"""core.renderers.FastJSONRenderer writes the JSON DRF's JSONRenderer writes (issue 16: the API's
encoding was 4-15 ms of a 50-item page), for every kind of value DRF's encoder knows and for real
list responses, byte for byte where the numbers are spelled alike."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from core.renderers import FastJSONRenderer

fast, drf = FastJSONRenderer(), JSONRenderer()


def test_the_api_uses_it(settings: Any) -> None:
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == ["core.renderers.FastJSONRenderer"]


@pytest.mark.parametrize(
    "value",
    [
        {"at": dt.datetime(2026, 12, 4, 22, 51, 36, 496651, tzinfo=dt.UTC)},
        {"at": dt.datetime(2026, 12, 4, 22, 51, 36, tzinfo=ZoneInfo("Europe/Amsterdam"))},
        {"naive": dt.datetime(2026, 1, 2, 3, 4, 5), "day": dt.date(2026, 1, 2), "time": dt.time(3, 4, 5, 60)},
        {"took": dt.timedelta(seconds=90, microseconds=5)},
        {"epsilon": decimal.Decimal("0.500000"), "cap": decimal.Decimal("3")},
        {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        {"lazy": gettext_lazy("Privacy officer"), "text": 'Café ☃ \u2028 \u2029 "quoted" \\ \n\t\x00'},
        {"tuple": (1, 2, (3,)), "set": {7}, "nested": [{"a": None, "b": True, "c": False}], "empty": {}},
        {"ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)], "floats": [0.1, 1.5, -2.25, 3.0, 1 / 3]},
        {1: "int key", "x": {2: "y"}},
        {"numpy": np.float64(0.25), "array": np.arange(3), "i": np.int64(7)},
        {"big": 2**70},  # beyond 64 bits: orjson refuses, DRF's renderer answers
        [1, "two", None],
    ],
)
def test_each_kind_of_value_renders_as_drf_renders_it(value: Any) -> None:
    assert fast.render(value) == drf.render(value)


def test_nothing_renders_as_nothing() -> None:
    assert fast.render(None) == drf.render(None) == b""


def test_indented_output_is_drfs_own() -> None:
    value = {"a": [1, {"b": "c"}]}
    media = "application/json; indent=4"
    assert fast.render(value, media, {}) == drf.render(value, media, {})


def test_floats_spelled_differently_are_the_same_numbers() -> None:
    value = {
        "small": 1e-5,
        "large": 1e16,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "delta": decimal.Decimal("1E-9"),  # json writes 1e-09, orjson 1e-9
    }
    assert json.loads(fast.render(value)) == json.loads(drf.render(value))


def test_real_list_responses_render_alike(
    api: Callable[[Any], Any], olivia: Any, make_request: Callable[..., Any], dataset: Any
) -> None:
    for i in range(3):
        make_request(title=f"Readmission model {i} – café ☃")
    client = api(olivia)
    for url in ("/api/v1/requests/", "/api/v1/datasets/", f"/api/v1/datasets/{dataset.pk}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content == drf.render(response.data), url
        assert response.content == fast.render(response.data)

"""The API's JSON renderer: DRF's JSONRenderer, encoded by orjson.

DRF encodes with the standard library's json module and a Python `default` for what JSON lacks.
A 50-item list page is 150-650 KB of JSON; encoding it took 4-15 ms of a request's CPU
(bench/pages.py profile, GET /api/v1/datasets/ as an officer: 15 of ~80 ms). orjson writes the
same document in a fraction of that.

The same JSON, value for value (core/tests/test_renderers.py renders real API responses both ways):
- datetimes, dates and times go through DRF's own encoder (`OPT_PASSTHROUGH_DATETIME`), so they
  keep DRF's format ("Z" for UTC, microseconds as Python writes them); so do decimals, UUIDs are
  written as DRF writes them (str), lazy strings, numpy values and the rest of DRF's list;
- compact separators and UTF-8 as DRF's defaults (COMPACT_JSON, UNICODE_JSON), with U+2028 and
  U+2029 escaped as DRF escapes them;
- dataclasses are not serialized (DRF refuses them too), non-string keys become strings as json
  makes them.
What differs: a float may be spelled differently (orjson writes 1e16 where json writes 1e+16: the
same number), and a NaN or infinity, which DRF refuses with an error (STRICT_JSON), is written as
null. Anything orjson cannot encode (an integer beyond 64 bits) falls back to DRF's renderer. A
pretty-printed response (`Accept: application/json; indent=4`) is DRF's own.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
_DRF_DEFAULT = JSONEncoder().default


class FastJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        if (
            self.get_indent(accepted_media_type or "", renderer_context or {}) is not None
            or self.ensure_ascii
            or not self.compact
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            encoded = orjson.dumps(data, default=_DRF_DEFAULT, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in encoded or b"\xe2\x80\xa9" in encoded:
            encoded = encoded.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return encoded

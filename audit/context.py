"""Per-request correlation id, carried into audit rows (NetBox's change-record `request_id`)."""

from __future__ import annotations

import contextvars

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("synthgate_request_id", default="")

"""The canonical form an audit entry is hashed in, and the schemes that hash it.

Changing the canonical form invalidates every chain. Each row records its scheme:

- `SHA256` (1): the original unkeyed hash. Anyone with database access can recompute it, so it
  is only accepted for the rows written before keying was introduced (a prefix of the chain).
- `HMAC_SHA256` (2): keyed with `SYNTHGATE_AUDIT_KEY`, which lives outside the database, so a
  database administrator cannot compute a valid hash for an edited, inserted or appended row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import models

GENESIS_HASH = "0" * 64


class HashScheme(models.IntegerChoices):
    SHA256 = 1, "SHA-256 (unkeyed, before keying)"
    HMAC_SHA256 = 2, "HMAC-SHA256 (keyed)"


# The stored fields a row's hash covers besides its link (`prev_hash`): one list for the chain
# walk (audit.selectors) and for anyone re-hashing exported rows (catalog.evidence).
ROW_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "details",
    "request_id",
)


def canonical(
    *,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor_name: str,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    details: dict[str, Any],
    request_id: str,
    prev_hash: str,
    scheme: int | None = None,
) -> bytes:
    """The bytes that are hashed. `scheme` is bound into keyed rows only, so unkeyed rows keep
    the exact bytes they were first hashed over."""
    payload: dict[str, Any] = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "details": details,
        "request_id": request_id,
        "prev_hash": prev_hash,
    }
    if scheme is not None:
        payload["scheme"] = scheme
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_event_hash(**fields: Any) -> str:
    """Scheme 1, unkeyed: what rows written before keying carry (and what a forger can compute)."""
    return hashlib.sha256(canonical(**fields)).hexdigest()


def hmac_event_hash(*, key: bytes, **fields: Any) -> str:
    """Scheme 2: HMAC-SHA256 under the audit key."""
    message = canonical(scheme=HashScheme.HMAC_SHA256.value, **fields)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def event_hash(*, scheme: int, key: bytes, **fields: Any) -> str:
    """The hash of a row under its recorded scheme. Unknown schemes raise ValueError."""
    if scheme == HashScheme.HMAC_SHA256:
        return hmac_event_hash(key=key, **fields)
    if scheme == HashScheme.SHA256:
        return sha256_event_hash(**fields)
    raise ValueError(f"unknown audit hash scheme {scheme!r}")


def audit_key() -> bytes:
    """The chain key from settings (32 bytes; settings refuse to load without a valid one)."""
    return _decode_key(settings.SYNTHGATE_AUDIT_KEY)


@lru_cache(maxsize=4)
def _decode_key(encoded: str) -> bytes:
    return base64.urlsafe_b64decode(encoded)

"""The canonical form an audit entry is hashed in, and the schemes that hash it.

Changing the canonical form invalidates every chain. Each row records its scheme:

- `SHA256` (1): the original unkeyed hash. Anyone with database access can recompute it, so it
  is only accepted for the rows written before keying was introduced (a prefix of the chain).
- `HMAC_SHA256` (2): keyed with `SYNTHGATE_AUDIT_KEY`, which lives outside the database, so a
  database administrator cannot compute a valid hash for an edited, inserted or appended row.
- `LINKED` (3, issue 16 item 3b): the row's canonical text is built by the database itself, as a
  stored generated column (`AuditEvent.canonical`, `linked_canonical_sql`), so it can never
  disagree with the columns it is made of and verification reads one column instead of
  thirteen. The row's `hash` is the plain SHA-256 of that text, which starts with the previous
  row's hash, and its `tag` is an HMAC of `hash` under the audit key. Whoever can write
  the table can recompute the links but not the tags: verification recomputes every link and
  checks the tag of the last row it reaches (each tag vouches for every row before it), and on
  any doubt every row's tag, which names the first row written without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import json.encoder
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import models

GENESIS_HASH = "0" * 64


class HashScheme(models.IntegerChoices):
    SHA256 = 1, "SHA-256 (unkeyed, before keying)"
    HMAC_SHA256 = 2, "HMAC-SHA256 (keyed)"
    LINKED = 3, "SHA-256 link over the database's canonical text, HMAC-SHA256 tag (keyed)"


_KEYED = int(HashScheme.HMAC_SHA256.value)
_LINKED = int(HashScheme.LINKED.value)


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


# --- The same bytes, fast, for walking the chain (issue 16) -----------------------------------
# `canonical` builds a dict and runs json.dumps, which makes a new encoder per call: most of a
# full verification's time went there. `canonical_row` writes the identical bytes straight from a
# row tuple: the keys in sorted order, strings through the C string encoder json.dumps itself
# uses, `details` through one reused C encoder with json.dumps' settings. Only the speed differs;
# audit/tests/test_verification_records.py checks the two agree byte for byte.
# json.encoder.encode_basestring_ascii is the C function when the accelerator is built (always in
# CPython), the pure-Python one otherwise; json.dumps(ensure_ascii=True) uses the same one.
_encode_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
_DETAILS_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class CanonicalJSON(str):
    """`details` already in canonical JSON text (as audit.selectors.audit_chain_rows reads it),
    used verbatim by `canonical_row` instead of being encoded again."""

    __slots__ = ()


def canonical_details(details: Any) -> CanonicalJSON:
    """`details` (a decoded JSON value) as the canonical JSON text `canonical` embeds."""
    if not details and isinstance(details, dict):
        return CanonicalJSON("{}")
    return CanonicalJSON(_DETAILS_ENCODER.encode(details))


def canonical_at(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


_UNKEYED_TEMPLATE = (
    '{"action":%s,"actor_id":%s,"actor_name":%s,"at":"%s","details":%s,"outcome":%s,'
    '"prev_hash":%s,"request_id":%s,"seq":%s,"target_id":%s,"target_type":%s}'
)
_KEYED_TEMPLATE = _UNKEYED_TEMPLATE.replace('"request_id":%s,', '"request_id":%s,"scheme":%s,')


def canonical_row(row: Sequence[Any], prev_hash: str, scheme: int | None) -> bytes:
    """`canonical(**dict(zip(ROW_FIELDS, row)), prev_hash=prev_hash, scheme=scheme)`, fast.

    `row` starts with the `ROW_FIELDS` values in that order (further items are ignored). `at`
    may be a datetime or its canonical text already, `details` a decoded value or a
    `CanonicalJSON` (what audit_chain_rows yields, so nothing is decoded and re-encoded twice)."""
    seq, at, actor_id, actor_name, action, target_type, target_id, outcome, details, request_id = row[:10]
    enc = _encode_str
    # One %-format (a single allocation), keys in sorted order as json.dumps(sort_keys=True) puts them.
    text = _KEYED_TEMPLATE if scheme is not None else _UNKEYED_TEMPLATE
    values = (
        enc(action),
        "null" if actor_id is None else int.__repr__(actor_id),
        enc(actor_name),
        at if type(at) is str else at.isoformat(timespec="microseconds"),
        details if type(details) is CanonicalJSON else canonical_details(details),
        enc(outcome),
        enc(prev_hash),
        enc(request_id),
    )
    tail = (int.__repr__(seq), enc(target_id), enc(target_type))
    if scheme is not None:
        text = text % (*values, int.__repr__(scheme), *tail)
    else:
        text = text % (*values, *tail)
    return text.encode("ascii")


class _HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: per message, two
    copies and two updates instead of `hmac.new`'s key setup. The same digests as `hmac.new`."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def copiers(self) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """The pads' `copy` methods, for a loop that inlines `hexdigest` (the chain walk)."""
        return self._inner.copy, self._outer.copy


@lru_cache(maxsize=4)
def _hmac_for(key: bytes) -> _HmacSha256:
    return _HmacSha256(key)


def hmac_copiers(key: bytes) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """`copy` of the inner and outer SHA-256 states of HMAC under `key`: `inner()`, update with
    the message, then `outer()` updated with the inner digest gives the HMAC (see _HmacSha256)."""
    return _hmac_for(key).copiers()


def row_hash(row: Sequence[Any], *, prev_hash: str, scheme: int, key: bytes) -> str:
    """The hash of a row tuple under `scheme` (what `event_hash` computes, from `canonical_row`).
    Unknown schemes raise ValueError."""
    if scheme == _KEYED:
        return _hmac_for(key).hexdigest(canonical_row(row, prev_hash, _KEYED))
    if scheme == HashScheme.SHA256:
        return hashlib.sha256(canonical_row(row, prev_hash, None)).hexdigest()
    raise ValueError(f"unknown audit hash scheme {scheme!r}")


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


# --- Pending rows (sequenced mode) -------------------------------------------------------------
# A pending row has no place in the chain yet, so its writer seals its id and content with their
# own HMAC under the audit key. The message is tagged, so it can never be mistaken for a chain
# entry's canonical form (which has no "kind"), and binds the row id, so a copy of a sealed row
# under another id does not verify. The sequencer links only rows whose seal verifies.
PENDING_KIND = "synthgate.audit.pending.v1"


def pending_canonical(
    *,
    row_id: int,
    at: datetime,
    actor_id: int | None,
    actor_name: str,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    details: Any,
    request_id: str,
) -> bytes:
    payload: dict[str, Any] = {
        "kind": PENDING_KIND,
        "id": row_id,
        "at": at.isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "details": details,
        "request_id": request_id,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def pending_hash(*, key: bytes, row_id: int, **fields: Any) -> str:
    """The writer's seal of a pending row: HMAC-SHA256 of `pending_canonical` under the audit key."""
    return _hmac_for(key).hexdigest(pending_canonical(row_id=row_id, **fields))


def audit_key() -> bytes:
    """The chain key from settings (32 bytes; settings refuse to load without a valid one)."""
    return _decode_key(settings.SYNTHGATE_AUDIT_KEY)


@lru_cache(maxsize=4)
def _decode_key(encoded: str) -> bytes:
    return base64.urlsafe_b64decode(encoded)


# --- Scheme 3: the database's canonical text, linked by SHA-256, tagged under the key ------------
# The canonical text is a run of netstrings (`<byte length>:<value>,`), one per field in this
# order; a NULL actor is `-,`. Netstrings need no escaping, so the same text is built by SQL on
# both databases from the stored columns, with nothing for Python to re-encode: verification
# reads it as bytes and hashes it. The first three fields are the chain position (made by Python
# when a row is linked); the rest are the content (ROW_FIELDS' order), rendered by the database
# (`at` as the stored text on SQLite and as UTC microseconds since the epoch on PostgreSQL,
# `details` as its stored JSON text), which is why a writer asks the database for them
# (audit.selectors.linked_bodies).
LINKED_POSITION_FIELDS = ("prev_hash", "hash_scheme", "seq")
LINKED_BODY_FIELDS = tuple(name for name in ROW_FIELDS if name != "seq")
# PostgreSQL only allows immutable expressions in a generated column, and timestamptz's text form
# depends on the session's TimeZone and DateStyle: `at` is written as the microseconds since the
# epoch of its UTC time (extract on a timestamp without time zone is immutable, and exact).
PG_AT_MICROSECONDS = "(extract(epoch FROM ({column} AT TIME ZONE 'UTC')) * 1000000)::bigint::text"
TAG_PREFIX = b"synthgate.audit.tag.v1:"


def _netstring_sql(vendor: str, name: str, column: str) -> str:
    if vendor == "postgresql":
        value = PG_AT_MICROSECONDS.format(column=column) if name == "at" else f"({column})::text"
        piece = f"octet_length({value})::text || ':' || {value}"
    else:
        # SQLite: the text's UTF-8 bytes; `||` turns integers into their decimal text.
        piece = f"length(CAST({column} AS BLOB)) || ':' || {column}"
    if name == "actor_id":
        piece = f"COALESCE({piece}, '-')"
    return f"{piece} || ','"


def linked_body_sql(vendor: str, columns: dict[str, str]) -> str:
    """SQL for the content part of a scheme-3 canonical text, given an SQL snippet per field."""
    return " || ".join(_netstring_sql(vendor, name, columns[name]) for name in LINKED_BODY_FIELDS)


def linked_canonical_sql(vendor: str, columns: dict[str, str]) -> str:
    """SQL for a scheme-3 row's whole canonical text; NULL while the row is pending (no seq), and
    then not even rendered, so a pending insert costs nothing here."""
    fields = (*LINKED_POSITION_FIELDS, *LINKED_BODY_FIELDS)
    text = " || ".join(_netstring_sql(vendor, name, columns[name]) for name in fields)
    return f"CASE WHEN {columns['seq']} IS NULL THEN NULL ELSE {text} END"


def netstring(value: str) -> str:
    return f"{len(value.encode('utf-8'))}:{value},"


def linked_position(*, prev_hash: str, seq: int, scheme: int = _LINKED) -> str:
    """The canonical text's first three netstrings, as the SQL above renders them."""
    return netstring(prev_hash) + netstring(str(scheme)) + netstring(str(seq))


def linked_hash(canonical: str | bytes) -> str:
    """Scheme 3's link: the SHA-256 of the canonical text's UTF-8 bytes. The text starts with the
    previous row's hash (its first netstring, from `prev_hash`), which is what chains the rows."""
    data = canonical if isinstance(canonical, bytes) else canonical.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def link_tag(key: bytes, link: str) -> str:
    """Scheme 3's keyed tag on a link: HMAC-SHA256 under the audit key."""
    return _hmac_for(key).hexdigest(TAG_PREFIX + link.encode("utf-8", "surrogatepass"))


def parse_netstrings(text: str) -> list[str | None] | None:
    """The fields of a scheme-3 canonical text (None for `-`), or None when it is malformed.
    For readers of exported events (catalog.evidence), who check the text against the fields."""
    data, i = text.encode("utf-8"), 0
    out: list[str | None] = []
    while i < len(data):
        if data[i : i + 2] == b"-,":
            out.append(None)
            i += 2
            continue
        colon = data.find(b":", i)
        if colon <= i or not data[i:colon].isdigit():
            return None
        end = colon + 1 + int(data[i:colon])
        if data[end : end + 1] != b",":
            return None
        out.append(data[colon + 1 : end].decode("utf-8"))
        i = end + 1
    return out


class LinkedCanonical(models.Expression):
    """`linked_canonical_sql` over the row's own columns: the expression of the stored generated
    column `AuditEvent.canonical`."""

    def __init__(self) -> None:
        super().__init__(output_field=models.TextField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str | int, ...]]:
        quote = connection.ops.quote_name
        names = (*LINKED_POSITION_FIELDS, *LINKED_BODY_FIELDS)
        return linked_canonical_sql(connection.vendor, {name: quote(name) for name in names}), ()

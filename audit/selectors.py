"""Reads of the audit log: who may see it, filtering, and chain verification."""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import re
from binascii import hexlify
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Min, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.checkpoints import CheckpointLog, checkpoints_read
from audit.hashing import (
    _KEYED,
    _LINKED,
    GENESIS_HASH,
    LINKED_BODY_FIELDS,
    LINKED_POSITION_FIELDS,
    ROW_FIELDS,
    CanonicalJSON,
    HashScheme,
    _encode_str,
    audit_key,
    canonical_at,
    canonical_details,
    hmac_copiers,
    link_tag,
    linked_body_sql,
    linked_canonical_sql,
    linked_hash,
    pending_hash,
    row_hash,
)
from audit.models import AuditChainHead, AuditEvent, AuditVerification
from core.roles import AUDIT_READERS, has_role


def audit_events_visible_to(*, user: Any) -> QuerySet[AuditEvent]:
    if not has_role(user, *AUDIT_READERS):
        return AuditEvent.objects.none()
    return AuditEvent.objects.all()


def audit_events_filter(
    queryset: QuerySet[AuditEvent],
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """`target` matches `type`, `type:id` or a bare id."""
    if actor:
        queryset = queryset.filter(actor_name__iexact=actor)
    if action:
        queryset = queryset.filter(action__icontains=action)
    if target:
        kind, _, ident = target.partition(":")
        if ident:
            queryset = queryset.filter(target_type=kind, target_id=ident)
        else:
            queryset = queryset.filter(target_type=kind) | queryset.filter(target_id=kind)
    if date_from:
        queryset = queryset.filter(at__date__gte=date_from)
    if date_to:
        queryset = queryset.filter(at__date__lte=date_to)
    # Pending rows (sequenced mode, not linked yet) are the newest: first, by id.
    return queryset.order_by(F("seq").desc(nulls_first=True), "-id")


# Why a verification failed, by code. The codes are part of the API (`reason`); the texts are
# what the verify page and `verify_audit -v 2` show.
REASONS: dict[str, str] = {
    "sequence_gap": "an entry is missing, or one was inserted, at this sequence number",
    "prev_hash_mismatch": "this entry does not link to the hash of the entry before it",
    "hash_mismatch": (
        "this entry's content does not match its hash under the audit key: it was edited, "
        "or written without the key"
    ),
    "unkeyed_after_keyed": (
        "this entry carries an unkeyed SHA-256 hash after keyed entries: it was written or "
        "recomputed without the audit key"
    ),
    "unknown_scheme": "this entry names a hash scheme the portal does not know",
    "tag_mismatch": (
        "this entry's link hash matches its content but its keyed tag does not: it was written, or "
        "the chain recomputed from here, without the audit key"
    ),
    "canonical_altered": (
        "the database no longer builds entries' canonical text as the portal defined it (the "
        "generated column or its function was changed): content could be edited without changing "
        "what is hashed, so no linked entry can be trusted"
    ),
    "head_mismatch": "the chain head disagrees with the last entry: a tail was deleted or appended by hand",
    "truncated": "a signed checkpoint records entries beyond the last one: the tail was deleted",
    "checkpoint_mismatch": (
        "a signed checkpoint records a different hash for this part of the chain: entries from "
        "here on were rewritten and the chain recomputed"
    ),
    "checkpoint_signature": (
        "the checkpoint file holds lines whose signature does not verify: forged or corrupted"
    ),
    "verified_mismatch": (
        "the entry where the last verification stopped no longer carries the hash it was verified "
        "with: entries at or before it were rewritten (run a full verification to find where)"
    ),
    "pending_forged": (
        "entries waiting to be linked into the chain carry no valid seal from a portal writer: they "
        "were inserted or edited outside the portal, and the sequencer refuses to link them"
    ),
    "merge_delay_exceeded": (
        "entries have waited longer than the maximum merge delay to be linked into the chain: the "
        "sequencer is not running or is behind"
    ),
}

# Sequenced mode (SYNTHGATE_AUDIT_SEQUENCER): the sequencer runs every second on the beat
# (audit.tasks.sequence_audit_chain), so a committed event is linked within about two seconds; one
# still pending after MAX_MERGE_DELAY (measured from its `at`, set when it was written) fails
# verification and shows as late on the audit pages and in the API.
MAX_MERGE_DELAY = timedelta(seconds=5)

# A pending row as the sequencer and the verifier read it, in this order.
# The chain's row fields with the row's id in place of its (not yet assigned) seq, then the seal.
PENDING_FIELDS = ("id", *(f for f in ROW_FIELDS if f != "seq"), "content_hash", "hash_scheme")


def pending_seal_ok(row: tuple[Any, ...], key: bytes) -> bool:
    """Whether a pending row (the `PENDING_FIELDS` values) carries its writer's seal: keyed scheme,
    and an HMAC over its id and content that only a holder of the audit key could compute."""
    row_id, at, actor_id, actor_name, action, target_type, target_id, outcome, details, request_id = row[:10]
    seal, scheme = row[10], row[11]
    if scheme not in (HashScheme.HMAC_SHA256, HashScheme.LINKED) or not seal:
        return False
    expected = pending_hash(
        key=key,
        row_id=row_id,
        at=at,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        details=details,
        request_id=request_id,
    )
    return hmac.compare_digest(str(seal), expected)


@dataclass(frozen=True)
class PendingCheck:
    """The pending rows when verification looked: how many, how many older than the maximum merge
    delay, how many without a valid writer seal, and the oldest `at`."""

    pending: int = 0
    overdue: int = 0
    forged: int = 0
    oldest_at: datetime | None = None


def audit_pending_check(*, key: bytes, now: datetime | None = None) -> PendingCheck:
    """Every pending row's seal and age. Verification never accepts a pending row as part of the
    chain; it counts them, and fails on a forged one or one older than MAX_MERGE_DELAY."""
    cutoff = (now or timezone.now()) - MAX_MERGE_DELAY
    pending = overdue = forged = 0
    oldest: datetime | None = None
    rows = AuditEvent.objects.filter(seq__isnull=True).order_by("id").values_list(*PENDING_FIELDS)
    for row in rows.iterator(chunk_size=CHAIN_CHUNK):
        pending += 1
        at = row[1]
        if oldest is None or at < oldest:
            oldest = at
        if at < cutoff:
            overdue += 1
        if not pending_seal_ok(row, key):
            forged += 1
    return PendingCheck(pending=pending, overdue=overdue, forged=forged, oldest_at=oldest)


@dataclass(frozen=True)
class ChainVerdict:
    """The outcome of `audit_verify`. `first_bad_seq` is the first entry that cannot be trusted
    (None when the chain holds, or when only the checkpoint file is at fault)."""

    ok: bool
    events: int
    first_bad_seq: int | None
    reason: str = ""
    unkeyed_events: int = 0
    checkpoints: int = 0
    checkpoint_seq: int | None = None
    bad_checkpoints: int = 0
    # Sequenced mode: rows not linked yet when the run looked (audit_pending_check).
    pending: int = 0
    pending_overdue: int = 0
    pending_forged: int = 0
    oldest_pending_at: datetime | None = None
    # What the run covered: rows after `from_seq` (0: the whole chain) up to `upto_seq`, whose
    # hash `upto_hash` is where the next incremental run starts.
    from_seq: int = 0
    upto_seq: int = 0
    upto_hash: str = GENESIS_HASH

    @property
    def detail(self) -> str:
        return REASONS.get(self.reason, "")


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


ChainRow = tuple[Any, ...]

# Never equal to a stored hash: what the raw walk links to before its first row when the starting
# hash is not a plain hex digest (the row then goes through ChainWalk._step).
_NEVER = object()


def audit_chain_rows(*, after_seq: int = 0, upto_seq: int | None = None) -> ChainRows:
    """Rows in chain order as tuples: the `ROW_FIELDS`, then prev_hash, hash, hash_scheme,
    canonical and tag (`_PREV`..`_TAG`), with `at` as its canonical text and `details` as
    canonical JSON (audit.hashing.CanonicalJSON),
    ready for `row_hash`. Streamed in chunks; no model instance per row (issue 16). On SQLite,
    `ChainWalk.walk` reads the raw chunks instead (`ChainRows.raw_chunks`)."""
    return ChainRows(after_seq, upto_seq)


CHAIN_CHUNK = 5000
# Where a ChainRow keeps its chain fields, after the ROW_FIELDS.
_PREV, _HASH, _SCHEME, _CANONICAL, _TAG = 10, 11, 12, 13, 14


class ChainRows:
    """An iterable of `ChainRow`s (see `audit_chain_rows`). On SQLite and PostgreSQL it also gives
    the raw chunks the rows are prepared from, which the chain walk's fast path reads directly."""

    def __init__(self, after_seq: int, upto_seq: int | None) -> None:
        self.after_seq, self.upto_seq = after_seq, upto_seq
        self.vendor = connection.vendor
        self.raw = self.vendor in _AT_TEXT
        # Canonical `details` per distinct stored text (most rows share a handful of shapes).
        self.details_cache: dict[Any, CanonicalJSON] = {}

    def __iter__(self) -> Iterator[ChainRow]:
        if self.raw:
            for chunk in self.raw_chunks():
                yield from map(self.prepare, chunk)
            return
        yield from _prepared(_orm_rows(self.after_seq, self.upto_seq))

    def part(self, *, after_seq: int, upto_seq: int | None) -> ChainRows:
        """The same reader over a sub-range."""
        return ChainRows(after_seq, upto_seq)

    def _range(self) -> tuple[str, list[int]]:
        quote = connection.ops.quote_name
        sql, params = f"{quote('seq')} > %s", [self.after_seq]
        if self.upto_seq is not None:
            sql += f" AND {quote('seq')} <= %s"
            params.append(self.upto_seq)
        return sql, params

    def legacy_upto(self) -> int | None:
        """The last row in range of an older scheme (1, 2, or none known), through the partial
        index `audit_event_legacy`: rows up to it are walked row by row, the rest fast. A row
        claiming an unknown scheme (above 3) is hashed as scheme 3 by the fast walk, fails there
        (its text names the scheme), and the row-by-row walk then reports it."""
        quote = connection.ops.quote_name
        row = self._one(f"SELECT MAX({quote('seq')})", f"{quote('hash_scheme')} < 3 AND ", "")
        return None if row is None or row[0] is None else int(row[0])

    def linked_chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        """(canonical, hash) per row in seq order, both as the UTF-8 bytes the database holds (no
        text decoded, nothing to encode before hashing), in fetchmany chunks: all the fast walk of
        scheme-3 rows reads."""
        quote = connection.ops.quote_name
        where, params = self._range()
        as_bytes = _AS_BYTES[self.vendor]
        columns = ", ".join(as_bytes % {"column": quote(name)} for name in ("canonical", "hash"))
        sql = (
            f"SELECT {columns} FROM {quote(AuditEvent._meta.db_table)} "  # noqa: S608
            f"WHERE {where} ORDER BY {quote('seq')}"
        )
        size = _LINKED_CHUNK.get(self.vendor, CHAIN_CHUNK)
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(size):
                yield chunk

    def last_row(self) -> tuple[int, str | None, str | None] | None:
        """(seq, hash, tag) of the last row in range."""
        quote = connection.ops.quote_name
        row = self._one(
            f"SELECT {quote('seq')}, {quote('hash')}, {quote('tag')}",
            "",
            f" ORDER BY {quote('seq')} DESC LIMIT 1",
        )
        return None if row is None else (int(row[0]), row[1], row[2])

    def _one(self, select: str, condition: str, tail: str) -> tuple[Any, ...] | None:
        """One row of `select` over the events in range (`condition` ANDed before the range)."""
        where, params = self._range()
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"{select} FROM {table} WHERE {condition}{where}{tail}", params)  # noqa: S608
            row = cursor.fetchone()
        return None if row is None else tuple(row)

    def raw_chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        """The rows as a raw cursor reads them (`_RAW_COLUMNS`, `at` and `details` as text), in
        fetchmany chunks (a server-side cursor on PostgreSQL, as the ORM's iterator uses)."""
        quote = connection.ops.quote_name
        meta = AuditEvent._meta
        column_of = {f.attname: str(f.column) for f in meta.concrete_fields}
        columns = [quote(column_of[name]) for name in _RAW_COLUMNS]
        columns[1] = _AT_TEXT[self.vendor] % {"at": columns[1]}
        columns[8] = _DETAILS_TEXT[self.vendor] % {"details": columns[8]}
        where, params = self._range()
        sql = f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} WHERE {where} ORDER BY {quote('seq')}"
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(CHAIN_CHUNK):
                yield chunk

    def details(self, text: Any) -> CanonicalJSON:
        canonical = self.details_cache.get(text)
        if canonical is None:
            if len(self.details_cache) > 10_000:
                self.details_cache.clear()
            canonical = self.details_cache[text] = _details_from_text(text)
        return canonical

    def prepare(self, row: tuple[Any, ...]) -> ChainRow:
        """A raw row as a `ChainRow`: `at` and `details` as the ORM reads them, in canonical text."""
        at = row[1]
        if self.vendor == "sqlite":
            at = _sqlite_at(at)
        elif at is None:
            # Outside what Python's datetime holds (to_char gave NULL): read it as the ORM does.
            return next(_prepared(_orm_rows(row[0] - 1, row[0])))
        else:
            at = at[:10] + "T" + at[11:] + "+00:00"
        return (row[0], at, *row[2:8], self.details(row[8]), *row[9:])


def _orm_rows(after_seq: int, upto_seq: int | None) -> Iterator[tuple[Any, ...]]:
    rows = AuditEvent.objects.filter(seq__gt=after_seq)
    if upto_seq is not None:
        rows = rows.filter(seq__lte=upto_seq)
    columns = rows.order_by("seq").values_list(*_RAW_COLUMNS)
    return columns.iterator(chunk_size=CHAIN_CHUNK)


def _prepared(rows: Iterable[tuple[Any, ...]]) -> Iterator[ChainRow]:
    for seq, at, *middle, details, request_id, prev, digest, scheme, canonical, tag in rows:
        yield (
            seq,
            canonical_at(at),
            *middle,
            canonical_details(details),
            request_id,
            prev,
            digest,
            scheme,
            canonical,
            tag,
        )


# Django's per-row converters (parse the datetime, make it aware, decode the JSON) were half of a
# full verification. The raw cursor reads `at` as text that maps to the canonical text by slicing:
# on SQLite the text Django stored (naive UTC, `str(datetime)`), on PostgreSQL the timestamp in UTC
# in the same shape (NULL outside the years Python's datetime holds, which the ORM then reads).
# `details` is read as JSON text, decoded and re-encoded once per distinct text (most rows share a
# handful of shapes); on PostgreSQL that is jsonb's own text, which the ORM decodes too.
_AT_TEXT = {
    "sqlite": "CAST(%(at)s AS TEXT)",
    "postgresql": (
        "CASE WHEN %(at)s >= TIMESTAMPTZ '0001-01-01 00:00:00+00' "
        "AND %(at)s < TIMESTAMPTZ '10000-01-01 00:00:00+00' "
        "THEN to_char(%(at)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') END"
    ),
}
_DETAILS_TEXT = {"sqlite": "%(details)s", "postgresql": "%(details)s::text"}
_RAW_COLUMNS = (*ROW_FIELDS, "prev_hash", "hash", "hash_scheme", "canonical", "tag")
# Text columns read as their bytes (UTF-8 on both databases), and the linked walk's chunk size:
# smaller chunks keep SQLite's rows in the CPU's cache (1,000 rows: about 10% faster than 5,000);
# on PostgreSQL each chunk is a round trip to the server-side cursor.
_AS_BYTES = {"sqlite": "CAST(%(column)s AS BLOB)", "postgresql": "convert_to(%(column)s, 'UTF8')"}
_LINKED_CHUNK = {"sqlite": 1000}


def _details_from_text(text: Any) -> CanonicalJSON:
    """As the ORM reads the column (JSONField.from_db_value): decoded JSON, or, for text that is
    not JSON (written past the column's check by hand), the text itself, which then fails its hash."""
    if not isinstance(text, str):
        return canonical_details(text)
    try:
        return canonical_details(json.loads(text))
    except json.JSONDecodeError:
        return canonical_details(text)


def _sqlite_at(text: str) -> str:
    """'YYYY-MM-DD HH:MM:SS[.ffffff]' (naive UTC) -> 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00', as
    Django's converter and `isoformat(timespec="microseconds")` give; anything else goes through
    them, so a hand-edited value reads exactly as the ORM would read it."""
    if not isinstance(text, str):
        return str(text)  # hand-edited to another type: hashes as garbage
    if len(text) == 26 and text[10] == " " and text[19] == ".":
        return text[:10] + "T" + text[11:] + "+00:00"
    if len(text) == 19 and text[10] == " ":
        return text[:10] + "T" + text[11:] + ".000000+00:00"
    parsed = parse_datetime(text)
    if parsed is None:
        return text  # not a datetime: hashes as garbage, so the row reads as edited
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return canonical_at(parsed)


def linked_bodies(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The content part of each row's scheme-3 canonical text, rendered by the database exactly as
    the generated column `AuditEvent.canonical` will render it once the row is stored.

    `rows` hold the `LINKED_BODY_FIELDS` values as the model holds them (an aware datetime, the
    actor's id or None, strings, the details value); each is prepared by its model field, as an
    INSERT would, and passed through the same SQL. A writer hashes the position netstrings
    (audit.hashing.linked_position) followed by this text."""
    vendor = connection.vendor
    quote = connection.ops.quote_name
    fields = _body_fields()
    casts = _PG_CASTS if vendor == "postgresql" else {}
    row_sql = "(%s" + "".join(f", %s{casts.get(name, '')}" for name in LINKED_BODY_FIELDS) + ")"
    names = ", ".join(quote(name) for name in ("n", *LINKED_BODY_FIELDS))
    body = linked_body_sql(vendor, {name: quote(name) for name in LINKED_BODY_FIELDS})
    out: list[str] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _BODY_BATCH):
            batch = rows[start : start + _BODY_BATCH]
            params: list[Any] = []
            for n, row in enumerate(batch):
                params.append(n)
                params.extend(
                    field.get_db_prep_save(value, connection)
                    for field, value in zip(fields, row, strict=True)
                )
            cursor.execute(
                f"WITH r({names}) AS (VALUES {', '.join([row_sql] * len(batch))}) "  # noqa: S608
                f"SELECT {body} FROM r ORDER BY {quote('n')}",
                params,
            )
            out.extend(str(found[0]) for found in cursor.fetchall())
    return out


_BODY_BATCH = 500
_PG_CASTS = {"at": "::timestamptz", "actor_id": "::bigint", "details": "::jsonb"}
_PG_CASTS.update({name: "::text" for name in ("actor_name", "action", "target_type", "target_id", "outcome")})
_PG_CASTS["request_id"] = "::text"


def _body_fields() -> tuple[Any, ...]:
    by_attname = {f.attname: f for f in AuditEvent._meta.concrete_fields}
    return tuple(by_attname[name] for name in LINKED_BODY_FIELDS)


def canonical_schema_ok() -> bool:
    """Whether the database still builds `canonical` as audit.hashing defines it. Scheme 3 trusts
    the database to derive the hashed text from the columns; a database administrator who turned
    the generated column into a plain one (or changed its expression) could edit content without changing what is hashed. Checked from the catalog at the
    start of every walk of scheme-3 rows, against the definition in this code."""
    quote = connection.ops.quote_name
    table = AuditEvent._meta.db_table
    names = (*LINKED_POSITION_FIELDS, *LINKED_BODY_FIELDS)
    expression = linked_canonical_sql(connection.vendor, {name: quote(name) for name in names})
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
            found = cursor.fetchone()
            cursor.execute(f"PRAGMA table_xinfo({quote(table)})")
            hidden = {row[1]: row[6] for row in cursor.fetchall()}
            if found is None or hidden.get("canonical") != 3:  # 3: a stored generated column
                return False
            clause = f"{quote('canonical')} text GENERATED ALWAYS AS ({expression}) STORED"
            rest = str(found[0]).replace(clause, "", 1)
            # The clause is there, and nothing else in the table's definition generates a column
            # (SQLite's short form is `AS (...)`) or hides text in a comment.
            return clause in str(found[0]) and not _SQLITE_OTHER_GENERATED.search(rest)
        if connection.vendor == "postgresql":
            return _pg_canonical_ok(cursor, table, expression)
    return False


_SQLITE_OTHER_GENERATED = re.compile(r"GENERATED|\bAS\s*\(|/\*|--", re.IGNORECASE)


def _pg_canonical_ok(cursor: Any, table: str, expression: str) -> bool:
    deparsed = (
        "SELECT a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'canonical' AND NOT a.attisdropped"
    )
    cursor.execute(deparsed, [table])
    stored = cursor.fetchone()
    if stored is None or stored[0] != "s":
        return False
    # The expected expression as PostgreSQL deparses it: the same column on a scratch copy of the
    # table's other columns, in a savepoint that is rolled back.
    quote = connection.ops.quote_name
    probe = "synthgate_canonical_probe"
    try:
        with transaction.atomic():
            cursor.execute(f"CREATE TEMP TABLE {probe} (LIKE {quote(table)})")
            cursor.execute(
                f"ALTER TABLE {probe} DROP COLUMN canonical, "
                f"ADD COLUMN canonical text GENERATED ALWAYS AS ({expression}) STORED"
            )
            cursor.execute(deparsed, [probe])
            reference = cursor.fetchone()
            transaction.set_rollback(True)
    except DatabaseError:
        return False
    return reference is not None and reference[1] == stored[1]


@dataclass
class ChainWalk:
    """A walk along the chain from (`expected_seq`, `prev_hash`); `walk` checks rows in order.

    Per row: no gap or duplicate in seq, a link to the previous hash, a known scheme (unkeyed
    SHA-256 only before the first keyed row), a hash that matches the content under the key, and
    agreement with every signed checkpoint at that seq. A checkpoint that disagrees with rows
    that are otherwise consistent means the chain was recomputed: the rows since the last
    checkpoint that matched are what cannot be trusted.
    """

    key: bytes
    anchors: dict[int, set[str]] = field(default_factory=dict)
    expected_seq: int = 1
    prev_hash: str = GENESIS_HASH
    seen_keyed: bool = False
    anchored_seq: int = 0
    count: int = 0
    unkeyed: int = 0
    # Whether the database still builds the canonical text as defined (checked once per walk).
    schema_ok: bool | None = None

    def walk(self, rows: Iterable[ChainRow]) -> ChainBreak | None:
        if isinstance(rows, ChainRows) and rows.raw:
            # Rows of the older schemes (a prefix, before migration 0006) row by row; the rest,
            # scheme 3, by the linked walk.
            legacy_upto = rows.legacy_upto()
            if legacy_upto is not None:
                broken = self._walk_raw(rows.part(after_seq=rows.after_seq, upto_seq=legacy_upto))
                if broken is not None:
                    return broken
                rows = rows.part(after_seq=legacy_upto, upto_seq=rows.upto_seq)
            return self._walk_linked(rows)
        return self._walk_steps(rows)

    def _walk_steps(self, rows: Iterable[ChainRow]) -> ChainBreak | None:
        for row in rows:
            broken = self._step(row)
            if broken is not None:
                return broken
        return None

    def _walk_linked(self, rows: ChainRows) -> ChainBreak | None:
        """Scheme-3 rows, fast (`_linked_fast`); when anything there is out of the ordinary, the
        same rows again through `_step`, which finds the first row at fault and says why."""
        if self.schema_ok is None:
            self.schema_ok = canonical_schema_ok()
        if not self.schema_ok:
            return ChainBreak(self.expected_seq, "canonical_altered")
        state = (self.expected_seq, self.prev_hash, self.seen_keyed, self.anchored_seq, self.count)
        if self._linked_fast(rows):
            return None
        self.expected_seq, self.prev_hash, self.seen_keyed, self.anchored_seq, self.count = state
        return self._walk_steps(rows)

    def _linked_fast(self, rows: ChainRows) -> bool:
        """Per row: the canonical text starts with the previous row's hash (its first netstring,
        `64:<hash>,`), and its SHA-256 is the stored hash (two columns read as bytes, one hash
        computed, its hex made by binascii.hexlify to compare with the stored bytes);
        then every signed checkpoint in range, and the last row: its seq (with the row count, no
        gap) and its keyed tag, which vouches for every link before it. True when all of that
        holds; False on the first doubt, with the walk's state untouched."""
        expected = self.expected_seq
        prev = self.prev_hash.encode("utf-8", "surrogatepass")
        sha = hashlib.sha256
        upto = rows.upto_seq
        anchor_seqs = sorted(s for s in self.anchors if s >= expected and (upto is None or s <= upto))
        anchored = self.anchored_seq
        position = expected  # the seq of the next row, while there is no gap
        # The loop makes no reference cycles; the collector would only rescan each chunk's
        # row tuples (5-10% of the walk's time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for chunk in rows.linked_chunks():
                end = position + len(chunk)
                if anchor_seqs and anchor_seqs[0] < end:
                    for offset, (text, stored) in enumerate(chunk):
                        if not text.startswith(prev, 3) or hexlify(sha(text).digest()) != stored:
                            return False
                        prev = stored
                        if anchor_seqs and anchor_seqs[0] == position + offset:
                            if self.anchors[anchor_seqs.pop(0)] != {stored.decode()}:
                                return False
                            anchored = position + offset
                else:
                    # The loop all of a full verification's time goes to: no call of ours in it.
                    for text, stored in chunk:
                        if not text.startswith(prev, 3) or hexlify(sha(text).digest()) != stored:
                            return False
                        prev = stored
                position = end
        except (TypeError, AttributeError, UnicodeError):
            return False  # a NULL or odd value: `_step` says what
        finally:
            if collecting:
                gc.enable()
        if position == expected:
            return True
        last = prev.decode("utf-8", "surrogatepass")
        tail = rows.last_row()
        if tail is None or tail[0] != position - 1 or tail[1] != last:
            return False
        if tail[2] is None or not hmac.compare_digest(str(tail[2]), link_tag(self.key, last)):
            return False
        self.count += position - expected
        self.expected_seq, self.prev_hash = position, last
        self.seen_keyed, self.anchored_seq = True, anchored
        return True

    def _walk_raw(self, rows: ChainRows) -> ChainBreak | None:
        """`walk` over the raw chunks (issue 16: 1M events in a few times a raw SHA-256).

        The common row (the next seq, linked to the previous hash, keyed, `at` in the 26-character
        text the raw cursor reads, no checkpoint at its seq) is checked here, inline: its canonical
        bytes built in one f-string (what `canonical_row` gives for such a row) and its HMAC from
        the key's precomputed pads. Every other row, and any row whose hash does not match, goes
        through `_step` exactly as the plain walk does, so every verdict is the plain walk's
        (audit/tests/test_verification_records.py compares the two on edited chains)."""
        inner, outer = hmac_copiers(self.key)
        enc = _encode_str
        anchors = self.anchors
        details_of = rows.details_cache.get
        details = rows.details
        keyed, keyed_text = _KEYED, str(_KEYED)
        step = self._step
        int_repr = int.__repr__
        # The previous hash goes into the message unescaped: a hex digest never needs escaping.
        # Any other starting value (never a real one) sends the first row through `_step`.
        expected = self.expected_seq
        prev: object = self.prev_hash if enc(self.prev_hash) == f'"{self.prev_hash}"' else _NEVER
        fast = 0
        try:
            for chunk in rows.raw_chunks():
                for row in chunk:
                    (
                        seq,
                        at,
                        actor_id,
                        actor_name,
                        action,
                        target_type,
                        target_id,
                        outcome,
                        text,
                        request_id,
                        stored_prev,
                        stored_hash,
                        scheme,
                        _canonical,
                        _tag,
                    ) = row
                    try:
                        if (
                            seq == expected
                            and stored_prev == prev
                            and scheme == keyed
                            and len(at) == 26
                            and at[10] == " "
                            and at[19] == "."
                            and not (anchors and seq in anchors)
                        ):
                            # canonical_row's keyed bytes for this shape of row, spelled out (an
                            # f-string, the fastest way CPython builds it): keys in sorted order,
                            # `at` as the stored text around the "T", `prev_hash` unescaped (it is
                            # a hex digest here), the keyed scheme in place.
                            message = (
                                f'{{"action":{enc(action)},"actor_id":'
                                f"{'null' if actor_id is None else int_repr(actor_id)},"
                                f'"actor_name":{enc(actor_name)},"at":"{at[:10]}T{at[11:]}+00:00",'
                                f'"details":{details_of(text) or details(text)},"outcome":{enc(outcome)},'
                                f'"prev_hash":"{prev}","request_id":{enc(request_id)},"scheme":{keyed_text},'
                                f'"seq":{int_repr(seq)},"target_id":{enc(target_id)},'
                                f'"target_type":{enc(target_type)}}}'
                            )
                            digest = inner()
                            digest.update(message.encode("ascii"))
                            mac = outer()
                            mac.update(digest.digest())
                            if mac.hexdigest() == stored_hash:
                                prev, expected = stored_hash, seq + 1
                                fast += 1
                                continue
                    except (TypeError, ValueError):
                        pass  # an odd value (hand-edited): `_step` decides, as the plain walk
                    self.count += fast
                    self.seen_keyed = self.seen_keyed or fast > 0
                    fast = 0
                    if prev is not _NEVER:
                        self.prev_hash = str(prev)
                    self.expected_seq = expected
                    broken = step(rows.prepare(row))
                    if broken is not None:
                        return broken
                    prev, expected = self.prev_hash, self.expected_seq
        finally:
            self.count += fast
            self.seen_keyed = self.seen_keyed or fast > 0
            if fast:
                self.prev_hash, self.expected_seq = str(prev), expected
        return None

    def _step(self, row: ChainRow) -> ChainBreak | None:
        # Tuple indexing and canonical_row, no dict per row: this loop is the verification's cost.
        seq, stored_prev, stored_hash, scheme = row[0], row[_PREV], row[_HASH], row[_SCHEME]
        self.count += 1
        if seq != self.expected_seq:
            return ChainBreak(min(seq, self.expected_seq), "sequence_gap")
        if stored_prev != self.prev_hash:
            return ChainBreak(seq, "prev_hash_mismatch")
        problem = self._scheme_problem(scheme)
        if problem:
            return ChainBreak(seq, problem)
        if scheme == _LINKED:
            canonical, tag = row[_CANONICAL], row[_TAG]
            if canonical is None or stored_hash != linked_hash(canonical):
                return ChainBreak(seq, "hash_mismatch")
            if tag is None or not hmac.compare_digest(str(tag), link_tag(self.key, str(stored_hash))):
                return ChainBreak(seq, "tag_mismatch")
        elif stored_hash != row_hash(row, prev_hash=stored_prev, scheme=scheme, key=self.key):
            return ChainBreak(seq, "hash_mismatch")
        if self.anchors:
            signed = self.anchors.get(seq)
            if signed is not None:
                if signed != {stored_hash}:
                    return ChainBreak(self.anchored_seq + 1, "checkpoint_mismatch")
                self.anchored_seq = seq
        self.prev_hash, self.expected_seq = stored_hash, seq + 1
        return None

    def _scheme_problem(self, scheme: int) -> str:
        if scheme == HashScheme.HMAC_SHA256 or scheme == _LINKED:
            self.seen_keyed = True
            return ""
        if scheme == HashScheme.SHA256:
            # Only rows written before keying may be unkeyed; the first keyed row's HMAC covers
            # their last hash. Anything unkeyed after that was written without the key.
            if self.seen_keyed:
                return "unkeyed_after_keyed"
            self.unkeyed += 1
            return ""
        return "unknown_scheme"


def audit_verify(*, log: CheckpointLog | None = None) -> ChainVerdict:
    """Walk the whole chain against the key and the signed checkpoints; report the first
    sequence number that cannot be trusted.

    Detected: edited, deleted and inserted rows; rows appended or recomputed without the key
    (hash mismatch, or unkeyed after keyed); a head that disagrees with the last row; a tail
    deleted with the head fixed (a checkpoint lies beyond the last row); a chain recomputed with
    the key (a checkpoint disagrees); and checkpoint lines whose signature fails.
    """
    log = checkpoints_read() if log is None else log
    key = audit_key()
    walk = ChainWalk(key=key, anchors=_anchors(log))
    broken = walk.walk(audit_chain_rows()) or _tail_break(walk, log)
    return _verdict(walk, log, broken, from_seq=0, pending=audit_pending_check(key=key))


def audit_verify_since(*, seq: int, hash: str, log: CheckpointLog | None = None) -> ChainVerdict:
    """Verify only the rows after `seq`, trusting rows up to it because an earlier run (or a
    signed checkpoint) verified them with the hash `hash`.

    Before walking on, it checks that the stored row at `seq` still carries `hash` and that
    every signed checkpoint at or below `seq` still matches its stored row: a chain rewritten
    and recomputed below `seq` changes both. What it cannot see (docs/security.md): a row below
    `seq` whose content was edited, or that was deleted, while the hash columns of the row at
    `seq` and of the checkpointed rows were left alone. The full `audit_verify` catches those.
    """
    log = checkpoints_read() if log is None else log
    anchors = _anchors(log)
    start = AuditEvent.objects.filter(seq=seq).values_list("hash", "hash_scheme").first()
    walk = ChainWalk(key=audit_key(), anchors=anchors, expected_seq=seq + 1, prev_hash=hash)
    walk.seen_keyed = start is not None and start[1] == HashScheme.HMAC_SHA256
    broken = _below_start_break(seq=seq, hash=hash, stored=start[0] if start else None, walk=walk)
    if broken is None:
        broken = walk.walk(audit_chain_rows(after_seq=seq)) or _tail_break(walk, log)
    return _verdict(walk, log, broken, from_seq=seq, pending=audit_pending_check(key=walk.key))


# Checkpoints compared per query below the start of an incremental run (well under SQLite's
# bound-parameter limit).
_ANCHOR_BATCH = 500


def _below_start_break(*, seq: int, hash: str, stored: str | None, walk: ChainWalk) -> ChainBreak | None:
    """Compare every signed checkpoint at or below `seq` with its stored row (a few indexed
    lookups, no hashing), then the start row itself. Sets `walk.anchored_seq` to the newest
    checkpoint that matched, which is where a later `checkpoint_mismatch` is reported from."""
    below = sorted(s for s in walk.anchors if s <= seq)
    for i in range(0, len(below), _ANCHOR_BATCH):
        batch = below[i : i + _ANCHOR_BATCH]
        rows = dict(AuditEvent.objects.filter(seq__in=batch).values_list("seq", "hash"))
        for anchor_seq in batch:
            if walk.anchors[anchor_seq] != {rows.get(anchor_seq)}:
                return ChainBreak(walk.anchored_seq + 1, "checkpoint_mismatch")
            walk.anchored_seq = anchor_seq
    if seq and stored != hash:
        return ChainBreak(walk.anchored_seq + 1, "verified_mismatch")
    return None


def _verdict(
    walk: ChainWalk, log: CheckpointLog, broken: ChainBreak | None, *, from_seq: int, pending: PendingCheck
) -> ChainVerdict:
    counts: dict[str, Any] = {
        "events": walk.count,
        "unkeyed_events": walk.unkeyed,
        "checkpoints": len(log.valid),
        "checkpoint_seq": log.newest.seq if log.newest else None,
        "bad_checkpoints": len(log.bad_lines),
        "pending": pending.pending,
        "pending_overdue": pending.overdue,
        "pending_forged": pending.forged,
        "oldest_pending_at": pending.oldest_at,
        "from_seq": from_seq,
        # The last row that verified (the walk stops before a bad one).
        "upto_seq": walk.expected_seq - 1,
        "upto_hash": walk.prev_hash,
    }
    if broken is not None:
        return ChainVerdict(ok=False, first_bad_seq=broken.seq, reason=broken.reason, **counts)
    if log.bad_lines:
        return ChainVerdict(ok=False, first_bad_seq=None, reason="checkpoint_signature", **counts)
    if pending.forged:
        return ChainVerdict(ok=False, first_bad_seq=None, reason="pending_forged", **counts)
    if pending.overdue:
        return ChainVerdict(ok=False, first_bad_seq=None, reason="merge_delay_exceeded", **counts)
    return ChainVerdict(ok=True, first_bad_seq=None, **counts)


def _anchors(log: CheckpointLog) -> dict[int, set[str]]:
    anchors: dict[int, set[str]] = {}
    for checkpoint in log.valid:
        anchors.setdefault(checkpoint.seq, set()).add(checkpoint.hash)
    return anchors


# How many times the walk follows a head that moved while it read (events committed meanwhile).
_HEAD_CATCH_UP = 3


def _tail_break(walk: ChainWalk, log: CheckpointLog) -> ChainBreak | None:
    for _ in range(_HEAD_CATCH_UP):
        last_seq = walk.expected_seq - 1
        head = AuditChainHead.objects.filter(id=1).first()
        head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        if head_seq <= last_seq:
            break
        # The head is ahead of the rows read: events committed during the walk (now that the
        # schedule verifies a busy log), or a tail deleted. Walk what is there up to the head;
        # if nothing new turns up, the comparison below reports the deleted tail.
        broken = walk.walk(audit_chain_rows(after_seq=last_seq, upto_seq=head_seq))
        if broken is not None:
            return broken
        if walk.expected_seq - 1 == last_seq:
            break
    last_seq = walk.expected_seq - 1
    if head_seq != last_seq or head_hash != walk.prev_hash:
        return ChainBreak(min(head_seq, last_seq) + 1, "head_mismatch")
    if log.newest is not None and log.newest.seq > last_seq:
        return ChainBreak(last_seq + 1, "truncated")
    return None


@dataclass(frozen=True)
class ChainStatus:
    """What the audit pages show instead of walking the chain: the newest recorded verification
    (None before the first), the live head, and optionally the recent runs. A fixed handful of
    queries whatever the log's size; no checkpoint file read (its status is the one the
    newest verification recorded)."""

    latest: AuditVerification | None
    head_seq: int
    history: list[AuditVerification]
    # Sequenced mode, read now: rows committed but not linked yet, and the oldest one's `at`.
    pending: int = 0
    oldest_pending_at: datetime | None = None
    now: datetime | None = None

    @property
    def detail(self) -> str:
        return REASONS.get(self.latest.reason, "") if self.latest else ""

    @property
    def oldest_pending_age(self) -> float | None:
        """Seconds the oldest pending row has waited to be linked (None when none is pending)."""
        if self.oldest_pending_at is None:
            return None
        return max((self.now or timezone.now()) - self.oldest_pending_at, timedelta(0)).total_seconds()

    @property
    def max_merge_delay(self) -> float:
        return MAX_MERGE_DELAY.total_seconds()

    @property
    def merge_delay_exceeded(self) -> bool:
        age = self.oldest_pending_age
        return age is not None and age > self.max_merge_delay

    @property
    def unverified_events(self) -> int:
        """Events written after the newest verification's last row."""
        return max(self.head_seq - (self.latest.upto_seq if self.latest else 0), 0)


def audit_chain_status(*, history: int = 0) -> ChainStatus:
    recent = list(AuditVerification.objects.order_by("-finished_at", "-id")[: max(history, 1)])
    head_seq = AuditChainHead.objects.filter(id=1).values_list("seq", flat=True).first() or 0
    waiting = AuditEvent.objects.filter(seq__isnull=True).aggregate(n=Count("id"), oldest=Min("at"))
    return ChainStatus(
        latest=recent[0] if recent else None,
        head_seq=head_seq,
        history=recent if history else [],
        pending=waiting["n"] or 0,
        oldest_pending_at=waiting["oldest"],
        now=timezone.now(),
    )

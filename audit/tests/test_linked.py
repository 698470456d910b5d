"""Scheme 3 (issue 16 item 3b): the database builds each row's canonical text, SHA-256 links it,
and a keyed tag on the last row vouches for every link before it. What a database administrator
can do to that, and what verification says."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from audit import selectors
from audit.hashing import GENESIS_HASH, HashScheme, audit_key, hmac_event_hash
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_verify, canonical_schema_ok
from audit.services import audit_checkpoint, audit_record
from audit.tests.tampering import execute, fix_head, raw, rechain, relink, triggers_off

pytestmark = pytest.mark.django_db


def record(n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        audit_record(actor=None, action="release.download", target_type="release", target_id=f"r-{i}")


def verdict() -> tuple[bool, int | None, str]:
    found = audit_verify()
    return found.ok, found.first_bad_seq, found.reason


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of rows the walk checked one by one (ChainWalk._step)."""
    seen: list[int] = []
    original = selectors.ChainWalk._step

    def counted(self: selectors.ChainWalk, row: Any) -> Any:
        seen.append(row[0])
        return original(self, row)

    monkeypatch.setattr(selectors.ChainWalk, "_step", counted)
    return seen


def test_new_rows_are_linked_and_tagged_and_verify_without_a_row_by_row_step(steps: list[int]) -> None:
    record(12)
    rows = list(AuditEvent.objects.order_by("seq").values_list("hash_scheme", "canonical", "tag"))

    assert {scheme for scheme, _, _ in rows} == {HashScheme.LINKED}
    assert all(text and tag for _, text, tag in rows)
    assert verdict() == (True, None, "")
    assert steps == []  # every row checked by the linked walk: two columns and one SHA-256 each


def test_the_text_the_writer_hashed_is_the_text_the_database_generated() -> None:
    odd = [
        'ünïcode "quoted" ☃',
        "ctl \x00\t\n\x1f",
        "del \x7f",
        "back\\slash",
        "emoji 😀",
        "\u2028",
        "12",
        "",
    ]
    if connection.vendor == "postgresql":
        odd = [text for text in odd if "\x00" not in text]  # PostgreSQL text holds no NUL
    for i, text in enumerate(odd):
        audit_record(
            actor=None, action="odd", target_type="thing", target_id=text, details={"k": text, "n": i}
        )
    for seq, prev, digest, canonical in AuditEvent.objects.values_list(
        "seq", "prev_hash", "hash", "canonical"
    ):
        assert canonical.startswith(f"64:{prev},")
        assert selectors.linked_hash(canonical) == digest, seq
    assert verdict() == (True, None, "")


def test_an_edited_column_breaks_the_link_at_its_row(steps: list[int]) -> None:
    record(6)
    with triggers_off():
        raw("UPDATE audit_auditevent SET target_id = 'r-forged' WHERE seq = 4")

    assert verdict() == (False, 4, "hash_mismatch")
    assert steps  # the linked walk had a doubt: the row-by-row walk named the row


@pytest.mark.parametrize("column", ["hash", "prev_hash", "hash_scheme"])
def test_editing_a_chain_column_alone_is_caught_at_its_row(column: str) -> None:
    record(6)
    value = {"hash": "f" * 64, "prev_hash": "0" * 64, "hash_scheme": 2}[column]
    with triggers_off():
        raw(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = 3", [value])  # noqa: S608

    ok, seq, reason = verdict()
    assert not ok and seq == 3
    assert (
        reason
        == {"hash": "hash_mismatch", "prev_hash": "prev_hash_mismatch", "hash_scheme": "hash_mismatch"}[
            column
        ]
    )


def test_a_row_appended_with_a_correct_link_but_no_key_is_caught_by_its_tag() -> None:
    record(4)
    last = AuditEvent.objects.get(seq=4)
    with triggers_off():
        raw(
            "INSERT INTO audit_auditevent (seq, at, actor_name, action, target_type, target_id, outcome, "
            "details, request_id, prev_hash, hash, hash_scheme, content_hash) "
            "VALUES (5, %s, 'system', 'release.download', 'release', 'r-x', 'success', '{}', '', %s, %s, 3, '')",
            [last.at, last.hash, "0" * 64],
        )
        relink(5)  # the right SHA-256 link; a tag under a guessed key
        fix_head()

    assert verdict() == (False, 5, "tag_mismatch")


def test_a_middle_rows_tag_counts_where_a_walk_ends() -> None:
    """Tags vouch for every row before them, so the walk checks the last one (and every one when
    in doubt). A middle row's tag edited alone changes no content and passes; cut the chain there
    and it is the last row's tag, and fails."""
    record(5)
    with triggers_off():
        raw("UPDATE audit_auditevent SET tag = %s WHERE seq = 3", ["0" * 64])
    assert verdict() == (True, None, "")
    with triggers_off():
        raw("DELETE FROM audit_auditevent WHERE seq > 3")
        fix_head()

    assert verdict() == (False, 3, "tag_mismatch")


def test_a_chain_relinked_from_an_edit_without_the_key_names_the_edited_row() -> None:
    record(8)
    with triggers_off():
        raw("UPDATE audit_auditevent SET outcome = 'denied' WHERE seq = 3")
        rechain(3, declare=HashScheme.LINKED)

    assert verdict() == (False, 3, "tag_mismatch")


def test_a_chain_relinked_with_a_stolen_key_is_caught_by_a_signed_checkpoint() -> None:
    record(6)
    assert audit_checkpoint().status == "written"
    record(2, start=6)
    with triggers_off():
        raw("UPDATE audit_auditevent SET outcome = 'denied' WHERE seq = 2")
        rechain(2, declare=HashScheme.LINKED, key=audit_key())

    assert verdict() == (False, 1, "checkpoint_mismatch")


def test_rows_of_the_older_schemes_then_linked_rows_verify_as_one_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An installation upgraded to scheme 3: its keyed rows from before, then linked ones."""
    ranges: list[tuple[str, int, int | None]] = []
    for name in ("_walk_raw", "_walk_linked"):
        original = getattr(selectors.ChainWalk, name)

        def spied(self: Any, rows: Any, _original: Any = original, _name: str = name) -> Any:
            ranges.append((_name, rows.after_seq, rows.upto_seq))
            return _original(self, rows)

        monkeypatch.setattr(selectors.ChainWalk, name, spied)
    key, prev, now = audit_key(), GENESIS_HASH, timezone.now()
    for seq in (1, 2, 3):
        fields: dict[str, Any] = {
            "seq": seq,
            "at": now,
            "actor_id": None,
            "actor_name": "system",
            "action": "old.action",
            "target_type": "release",
            "target_id": str(seq),
            "outcome": "success",
            "details": {"seq": seq},
            "request_id": "",
        }
        digest = hmac_event_hash(key=key, prev_hash=prev, **fields)
        AuditEvent.objects.create(prev_hash=prev, hash=digest, hash_scheme=HashScheme.HMAC_SHA256, **fields)
        prev = digest
    AuditChainHead.objects.update_or_create(id=1, defaults={"seq": 3, "hash": prev})
    record(5)

    assert list(AuditEvent.objects.order_by("seq").values_list("hash_scheme", flat=True)) == [
        2,
        2,
        2,
        3,
        3,
        3,
        3,
        3,
    ]
    assert verdict() == (True, None, "")
    # The older rows by the row-level walk, the linked ones (from seq 4) by the linked walk.
    assert ranges[:2] == [("_walk_raw", 0, 3), ("_walk_linked", 3, None)]
    with triggers_off():
        raw("UPDATE audit_auditevent SET target_id = 'x' WHERE seq = 2")
    assert verdict() == (False, 2, "hash_mismatch")


# --- The canonical text must stay the database's own ---------------------------------------------


def test_the_generated_column_is_as_the_code_defines_it() -> None:
    assert canonical_schema_ok()


def test_a_generated_column_turned_into_a_plain_one_is_caught() -> None:
    """A database administrator who makes `canonical` a plain column can edit content without
    changing what is hashed: verification refuses every linked row."""
    record(5)
    with triggers_off():
        if connection.vendor == "postgresql":
            execute("ALTER TABLE audit_auditevent ALTER COLUMN canonical DROP EXPRESSION")
        else:
            _sqlite_rebuild_with_plain_canonical()
        raw("UPDATE audit_auditevent SET outcome = 'denied' WHERE seq = 3")

    assert not canonical_schema_ok()
    assert verdict() == (False, 1, "canonical_altered")


def test_a_generated_column_with_another_expression_is_caught() -> None:
    """The column still generated, but from an expression that leaves `outcome` out: an edit of
    `outcome` would then not change what is hashed."""
    record(4)
    with triggers_off():
        if connection.vendor == "postgresql":
            execute(
                "ALTER TABLE audit_auditevent DROP COLUMN canonical, ADD COLUMN canonical text "
                "GENERATED ALWAYS AS (prev_hash || ',' || seq::text || ',' || action) STORED"
            )
        else:
            _sqlite_rebuild_with_plain_canonical(expression='"prev_hash" || \',\' || "seq"')
        raw("UPDATE audit_auditevent SET outcome = 'denied' WHERE seq = 2")

    assert not canonical_schema_ok()
    assert verdict() == (False, 1, "canonical_altered")


def _sqlite_rebuild_with_plain_canonical(expression: str = "") -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_auditevent'")
        sql = cursor.fetchone()[0]
    start = sql.index('"canonical" text GENERATED')
    end = sql.index(") STORED", start) + len(") STORED")
    column = (
        f'"canonical" text GENERATED ALWAYS AS ({expression}) STORED' if expression else '"canonical" text'
    )
    plain = sql[:start] + column + sql[end:]
    execute("CREATE TABLE audit_copy AS SELECT * FROM audit_auditevent", "DROP TABLE audit_auditevent", plain)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA table_info(audit_copy)")
        names = ", ".join(
            f'"{row[1]}"' for row in cursor.fetchall() if not (expression and row[1] == "canonical")
        )
    execute(f"INSERT INTO audit_auditevent ({names}) SELECT {names} FROM audit_copy", "DROP TABLE audit_copy")

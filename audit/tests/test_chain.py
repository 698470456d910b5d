"""The audit log is append-only and hash-chained: tampering of any kind is pinned to a sequence number.

To tamper, a test first does what a rogue DBA would: switch off the append-only triggers (by
vendor, so the tests pass on SQLite and on PostgreSQL via DATABASE_URL). The attacks that also
recompute hashes and fix the head are in test_attacks.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from audit.hashing import HashScheme, audit_key, sha256_event_hash
from audit.models import AuditEvent
from audit.selectors import ChainVerdict, audit_verify
from audit.services import audit_record
from audit.tests.tampering import raw, rechain, relink, triggers_off
from portal.services import user_update


@pytest.fixture
def history(ada: Any, alice: Any, charlie: Any) -> int:
    """A log written by real services: persona and team creation, then an admin's edits."""
    user_update(actor=ada, user_id=alice.pk, role="privacy_officer")
    user_update(actor=ada, user_id=charlie.pk, is_active=False)
    audit_record(actor=ada, action="release.download", target_type="release", target_id="r-1")
    count = AuditEvent.objects.count()
    assert count >= 8
    return count


def test_an_empty_log_verifies(db: None) -> None:
    assert audit_verify() == ChainVerdict(ok=True, events=0, first_bad_seq=None)


def test_the_chain_verifies_after_several_service_actions(history: int) -> None:
    verdict = audit_verify()

    assert (verdict.ok, verdict.events, verdict.first_bad_seq) == (True, history, None)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, history + 1))


def test_editing_a_rows_details_breaks_the_chain_at_that_row(history: int) -> None:
    with triggers_off():
        raw("UPDATE audit_auditevent SET details = %s WHERE seq = %s", [json.dumps({"role": "x"}), 4])

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 4)


def test_rewriting_a_row_with_a_fresh_hash_is_caught_at_the_next_row(history: int) -> None:
    # Even someone holding the audit key who rewrites one row (its link and its tag) leaves the
    # next row's link stale.
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'nobody' WHERE seq = 3")
        relink(3, key=audit_key())

    assert audit_verify().first_bad_seq == 4


def test_rewriting_a_row_and_recomputing_every_link_after_it_is_caught_by_the_tag(history: int) -> None:
    # Scheme 3's links are plain SHA-256: anyone can recompute them from an edited row to the head.
    # Only the tags need the key, and the first one recomputed without it names the row.
    with triggers_off():
        raw("UPDATE audit_auditevent SET action = 'release.nothing' WHERE seq = 3")
        rechain(3, declare=HashScheme.LINKED)

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, 3, "tag_mismatch")


def test_deleting_a_middle_row_breaks_the_chain_at_its_seq(history: int) -> None:
    with triggers_off():
        raw("DELETE FROM audit_auditevent WHERE seq = %s", [5])

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 5)


def test_deleting_the_last_row_is_detected(history: int) -> None:
    with triggers_off():
        raw("DELETE FROM audit_auditevent WHERE seq = %s", [history])

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, history)


def test_a_forged_row_appended_at_the_end_is_detected_even_with_a_valid_hash(history: int) -> None:
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    fields: dict[str, Any] = {
        "seq": history + 1,
        "at": last.at,
        "actor_name": "ada",
        "action": "user.update",
        "target_type": "user",
        "target_id": "1",
        "outcome": "success",
        "details": {},
        "request_id": "",
        "prev_hash": last.hash,
    }
    # Inserts are allowed by the triggers; only the chain head, kept apart, gives this one away.
    AuditEvent.objects.create(actor=None, hash=sha256_event_hash(actor_id=None, **fields), **fields)

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, history + 1)


def test_the_orm_refuses_to_change_or_delete_an_event(history: int) -> None:
    event = AuditEvent.objects.get(seq=2)
    event.action = "user.delete"

    with pytest.raises(RuntimeError, match="append-only"):
        event.save()
    with pytest.raises(RuntimeError, match="append-only"):
        event.delete()
    # Bulk queryset writes skip the model methods; the database trigger stops them instead.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq=2).update(action="user.delete")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq=2).delete()

    assert AuditEvent.objects.get(seq=2).action != "user.delete"
    assert audit_verify().ok


def test_the_database_refuses_a_raw_update_or_delete(history: int) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("UPDATE audit_auditevent SET action = 'x' WHERE seq = 1")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("DELETE FROM audit_auditevent WHERE seq = 1")

    assert AuditEvent.objects.count() == history
    assert audit_verify().ok


def test_tampering_helpers_put_the_triggers_back(history: int) -> None:
    with triggers_off():
        pass

    with pytest.raises(DatabaseError), transaction.atomic():
        raw("DELETE FROM audit_auditevent WHERE seq = 1")


@pytest.mark.services  # runs in the PostgreSQL stage of `make test`; deselected on SQLite
def test_postgresql_refuses_truncate(history: int) -> None:
    assert connection.vendor == "postgresql"
    raw("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE, too, waits for no deferred FK checks

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("TRUNCATE audit_auditevent")

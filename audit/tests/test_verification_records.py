"""Verification that scales (issue 16 item 3): pages show the recorded verdict instead of walking
the chain, readers verify on demand, the beat verifies incrementally under a lock, and the fast
canonical form is byte for byte the one the chain was hashed over."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DataError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit import selectors, tasks
from audit.hashing import HashScheme, audit_key, canonical, canonical_row, event_hash, linked_hash, row_hash
from audit.models import AuditEvent, AuditVerification
from audit.selectors import ROW_FIELDS, audit_chain_rows, audit_verify
from audit.services import audit_checkpoint, audit_record, audit_verification_run
from audit.tests.tampering import raw, rechain, triggers_off
from core import locks

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def record_events(n: int, **extra: Any) -> None:
    for i in range(n):
        audit_record(
            actor=None, action="release.download", target_type="release", target_id=f"r-{i}", **extra
        )


def verify_command(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


# --- The fast canonical form ------------------------------------------------------------------

ODD_DETAILS: list[Any] = [
    {},
    {"reason": "not_team", "status": 404},
    {"z": 1, "a": [3, 2, {"y": None, "b": True}], "é": "naïve ☃ \u2028", "ctl": '\x00\t\n"\\/'},
    {"float": 0.1, "big": 10**30, "neg": -1.5e-7},
    "a bare string",
    [1, "two"],
]


@pytest.mark.parametrize("details", ODD_DETAILS)
@pytest.mark.parametrize("scheme", [None, HashScheme.HMAC_SHA256.value])
def test_canonical_row_is_byte_for_byte_canonical(details: Any, scheme: int | None) -> None:
    fields: dict[str, Any] = {
        "seq": 42,
        "at": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),  # microsecond 0: still six digits
        "actor_id": None,
        "actor_name": 'ünïcode "quoted"',
        "action": "release.download",
        "target_type": "release",
        "target_id": '=HYPERLINK("x")',
        "outcome": "success",
        "details": details,
        "request_id": "",
    }
    row = tuple(fields[name] for name in ROW_FIELDS)

    assert canonical_row(row, "ab" * 32, scheme) == canonical(prev_hash="ab" * 32, scheme=scheme, **fields)


def storable(values: list[Any]) -> list[Any]:
    """PostgreSQL refuses NUL in text and jsonb (the INSERT fails); SQLite stores it."""
    if connection.vendor != "postgresql":
        return values
    return [value for value in values if "\\u0000" not in json.dumps(value)]


def test_rows_streamed_from_the_database_hash_as_the_reference_code_hashes_them(ada: Any) -> None:
    for details in storable(ODD_DETAILS):
        audit_record(actor=ada, action="odd.details", target_type="thing", target_id="t", details=details)
    key = audit_key()
    reference = AuditEvent.objects.order_by("seq").values_list(
        *ROW_FIELDS, "prev_hash", "hash", "hash_scheme"
    )
    streamed = list(audit_chain_rows())

    assert len(streamed) == len(reference) >= len(storable(ODD_DETAILS))
    for fast, slow in zip(streamed, reference, strict=True):
        assert fast[10:13] == slow[-3:]  # prev_hash, hash, hash_scheme
        fields = dict(zip(ROW_FIELDS, slow, strict=False))
        # The row-level canonical JSON is what the older schemes hash: still byte for byte.
        expected = event_hash(scheme=HashScheme.HMAC_SHA256, key=key, prev_hash=slow[-3], **fields)
        assert row_hash(fast, prev_hash=fast[10], scheme=HashScheme.HMAC_SHA256, key=key) == expected
        # Scheme 3 (what audit_record writes): the link over the database's canonical text.
        assert slow[-1] == HashScheme.LINKED
        assert linked_hash(fast[13]) == slow[-2]
    assert audit_verify().ok


# --- The walk's fast path (issue 16 item 3) ---------------------------------------------------
# ChainWalk reads raw chunks and checks the common row inline; anything else goes through
# ChainWalk._step. Both must reach the same verdict on every chain, tampered or not.

ODD_TEXT = ['ünïcode "quoted"', "ctl \x00\t\n\x1f", "del \x7f", "back\\slash", "emoji 😀", "\u2028"]


def both_walks(monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[Any, ...], tuple[Any, ...], int]:
    """(fast walk's outcome, plain walk's outcome, rows the fast walk sent to _step)."""
    key = audit_key()
    stepped: list[int] = []
    original = selectors.ChainWalk._step

    def counted(self: selectors.ChainWalk, row: Any) -> Any:
        stepped.append(row[0])
        return original(self, row)

    def outcome(walk: selectors.ChainWalk, broken: Any) -> tuple[Any, ...]:
        state = (walk.count, walk.expected_seq, walk.prev_hash, walk.seen_keyed, walk.unkeyed)
        return (broken, *state, walk.anchored_seq)

    anchors = {3: {AuditEvent.objects.get(seq=3).hash}} if AuditEvent.objects.filter(seq=3).exists() else {}
    with monkeypatch.context() as patch:
        patch.setattr(selectors.ChainWalk, "_step", counted)
        fast = selectors.ChainWalk(key=key, anchors=dict(anchors))
        fast_outcome = outcome(fast, fast.walk(audit_chain_rows()))
    plain = selectors.ChainWalk(key=key, anchors=dict(anchors))
    plain_outcome = outcome(plain, plain.walk(iter(audit_chain_rows())))
    return fast_outcome, plain_outcome, len(stepped)


def test_the_fast_walk_checks_common_rows_inline_and_agrees_with_the_plain_walk(
    ada: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, details in enumerate(storable(ODD_DETAILS)):
        audit_record(actor=ada, action="odd.details", target_type="thing", target_id=f"t{i}", details=details)
    for text in storable(ODD_TEXT):
        audit_record(actor=None, action=text, target_type=text, target_id=text, details={"k": text})
    fast, plain, stepped = both_walks(monkeypatch)

    total = AuditEvent.objects.filter(seq__isnull=False).count()
    assert total >= len(storable(ODD_DETAILS)) + len(storable(ODD_TEXT))
    assert fast == plain and fast[0] is None and fast[1] == total
    # Only the checkpointed row (seq 3) and a row stored at a whole second (no microseconds in
    # the stored text) leave the fast path; every other row is checked inline.
    whole_seconds = sum(1 for at in AuditEvent.objects.values_list("at", flat=True) if at.microsecond == 0)
    assert stepped <= 1 + whole_seconds
    assert stepped < total // 2
    assert audit_verify().ok


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("target_id", "t2 edited"),
        ("target_id", "del \x7f"),
        ("target_id", "ünïcode"),
        ("actor_name", 'a "quote"'),
        ("actor_id", None),
        ("request_id", "req-forged"),
        ("details", '{"k": "other"}'),
        ("details", '{"b": 1, "a": 2}'),  # the same value as stored below, keys in another order
        ("outcome", "denied"),
        ("hash_scheme", 1),
        ("hash_scheme", 7),
        ("prev_hash", "0" * 64),
        ("seq", 99),
    ],
)
def test_the_fast_walk_reaches_the_plain_walks_verdict_on_every_edit(
    ada: Any, monkeypatch: pytest.MonkeyPatch, column: str, value: Any
) -> None:
    for i in range(6):
        details = {"a": 2, "b": 1} if i == 4 else {"k": i}
        audit_record(
            actor=ada, action="release.download", target_type="release", target_id=f"t{i}", details=details
        )
    seq = AuditEvent.objects.get(target_id="t4").seq
    with triggers_off():
        raw(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = %s", [value, seq])  # noqa: S608
    fast, plain, _ = both_walks(monkeypatch)

    assert fast == plain
    if column == "details" and value.startswith('{"b"') and connection.vendor == "postgresql":
        assert fast[0] is None  # the same JSON value, the same jsonb: not an edit, on either walk
    else:
        assert fast[0] is not None and fast[0].seq == min(seq, value if column == "seq" else seq)


def test_the_fast_walk_agrees_on_a_timestamp_edited_into_another_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_events(4)
    seq = AuditEvent.objects.get(target_id="r-1").seq
    at = AuditEvent.objects.get(seq=seq).at.astimezone(UTC)
    if connection.vendor == "sqlite":
        # The same instant in ISO text (the ORM reads it as the same datetime), then another instant.
        edits = [at.replace(tzinfo=None).isoformat(timespec="microseconds"), str(at + timedelta(seconds=1))]
    else:
        edits = [at.isoformat(), (at + timedelta(seconds=1)).isoformat()]
    verdicts = []
    for text in edits:
        with triggers_off():
            raw("UPDATE audit_auditevent SET at = %s WHERE seq = %s", [text, seq])
        fast, plain, _ = both_walks(monkeypatch)
        assert fast == plain
        verdicts.append(fast[0])
    # PostgreSQL stores the same instant whatever its spelling; SQLite stores the text, and a
    # scheme-3 row hashes the text the database holds, so a re-spelled timestamp is an edit there.
    assert (verdicts[0] is None) == (connection.vendor == "postgresql")
    assert verdicts[1] is not None and verdicts[1].seq == seq


# --- Pages show the recorded verdict; GET never walks the chain -------------------------------


@pytest.fixture
def no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def walked(*_: Any, **__: Any) -> None:
        raise AssertionError("a GET must not verify the chain")

    monkeypatch.setattr(selectors, "audit_verify", walked)
    monkeypatch.setattr(selectors, "audit_verify_since", walked)
    monkeypatch.setattr(selectors.ChainWalk, "walk", walked)


def test_pages_and_the_api_get_show_the_latest_verification_without_walking(
    audrey: Any, api: Any, no_walk: None
) -> None:
    record_events(3)
    AuditVerification.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        mode="full",
        trigger="scheduled",
        actor_name="system",
        ok=True,
        upto_seq=3,
        events=3,
        checkpoints=2,
        checkpoint_seq=3,
    )
    record_events(2)
    client = signed_in(audrey)

    listing = client.get(reverse("audit:event-list")).content.decode()
    details = client.get(reverse("audit:verify")).content.decode()
    body = api(audrey).get(reverse("audit-verify")).json()

    since = AuditEvent.objects.count() - 3
    assert "Chain intact</strong> up to event #3" in listing and f"{since} events written since" in listing
    assert "2 valid, newest at seq 3" in listing
    assert 'id="verify-now"' in details and "Recent verifications" in details
    assert (body["ok"], body["upto_seq"], body["mode"], body["checkpoint_seq"]) == (True, 3, "full", 3)
    assert body["head_seq"] == AuditEvent.objects.count()


def test_before_any_verification_the_page_says_so(audrey: Any, api: Any, no_walk: None) -> None:
    html = signed_in(audrey).get(reverse("audit:event-list")).content.decode()

    assert "Not verified yet." in html
    assert api(audrey).get(reverse("audit-verify")).json()["ok"] is None


def test_the_log_page_costs_the_same_queries_at_any_size(audrey: Any) -> None:
    client = signed_in(audrey)
    audit_verification_run(mode="full", trigger="manual", actor=audrey)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("audit:event-list")).status_code == 200
            assert client.get(reverse("audit:verify")).status_code == 200
        return len(captured)

    record_events(5)
    few = queries()
    record_events(300)
    assert queries() == few


# --- On demand ----------------------------------------------------------------------------------


def test_verify_now_records_the_result_audits_it_and_catches_a_tamper(olivia: Any) -> None:
    record_events(6)
    client = signed_in(olivia)
    events = AuditEvent.objects.count()

    first = client.post(reverse("audit:verify"))
    intact = AuditVerification.objects.get()

    assert first.status_code == 302 and first["Location"] == reverse("audit:verify")
    assert (intact.ok, intact.mode, intact.trigger, intact.actor_name) == (True, "full", "manual", "olivia")
    assert intact.upto_seq == intact.events == events
    audited = AuditEvent.objects.get(action="audit.verify")
    assert (audited.actor_name, audited.target_id) == ("olivia", str(intact.pk))
    assert audited.details["upto_seq"] == intact.upto_seq

    with triggers_off():
        raw("UPDATE audit_auditevent SET target_id = 'r-99' WHERE seq = 3")
    html = client.post(reverse("audit:verify"), follow=True).content.decode()

    broken = AuditVerification.objects.order_by("-id").first()
    assert broken is not None and (broken.ok, broken.first_bad_seq, broken.reason) == (
        False,
        3,
        "hash_mismatch",
    )
    assert broken.upto_seq == 2  # the last row that verified
    assert "Chain BROKEN at seq 3" in html


def test_the_api_post_verifies_and_records(audrey: Any, api: Any) -> None:
    record_events(4)
    body = api(audrey).post(reverse("audit-verify"), {"mode": "incremental"}, format="json").json()

    # Nothing verified before and no checkpoint: the incremental request runs in full.
    assert (body["ok"], body["mode"], body["from_seq"], body["trigger"]) == (True, "full", 0, "manual")
    assert AuditVerification.objects.count() == 1


# --- Incremental ---------------------------------------------------------------------------------


def test_incremental_walks_only_new_events_and_catches_an_edit_after_the_last_verified_seq() -> None:
    record_events(10)
    full = audit_verification_run(mode="full", trigger="command")
    record_events(5)

    again = audit_verification_run(mode="incremental", trigger="command")
    assert (again.ok, again.mode, again.from_seq, again.events) == (True, "incremental", full.upto_seq, 5)

    record_events(3)
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = %s", [again.upto_seq + 2])
    caught = audit_verification_run(mode="incremental", trigger="scheduled")

    assert (caught.ok, caught.first_bad_seq, caught.reason) == (False, again.upto_seq + 2, "hash_mismatch")
    assert caught.from_seq == again.upto_seq
    # Audited although scheduled: a break is worth a row in the log.
    assert AuditEvent.objects.filter(action="audit.verify", outcome="failure").count() == 1


def test_incremental_catches_a_chain_recomputed_below_where_it_starts() -> None:
    record_events(10)
    full = audit_verification_run(mode="full", trigger="command")
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 4")
        rechain(4, key=audit_key())  # a stolen key: every hash from #4 on recomputed, head fixed

    caught = audit_verification_run(mode="incremental", trigger="command")

    assert (caught.ok, caught.reason, caught.from_seq) == (False, "verified_mismatch", full.upto_seq)
    assert caught.first_bad_seq == 1  # no checkpoint below it to narrow the range
    # With the key and no checkpoint to contradict it, the full walk cannot tell: the recorded
    # verified hash is what shows the rewrite (a signed checkpoint would, in full runs too).
    assert audit_verify().ok


def test_what_incremental_does_not_see_below_its_start_the_full_run_does() -> None:
    # Documented in docs/security.md: a row edited below the start, its hash left alone.
    record_events(8)
    audit_verification_run(mode="full", trigger="command")
    with triggers_off():
        raw("UPDATE audit_auditevent SET target_id = 'r-77' WHERE seq = 2")

    assert audit_verification_run(mode="incremental", trigger="command").ok
    full = audit_verification_run(mode="full", trigger="command")
    assert (full.ok, full.first_bad_seq) == (False, 2)


def test_incremental_starts_from_a_newer_signed_checkpoint_and_compares_older_ones() -> None:
    record_events(6)
    audit_verification_run(mode="full", trigger="command")
    record_events(4)
    assert audit_checkpoint().status == "written"
    checkpointed = AuditEvent.objects.count()
    record_events(2)

    run = audit_verification_run(mode="incremental", trigger="command")
    assert (run.ok, run.from_seq, run.events) == (True, checkpointed, 2)

    with triggers_off():
        raw("UPDATE audit_auditevent SET hash = %s WHERE seq = %s", ["e" * 64, checkpointed])
    caught = audit_verification_run(mode="incremental", trigger="command")
    assert (caught.ok, caught.reason) == (False, "checkpoint_mismatch")


def test_verify_audit_is_full_by_default_and_incremental_with_since_last() -> None:
    record_events(5)
    assert verify_command() == (0, "ok: 5 events\n")
    record_events(2)
    assert verify_command("--since-last") == (0, "ok: 2 events after #5\n")
    assert list(AuditVerification.objects.order_by("id").values_list("mode", "trigger")) == [
        ("full", "command"),
        ("incremental", "command"),
    ]


# --- The schedule -----------------------------------------------------------------------------


def lock_is_free() -> bool:
    token = locks.acquire(tasks.VERIFY_LOCK, 60)
    if token is not None:
        locks.release(tasks.VERIFY_LOCK, token)
    return token is not None


@pytest.fixture
def clear_lock() -> Any:
    assert lock_is_free()
    yield


def test_the_scheduled_task_is_in_the_beat_schedule(settings: Any) -> None:
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks.VERIFY_TASK in entries


def test_the_scheduled_run_skips_while_another_holds_the_lock(clear_lock: None) -> None:
    record_events(3)
    held = locks.acquire(tasks.VERIFY_LOCK, 60)  # another worker's run
    assert held is not None

    assert tasks.verify_audit_chain() == {"skipped": 1}
    assert not AuditVerification.objects.exists()

    locks.release(tasks.VERIFY_LOCK, held)
    result = tasks.verify_audit_chain()
    assert result["ok"] and result["mode"] == "full"
    # Released afterwards, so the next tick runs: incremental now that a full run is fresh.
    assert tasks.verify_audit_chain()["mode"] == "incremental"
    assert lock_is_free()


def test_the_scheduled_run_goes_full_once_the_last_full_run_is_a_day_old(clear_lock: None) -> None:
    record_events(3)
    old = audit_verification_run(mode="full", trigger="scheduled")
    AuditVerification.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(hours=25))

    assert tasks.verify_audit_chain()["mode"] == "full"
    assert tasks.verify_audit_chain()["mode"] == "incremental"


def test_a_crashing_run_releases_the_lock(clear_lock: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(tasks, "audit_verification_scheduled", boom)
    with pytest.raises(RuntimeError):
        tasks.verify_audit_chain()
    assert lock_is_free()


def test_events_committed_during_the_walk_are_followed_not_reported_as_a_broken_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_events(5)
    original = selectors.audit_chain_rows
    calls: list[int] = []

    def rows_then_a_new_event(**kwargs: Any) -> Any:
        calls.append(1)
        yield from original(**kwargs)
        if len(calls) == 1:  # another request's event commits once the first read is done
            audit_record(actor=None, action="release.download", target_type="release", target_id="late")

    monkeypatch.setattr(selectors, "audit_chain_rows", rows_then_a_new_event)
    verdict = audit_verify()

    assert (verdict.ok, verdict.events, verdict.upto_seq) == (True, 6, 6)
    assert len(calls) == 2


def test_details_edited_into_invalid_json_read_as_an_edit_not_a_crash() -> None:
    record_events(3)
    if connection.vendor == "postgresql":
        # The attack cannot be made here: jsonb refuses text that is not JSON, whoever writes it.
        with triggers_off(), pytest.raises(DataError), transaction.atomic():
            raw("UPDATE audit_auditevent SET details = %s WHERE seq = 2", ["{not json"])
        assert audit_verify().ok
        return
    with triggers_off():
        raw("PRAGMA ignore_check_constraints = ON")
        raw("UPDATE audit_auditevent SET details = %s WHERE seq = 2", ["{not json"])
        raw("PRAGMA ignore_check_constraints = OFF")

    verdict = audit_verify()

    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, 2, "hash_mismatch")

"""Sequenced audit writes (issue 16 item 3): writers insert events pending, without the chain-head
lock; the sequencer links them in id order within the maximum merge delay; verification never
accepts a pending row, and fails on a late or forged one; the database lets exactly one UPDATE
through, linking a pending row.

Sequenced mode exists on PostgreSQL only, so these tests are marked `services`: deselected in the
SQLite stage, required in the PostgreSQL stage under CI=true (scripts/test.sh). The settings tests
at the end load settings in a subprocess and run in both stages.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Min
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import services, tasks
from audit.hashing import HashScheme, audit_key, pending_hash
from audit.models import AuditChainHead, AuditEvent, AuditVerification
from audit.selectors import MAX_MERGE_DELAY, audit_verify, audit_verify_since
from audit.services import audit_record, audit_sequence, audit_verification_run
from audit.tests.tampering import fix_head, forged_hash, raw, triggers_off
from core import locks

services_only = pytest.mark.services

WRITERS = 8


@pytest.fixture
def sequenced(db: None, settings: Any) -> None:
    settings.SYNTHGATE_AUDIT_SEQUENCER = True


def write(n: int, *, tag: str = "r", actor: Any = None) -> list[AuditEvent]:
    return [
        audit_record(actor=actor, action="release.download", target_type="release", target_id=f"{tag}-{i}")
        for i in range(n)
    ]


def pending_count() -> int:
    return AuditEvent.objects.filter(seq__isnull=True).count()


def head() -> tuple[int, str]:
    row = AuditChainHead.objects.get(id=1)
    return row.seq, row.hash


def linked_seqs_by_id() -> list[int]:
    return list(AuditEvent.objects.filter(seq__isnull=False).order_by("id").values_list("seq", flat=True))


def command(name: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command(name, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def in_threads(target: Callable[[int], Any], count: int) -> list[Any]:
    """Run `target(i)` in `count` threads started together; each closes its own connection.
    Re-raises the first exception a thread hit."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


# --- Writing pending, linking in id order --------------------------------------------------------


@services_only
def test_a_sequenced_write_is_pending_sealed_and_linked_in_id_order(ada: Any, sequenced: None) -> None:
    before = head()  # the personas' events, chained by unsequenced writes before the switch
    events = write(5, actor=ada)

    assert [e.seq for e in events] == [None] * 5
    assert all(e.hash is None and e.prev_hash is None and len(e.content_hash) == 64 for e in events)
    assert head() == before  # the head was not touched, so not locked
    # Pending rows are counted, never accepted as part of the chain.
    verdict = audit_verify()
    assert (verdict.ok, verdict.events, verdict.pending, verdict.pending_overdue) == (True, before[0], 5, 0)

    outcome = audit_sequence()

    assert (outcome.linked, outcome.first_seq, outcome.last_seq, outcome.refused) == (
        5,
        before[0] + 1,
        before[0] + 5,
        (),
    )
    seqs = linked_seqs_by_id()
    assert seqs == list(range(1, before[0] + 6))  # contiguous, and in id order
    linked = AuditEvent.objects.get(pk=events[0].pk)
    assert (linked.seq, linked.prev_hash, linked.action) == (before[0] + 1, before[1], "release.download")
    verdict = audit_verify()
    assert (verdict.ok, verdict.events, verdict.pending) == (True, before[0] + 5, 0)
    # Linking is idempotent: nothing left to link, nothing moves.
    assert audit_sequence().linked == 0
    assert head() == (before[0] + 5, linked_last_hash())


@services_only
def test_rows_pending_across_the_upgrade_to_scheme_3_are_linked_under_their_own_scheme(
    sequenced: None,
) -> None:
    """A row written pending by the code before migration 0006 (keyed scheme 2) is linked with
    scheme 2's HMAC, the rows after it with scheme 3's link and tag, and the chain verifies."""
    old, new = write(1, tag="old")[0], write(2, tag="new")
    with triggers_off():
        raw("UPDATE audit_auditevent SET hash_scheme = 2 WHERE id = %s", [old.pk])  # as the old code wrote it

    assert audit_sequence().linked == 3
    rows = dict(
        AuditEvent.objects.filter(pk__in=[old.pk, *(e.pk for e in new)]).values_list("pk", "hash_scheme")
    )
    assert rows == {
        old.pk: HashScheme.HMAC_SHA256,
        new[0].pk: HashScheme.LINKED,
        new[1].pk: HashScheme.LINKED,
    }
    assert AuditEvent.objects.get(pk=new[1].pk).tag
    verdict = audit_verify()
    assert (verdict.ok, verdict.pending) == (True, 0)


def linked_last_hash() -> str:
    return AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("hash", flat=True)[0]


@services_only
def test_sequenced_and_direct_writes_share_one_chain(sequenced: None, settings: Any) -> None:
    write(3, tag="a")
    settings.SYNTHGATE_AUDIT_SEQUENCER = False
    direct = write(1, tag="direct")[0]  # takes the head lock, appends at once
    settings.SYNTHGATE_AUDIT_SEQUENCER = True
    write(2, tag="b")

    assert (direct.seq, direct.content_hash) == (1, "")
    assert audit_sequence().linked == 5
    verdict = audit_verify()
    assert (verdict.ok, verdict.events, verdict.pending) == (True, 6, 0)


@services_only
def test_a_rolled_back_action_leaves_no_pending_row(sequenced: None) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        write(1)
        raise RuntimeError("the audited action failed")

    assert pending_count() == 0
    assert audit_sequence().linked == 0
    assert audit_verify().ok


@services_only
def test_the_sequencer_checkpoints_when_a_batch_crosses_the_interval(
    sequenced: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY = 10
    write(25)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = audit_sequence(batch_size=8)

    assert outcome.linked == 25
    verdict = audit_verify()
    # Batches end at 8, 16, 24, 25: those crossing 10 and 20 are signed.
    assert (verdict.ok, verdict.checkpoints, verdict.checkpoint_seq) == (True, 2, 24)


# --- Concurrency (threads on PostgreSQL) ----------------------------------------------------------


@services_only
def test_8_concurrent_writers_with_the_sequencer_ticking_keep_the_chain_verifiable_within_the_delay(
    transactional_db: None, sequenced: None
) -> None:
    """The beat's shape: a sequencer every second while 8 writers append for 3 seconds. No pending
    row ever waits longer than the maximum merge delay, and the chain verifies at the end."""
    stop, writers_done = threading.Event(), threading.Event()
    worst = {"age": 0.0, "samples": 0}
    duration = 3.0

    def sequencer() -> None:
        try:
            while not stop.is_set():
                audit_sequence()
                stop.wait(1.0)
        finally:
            connection.close()

    def monitor() -> None:
        try:
            while not stop.is_set():
                oldest = AuditEvent.objects.filter(seq__isnull=True).aggregate(m=Min("at"))["m"]
                if oldest is not None:
                    worst["age"] = max(worst["age"], (timezone.now() - oldest).total_seconds())
                worst["samples"] += 1
                stop.wait(0.1)
        finally:
            connection.close()

    def writer(i: int) -> int:
        written, deadline = 0, time.monotonic() + duration
        while time.monotonic() < deadline:
            with transaction.atomic():  # as a service calls it: inside the action's transaction
                audit_record(actor=None, action="release.download", target_type="release", target_id=f"w{i}")
            written += 1
        return written

    background = [threading.Thread(target=sequencer), threading.Thread(target=monitor)]
    for thread in background:
        thread.start()
    try:
        written = sum(in_threads(writer, WRITERS))
        writers_done.set()
        deadline = time.monotonic() + MAX_MERGE_DELAY.total_seconds()
        while pending_count() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in background:
            thread.join(timeout=30)

    assert written > WRITERS and worst["samples"] > 10
    assert worst["age"] <= MAX_MERGE_DELAY.total_seconds(), worst
    assert pending_count() == 0  # all linked by the ticking sequencer, within the delay
    verdict = audit_verify()
    assert (verdict.ok, verdict.events, verdict.pending) == (True, written, 0), verdict
    assert sorted(linked_seqs_by_id()) == list(range(1, written + 1))


@services_only
def test_two_sequencers_at_once_link_each_row_once_in_id_order(
    transactional_db: None, sequenced: None
) -> None:
    in_threads(lambda i: write(40, tag=f"w{i}"), 4)  # 160 committed pending rows
    assert pending_count() == 160

    outcomes = in_threads(lambda _: audit_sequence(batch_size=25), 2)

    assert sum(o.linked for o in outcomes) == 160
    assert all(o.refused == () for o in outcomes)
    # Every row exactly once, and, all having committed first, seq follows id throughout.
    assert linked_seqs_by_id() == list(range(1, 161))
    assert pending_count() == 0
    verdict = audit_verify()
    assert (verdict.ok, verdict.events) == (True, 160)


# --- The maximum merge delay ---------------------------------------------------------------------


@services_only
def test_a_pending_row_older_than_the_maximum_merge_delay_raises_the_alarm(
    audrey: Any, api: Any, sequenced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    linked = head()[0]
    late = timezone.now() - MAX_MERGE_DELAY - timedelta(seconds=2)
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: late)  # written 7 s ago, never linked since
        write(1, tag="late")
    write(1, tag="fresh")

    verdict = audit_verify()
    assert (verdict.ok, verdict.reason, verdict.first_bad_seq) == (False, "merge_delay_exceeded", None)
    assert (verdict.pending, verdict.pending_overdue, verdict.pending_forged) == (2, 1, 0)
    assert verdict.oldest_pending_at == late
    assert (verdict.events, verdict.upto_seq) == (linked, linked)  # the linked chain itself holds

    # The scheduled run records the failure (and the command exits 1).
    record = audit_verification_run(mode="incremental", trigger="scheduled")
    assert (record.ok, record.reason, record.pending_overdue) == (False, "merge_delay_exceeded", 1)
    status, out = command("verify_audit")
    assert status == 1 and out.startswith("LATE: 1 pending events older than the maximum merge delay (5 s)")

    # Pages and the API show it live.
    client = Client()
    client.force_login(audrey)
    page = client.get(reverse("audit:event-list")).content.decode()
    assert "Entries not linked in time" in page and "the sequencer is late" in page
    assert '<span class="muted" title="Not linked into the chain yet">pending</span>' in page
    body = api(audrey).get(reverse("audit-verify")).json()
    assert body["pending_events"] >= 2 and body["max_merge_delay_seconds"] == 5.0
    assert body["oldest_pending_age_seconds"] > MAX_MERGE_DELAY.total_seconds()
    assert body["ok"] is False and body["reason"] == "merge_delay_exceeded"

    # Linked at last: the alarm clears.
    audit_sequence()
    verdict = audit_verify()
    assert (verdict.ok, verdict.pending) == (True, 0)
    assert audit_verify_since(seq=linked, hash=AuditEvent.objects.get(seq=linked).hash).ok


@services_only
def test_the_api_and_pages_list_pending_events_first_without_a_position(
    audrey: Any, api: Any, sequenced: None
) -> None:
    client = Client()
    client.force_login(audrey)  # a sign-in event, pending too
    reader = api(audrey)
    write(2, tag="p")

    results = reader.get(reverse("audit-event-list")).json()["results"]

    pending = AuditEvent.objects.filter(seq__isnull=True).count()
    assert [(r["seq"], r["hash"]) for r in results[:pending]] == [(None, None)] * pending
    assert [r["target_id"] for r in results[:2]] == ["p-1", "p-0"]  # newest first
    assert results[pending]["seq"] == AuditChainHead.objects.get(id=1).seq
    assert f"{pending} events waiting to be linked" in client.get(reverse("audit:verify")).content.decode()


# --- The sequencer's schedule -----------------------------------------------------------------


@services_only
def test_the_sequence_task_links_and_skips_while_another_holds_its_lock(sequenced: None) -> None:
    write(3)
    held = locks.acquire(tasks.SEQUENCE_LOCK, 60)
    assert held is not None

    assert tasks.sequence_audit_chain() == {"skipped": 1}
    assert pending_count() == 3

    locks.release(tasks.SEQUENCE_LOCK, held)
    result = tasks.sequence_audit_chain()
    assert (result["linked"], result["refused"]) == (3, 0)
    assert command("audit_sequence") == (0, "linked: 0 events\n")


# --- What a database administrator tries (PostgreSQL trigger) --------------------------------------


@pytest.fixture
def chain(sequenced: None) -> dict[str, int]:
    """Three linked sequenced rows and two pending ones; returns their ids."""
    linked = write(3, tag="linked")
    audit_sequence()
    pending = write(2, tag="pending")
    return {"linked": linked[1].pk, "last_linked": linked[2].pk, "pending": pending[0].pk}


def refused(sql: str, params: list[Any]) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw(sql, params)


@services_only
def test_the_trigger_refuses_to_update_a_linked_row(chain: dict[str, int]) -> None:
    refused("UPDATE audit_auditevent SET action = 'user.delete' WHERE id = %s", [chain["linked"]])
    refused("UPDATE audit_auditevent SET content_hash = %s WHERE id = %s", ["0" * 64, chain["linked"]])

    assert audit_verify().ok


@services_only
def test_the_trigger_refuses_to_relink_or_unlink_a_linked_row(chain: dict[str, int]) -> None:
    row = AuditEvent.objects.get(pk=chain["linked"])
    # Re-linked at another position with a new hash: refused, the only link is from NULL.
    refused(
        "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
        [row.seq + 1000, row.prev_hash, "f" * 64, row.pk],
    )
    refused("UPDATE audit_auditevent SET hash = %s WHERE id = %s", ["f" * 64, row.pk])
    refused("UPDATE audit_auditevent SET seq = NULL, prev_hash = NULL, hash = NULL WHERE id = %s", [row.pk])
    refused("DELETE FROM audit_auditevent WHERE id = %s", [row.pk])

    assert AuditEvent.objects.get(pk=row.pk).hash == row.hash
    assert audit_verify().ok


@services_only
def test_the_trigger_refuses_every_change_to_a_pending_row_but_linking_it(chain: dict[str, int]) -> None:
    pk = chain["pending"]
    seq, prev = head()
    refused("UPDATE audit_auditevent SET target_id = 'r-secret' WHERE id = %s", [pk])
    refused("UPDATE audit_auditevent SET content_hash = %s WHERE id = %s", ["0" * 64, pk])
    refused("DELETE FROM audit_auditevent WHERE id = %s", [pk])
    # Linked and edited in one statement: refused.
    refused(
        "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s, actor_name = 'olivia' WHERE id = %s",
        [seq + 1, prev, "a" * 64, pk],
    )
    # Half linked: refused by the trigger (and the check constraint).
    refused("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [seq + 1, pk])
    with triggers_off(), pytest.raises(IntegrityError), transaction.atomic():
        raw("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [seq + 1, pk])

    assert pending_count() == 2
    assert audit_sequence().linked == 2
    assert audit_verify().ok


@services_only
def test_a_row_linked_by_hand_with_a_hash_made_without_the_key_is_caught(chain: dict[str, int]) -> None:
    # The one UPDATE the trigger allows, done by the administrator: it goes through, but they
    # cannot compute the keyed hash, and verification names the row.
    pk = chain["pending"]
    row = AuditEvent.objects.get(pk=pk)
    seq, prev = head()
    fields = {name: getattr(row, name) for name in ("at", "actor_id", "actor_name", "action", "target_type")}
    fields |= {"seq": seq + 1, "target_id": row.target_id, "outcome": row.outcome, "details": row.details}
    fields |= {"request_id": row.request_id}
    raw(
        "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
        [seq + 1, prev, forged_hash(fields, prev_hash=prev), pk],
    )
    fix_head()

    verdict = audit_verify()
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, seq + 1, "hash_mismatch")


# --- Forged pending rows: the sequencer does not launder them -------------------------------------


@services_only
def test_a_pending_row_inserted_by_hand_is_never_linked_and_fails_verification(
    chain: dict[str, int], ada: Any
) -> None:
    # Inserts pass the trigger. The administrator has no audit key, so the seal is made up.
    forged = AuditEvent.objects.create(
        at=timezone.now(),
        actor=ada,
        actor_name="ada",
        action="policy.publish",
        target_type="policy",
        target_id="7",
        outcome="success",
        content_hash="ab" * 32,
    )
    after = write(1, tag="after")[0]
    waiting = pending_count()  # the fixture's two, ada's creation (sequenced too), this forgery, `after`

    outcome = audit_sequence()

    assert outcome.refused == (forged.pk,)
    assert outcome.linked == waiting - 1  # all but the forgery, those after it too
    assert AuditEvent.objects.get(pk=forged.pk).seq is None
    assert AuditEvent.objects.get(pk=after.pk).seq is not None
    verdict = audit_verify()
    assert (verdict.ok, verdict.reason, verdict.pending, verdict.pending_forged) == (
        False,
        "pending_forged",
        1,
        1,
    )
    assert command("verify_audit")[1].startswith("BROKEN: 1 pending events without a valid writer seal")
    # verify_audit audited its failed run (a pending row, linked now); the forgery stays refused.
    status, out = command("audit_sequence")
    assert status == 1 and out.startswith("linked: 1 events, head at #")
    assert out.endswith("REFUSED: 1 pending events without a valid writer seal\n")


@services_only
def test_a_sealed_pending_row_copied_under_another_id_is_refused(chain: dict[str, int]) -> None:
    # A replay: the same content and the writer's genuine seal, under a new id.
    original = AuditEvent.objects.get(pk=chain["pending"])
    copy = AuditEvent.objects.create(
        at=original.at,
        actor_name=original.actor_name,
        action=original.action,
        target_type=original.target_type,
        target_id=original.target_id,
        outcome=original.outcome,
        details=original.details,
        request_id=original.request_id,
        content_hash=original.content_hash,
    )

    outcome = audit_sequence()

    assert outcome.refused == (copy.pk,) and outcome.linked == 2
    assert audit_verify().reason == "pending_forged"


@services_only
def test_a_pending_row_edited_with_the_triggers_off_is_refused(chain: dict[str, int]) -> None:
    pk = chain["pending"]
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'olivia' WHERE id = %s", [pk])

    assert audit_sequence().refused == (pk,)
    verdict = audit_verify()
    assert (verdict.ok, verdict.reason, verdict.pending_forged) == (False, "pending_forged", 1)


@services_only
def test_the_seal_is_the_writers_hmac_over_id_and_content(sequenced: None) -> None:
    event = write(1)[0]
    stored = AuditEvent.objects.get(pk=event.pk)
    content = {name: getattr(stored, name) for name in ("at", "actor_id", "actor_name", "action")}
    content |= {name: getattr(stored, name) for name in ("target_type", "target_id", "outcome")}
    content |= {"details": stored.details, "request_id": stored.request_id}

    assert stored.content_hash == pending_hash(key=audit_key(), row_id=stored.pk, **content)
    assert stored.content_hash != pending_hash(key=audit_key(), row_id=stored.pk + 1, **content)
    assert stored.hash_scheme == HashScheme.LINKED


# --- Unsequenced mode and the settings (both stages) -----------------------------------------------


def test_unsequenced_writes_are_chained_at_once(db: None) -> None:
    event = write(1)[0]

    assert (event.seq, event.content_hash, len(event.hash or "")) == (1, "", 64)
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()
    assert audit_sequence().linked == 0
    assert not AuditVerification.objects.exists()


def test_sequenced_mode_refuses_a_database_other_than_postgresql(
    db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SYNTHGATE_AUDIT_SEQUENCER = True
    monkeypatch.setattr(services, "connection", SimpleNamespace(vendor="sqlite"))

    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL"):
        write(1)

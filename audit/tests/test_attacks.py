"""A database administrator tries to rewrite history; verification names the first bad entry.

Each test is one attack from the security review (issue 13), done the way an administrator
could: triggers dropped, tables changed with SQL, hashes recomputed without the audit key (plain
SHA-256, the scheme any reader of the code can compute) and the head row fixed to match. Before
the chain was keyed and checkpointed, every one of these passed `verify_audit`.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.hashing import GENESIS_HASH, HashScheme, audit_key
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import ChainVerdict, audit_verify
from audit.services import audit_checkpoint, audit_linked_batch, audit_record
from audit.tests.tampering import fix_head, forged_hash, raw, rechain, triggers_off
from portal.services import user_update

DOWNLOADS = 12


@pytest.fixture
def log(ada: Any, alice: Any, bob: Any, charlie: Any, audrey: Any) -> int:
    """A realistic log: personas, an admin's edits, team members' downloads; then the periodic
    checkpoint has run, as it does every few minutes. Returns the last seq."""
    user_update(actor=ada, user_id=alice.pk, role="privacy_officer")
    for n in range(DOWNLOADS):
        audit_record(
            actor=charlie if n % 2 else bob,
            action="release.download",
            target_type="release",
            target_id=f"r-{n}",
        )
    user_update(actor=ada, user_id=bob.pk, is_active=False)
    assert audit_checkpoint().status == "written"
    assert audit_verify().ok
    return AuditEvent.objects.count()


def verify_command() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def broken_at(verdict: ChainVerdict) -> tuple[bool, int | None]:
    return verdict.ok, verdict.first_bad_seq


@pytest.mark.parametrize(
    ("declared", "reason"),
    [(HashScheme.HMAC_SHA256, "hash_mismatch"), (HashScheme.SHA256, "unkeyed_after_keyed")],
)
def test_a_row_appended_with_a_correct_sha256_and_the_head_fixed_is_caught(
    log: int, ada: Any, declared: int, reason: str
) -> None:
    last = AuditEvent.objects.get(seq=log)
    fields: dict[str, Any] = {
        "seq": log + 1,
        "at": last.at,
        "actor_id": ada.pk,
        "actor_name": "ada",
        "action": "release.download",
        "target_type": "release",
        "target_id": "r-secret",
        "outcome": "success",
        "details": {},
        "request_id": "",
    }
    with triggers_off():
        AuditEvent.objects.create(
            hash=forged_hash(fields, prev_hash=last.hash), prev_hash=last.hash, hash_scheme=declared, **fields
        )
        fix_head()

    verdict = audit_verify()
    assert broken_at(verdict) == (False, log + 1)
    assert verdict.reason == reason
    assert verify_command() == (1, f"BROKEN at seq {log + 1} ({log + 1} events checked)\n")


def test_deleting_the_last_20_rows_and_fixing_the_head_is_caught(log: int) -> None:
    assert log > 20
    with triggers_off():
        raw("DELETE FROM audit_auditevent WHERE seq > %s", [log - 20])
        fix_head()

    verdict = audit_verify()
    assert broken_at(verdict) == (False, log - 19)
    assert (verdict.reason, verdict.checkpoint_seq) == ("truncated", log)


@pytest.mark.parametrize("declared", [HashScheme.HMAC_SHA256, HashScheme.SHA256])
def test_rewriting_the_actor_on_10_downloads_and_recomputing_the_chain_is_caught(
    log: int, olivia: Any, declared: int
) -> None:
    downloads = list(
        AuditEvent.objects.filter(action="release.download").order_by("seq").values_list("seq", flat=True)
    )[:10]
    with triggers_off():
        raw(
            "UPDATE audit_auditevent SET actor_id = %s, actor_name = %s WHERE seq IN ("
            + ",".join(["%s"] * len(downloads))
            + ")",
            [olivia.pk, "olivia", *downloads],
        )
        rechain(downloads[0], declare=declared)

    verdict = audit_verify()
    assert broken_at(verdict) == (False, downloads[0])
    assert verdict.reason == (
        "hash_mismatch" if declared == HashScheme.HMAC_SHA256 else "unkeyed_after_keyed"
    )


def test_recomputing_the_whole_chain_as_unkeyed_is_caught_by_the_checkpoint(log: int) -> None:
    # Declaring every row "written before keying" makes each hash recomputable without the key;
    # the signed checkpoint of the real head is what gives it away.
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'olivia' WHERE action = 'release.download'")
        rechain(1, declare=HashScheme.SHA256)

    verdict = audit_verify()
    assert broken_at(verdict) == (False, 1)
    assert verdict.reason == "checkpoint_mismatch"


def test_a_chain_recomputed_with_a_stolen_key_is_caught_by_a_checkpoint(log: int) -> None:
    # With the key, every hash can be recomputed; only the signed checkpoints still disagree.
    for n in range(12):
        audit_record(actor=None, action="release.download", target_type="release", target_id=f"s-{n}")
        if n % 5 == 4:
            assert audit_checkpoint().status == "written"
    assert audit_checkpoint().status == "written"
    target = AuditEvent.objects.get(target_id="s-7").seq
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'olivia' WHERE seq = %s", [target])
        rechain(target, key=audit_key())

    verdict = audit_verify()
    # Checkpoints at log+5 (still matches) and log+10 (does not): rows after log+5 are untrusted.
    assert target == log + 8
    assert broken_at(verdict) == (False, log + 6)
    assert verdict.reason == "checkpoint_mismatch"


def test_editing_one_row_and_recomputing_the_chain_after_it_is_caught(log: int) -> None:
    target = log // 2
    with triggers_off():
        raw("UPDATE audit_auditevent SET outcome = 'denied' WHERE seq = %s", [target])
        rechain(target)

    verdict = audit_verify()
    assert broken_at(verdict) == (False, target)
    assert verdict.reason == "hash_mismatch"


def test_inserting_a_row_in_the_middle_and_renumbering_the_rest_is_caught(log: int, ada: Any) -> None:
    after = log // 2
    before = AuditEvent.objects.get(seq=after)
    with triggers_off():
        # Two steps, so the unique seq is never duplicated half-way through the renumbering.
        raw("UPDATE audit_auditevent SET seq = seq + 1000000 WHERE seq > %s", [after])
        raw("UPDATE audit_auditevent SET seq = seq - 999999 WHERE seq > 1000000")
        AuditEvent.objects.create(
            seq=after + 1,
            at=before.at,
            actor=ada,
            actor_name="ada",
            action="policy.publish",
            target_type="policy",
            target_id="7",
            outcome="success",
            prev_hash=before.hash,
            hash="0" * 64,
        )
        rechain(after + 1)

    verdict = audit_verify()
    assert broken_at(verdict) == (False, after + 1)
    assert verdict.events == after + 1


def test_a_recomputed_chain_is_caught_by_the_key_alone_without_any_checkpoint(
    log: int, checkpoint_dir: Path
) -> None:
    # The key alone catches rows forged without it; only a deleted tail needs a checkpoint.
    (checkpoint_dir / "checkpoints.jsonl").unlink()
    with triggers_off():
        raw("UPDATE audit_auditevent SET actor_name = 'olivia' WHERE seq = %s", [log - 3])
        rechain(log - 3)

    assert broken_at(audit_verify()) == (False, log - 3)


def test_verifying_10k_events_stays_fast(db: None, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    rows: list[dict[str, Any]] = [
        {
            "at": now,
            "actor_id": None,
            "actor_name": "system",
            "action": "release.download",
            "target_type": "release",
            "target_id": str(seq),
            "outcome": "success",
            "details": {"columns": ["age", "sex"]},
            "request_id": "",
        }
        for seq in range(1, 10_001)
    ]
    events = audit_linked_batch(rows, first_seq=1, prev_hash=GENESIS_HASH)
    AuditEvent.objects.bulk_create(events, batch_size=2000)
    AuditChainHead.objects.update_or_create(id=1, defaults={"seq": 10_000, "hash": events[-1].hash})
    audit_checkpoint()

    started = time.perf_counter()
    # Chunked reads, never a query per row; a fixed handful more for the catalog check of the
    # generated column (PostgreSQL deparses a scratch copy in a savepoint).
    with django_assert_max_num_queries(20):
        verdict = audit_verify()
    elapsed = time.perf_counter() - started

    assert (verdict.ok, verdict.events, verdict.checkpoint_seq) == (True, 10_000, 10_000)
    assert elapsed < 3.0  # about 0.3 s on a laptop-class core

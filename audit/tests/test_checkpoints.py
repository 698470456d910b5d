"""Signed checkpoints of the chain head are written outside the database and checked by verify."""

from __future__ import annotations

import base64
import io
import json
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from audit.checkpoints import checkpoint_sign, checkpoints_read, public_key_text, signing_key
from audit.hashing import GENESIS_HASH, HashScheme, sha256_event_hash
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_verify
from audit.services import audit_checkpoint, audit_record
from audit.tasks import checkpoint_audit_chain
from audit.tests.tampering import raw, triggers_off

KEY_B = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()


def record(n: int = 1) -> None:
    for i in range(n):
        audit_record(actor=None, action="release.download", target_type="release", target_id=i)


def lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "checkpoints.jsonl").read_text().splitlines()]


def run(command: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command(command, *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_every_nth_event_is_checkpointed_once_its_transaction_commits(
    db: None, settings: Any, checkpoint_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY = 5
    with django_capture_on_commit_callbacks(execute=True):
        record(11)

    head = AuditChainHead.objects.get()
    assert [(c["seq"], c["hash"]) for c in lines(checkpoint_dir)] == [
        (5, AuditEvent.objects.get(seq=5).hash),
        (10, AuditEvent.objects.get(seq=10).hash),
    ]
    assert head.seq == 11
    verdict = audit_verify()
    assert (verdict.ok, verdict.checkpoints, verdict.checkpoint_seq) == (True, 2, 10)


def test_an_event_that_rolls_back_leaves_no_checkpoint(
    db: None, settings: Any, checkpoint_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY = 1
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            record()
            raise RuntimeError("the audited action failed")

    assert not (checkpoint_dir / "checkpoints.jsonl").exists()
    assert audit_verify().ok


def test_the_checkpoint_file_is_private_and_only_grows(db: None, checkpoint_dir: Path) -> None:
    record(2)
    audit_checkpoint()
    record()
    audit_checkpoint()

    path = checkpoint_dir / "checkpoints.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(checkpoint_dir.stat().st_mode) == 0o700
    assert [c["seq"] for c in lines(checkpoint_dir)] == [2, 3]
    assert {"seq", "hash", "at", "key_id", "signature"} == lines(checkpoint_dir)[0].keys()


def test_the_periodic_checkpoint_signs_only_a_head_that_moved(db: None, checkpoint_dir: Path) -> None:
    assert (audit_checkpoint().status, audit_checkpoint().seq) == ("empty", None)
    record(3)

    assert (audit_checkpoint().status, audit_checkpoint().status) == ("written", "current")
    record()
    assert (audit_checkpoint().status, audit_checkpoint().seq) == ("written", 4)
    assert len(lines(checkpoint_dir)) == 2


def test_the_periodic_checkpoint_refuses_to_vouch_for_tampered_rows(db: None, checkpoint_dir: Path) -> None:
    record(3)
    audit_checkpoint()
    record(3)
    with triggers_off():
        raw("UPDATE audit_auditevent SET target_id = 'x' WHERE seq = 5")

    outcome = audit_checkpoint()

    assert (outcome.status, outcome.seq) == ("refused", 5)
    assert [c["seq"] for c in lines(checkpoint_dir)] == [3]


def test_the_periodic_checkpoint_refuses_a_head_behind_the_newest_checkpoint(db: None) -> None:
    record(5)
    audit_checkpoint()
    with triggers_off():
        raw("DELETE FROM audit_auditevent WHERE seq > 3")
        raw(
            "UPDATE audit_auditchainhead SET seq = 3, hash = (SELECT hash FROM audit_auditevent WHERE seq = 3)"
        )

    assert (audit_checkpoint().status, audit_checkpoint().seq) == ("refused", 4)


def test_a_checkpoint_with_a_bad_signature_is_reported(db: None, checkpoint_dir: Path, audrey: Any) -> None:
    record(3)
    audit_checkpoint()
    forged = checkpoint_sign(seq=3, hash="f" * 64)
    wrong = Ed25519PrivateKey.generate().sign(b"anything")
    line = json.dumps({**asdict(forged), "seq": 90, "signature": base64.urlsafe_b64encode(wrong).decode()})
    with (checkpoint_dir / "checkpoints.jsonl").open("a") as handle:
        handle.write(line + "\n")

    verdict = audit_verify()

    # Not taken as a checkpoint beyond the tail (it would claim seq 90), but reported.
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, None, "checkpoint_signature")
    head = AuditEvent.objects.count()
    assert (verdict.checkpoints, verdict.bad_checkpoints, verdict.checkpoint_seq) == (1, 1, head)
    assert run("verify_audit") == (1, "BROKEN: checkpoint file (1 bad lines)\n")
    client = Client()
    client.force_login(audrey)
    assert "Checkpoint file BROKEN" in client.get(reverse("audit:verify")).content.decode()


def test_an_edited_checkpoint_line_no_longer_verifies(db: None, checkpoint_dir: Path) -> None:
    record(3)
    audit_checkpoint()
    path = checkpoint_dir / "checkpoints.jsonl"
    path.write_text(path.read_text().replace('"seq":3', '"seq":2'))

    verdict = audit_verify()
    assert (verdict.ok, verdict.reason, verdict.checkpoints, verdict.bad_checkpoints) == (
        False,
        "checkpoint_signature",
        0,
        1,
    )


def test_checkpoints_from_another_signing_key_do_not_verify(db: None, settings: Any) -> None:
    record(3)
    audit_checkpoint()
    settings.SYNTHGATE_AUDIT_SIGNING_KEY = KEY_B

    assert checkpoints_read().bad_lines == [1]
    assert audit_verify().reason == "checkpoint_signature"


def test_the_signing_key_is_derived_from_the_chain_key_unless_set(settings: Any) -> None:
    derived = public_key_text()
    settings.SYNTHGATE_AUDIT_KEY = KEY_B
    assert public_key_text() != derived
    settings.SYNTHGATE_AUDIT_SIGNING_KEY = KEY_B
    seed = signing_key().private_bytes_raw()

    assert seed == base64.urlsafe_b64decode(KEY_B)


def test_the_chain_is_keyed_a_different_key_fails_it_at_the_first_row(db: None, settings: Any) -> None:
    record(3)
    assert audit_verify().ok
    settings.SYNTHGATE_AUDIT_KEY = KEY_B

    verdict = audit_verify()
    # Scheme 3: the SHA-256 links hold under any key; the first row's keyed tag does not.
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, 1, "tag_mismatch")


def test_rows_from_before_keying_verify_as_the_start_of_the_chain(db: None) -> None:
    """What an upgraded installation holds: unkeyed rows from the old code, then keyed ones."""
    prev = GENESIS_HASH
    for seq in (1, 2):
        fields: dict[str, Any] = {
            "seq": seq,
            "at": AuditEvent._meta.get_field("at").to_python("2026-01-01T00:00:00+00:00"),
            "actor_id": None,
            "actor_name": "system",
            "action": "user.create",
            "target_type": "user",
            "target_id": str(seq),
            "outcome": "success",
            "details": {},
            "request_id": "",
            "prev_hash": prev,
        }
        prev = sha256_event_hash(**fields)
        AuditEvent.objects.create(hash=prev, hash_scheme=HashScheme.SHA256, **fields)
    AuditChainHead.objects.update_or_create(id=1, defaults={"seq": 2, "hash": prev})
    record(2)

    verdict = audit_verify()
    assert (verdict.ok, verdict.events, verdict.unkeyed_events) == (True, 4, 2)
    assert AuditEvent.objects.get(seq=3).prev_hash == prev


def test_the_checkpoint_command_and_task_write_and_report(db: None, checkpoint_dir: Path) -> None:
    assert run("audit_checkpoint") == (0, "no events yet; nothing to checkpoint\n")
    record(2)
    assert run("audit_checkpoint") == (0, "checkpoint written at seq 2\n")
    assert run("audit_checkpoint") == (0, "checkpoint already at seq 2\n")
    record()
    assert checkpoint_audit_chain() == {"status": "written", "seq": 3}
    record()
    with triggers_off():
        raw("UPDATE audit_auditevent SET action = 'x' WHERE seq = 4")

    assert run("audit_checkpoint") == (1, "REFUSED: the chain does not verify at seq 4; run verify_audit\n")


def test_the_checkpoint_command_prints_the_public_key(db: None, checkpoint_dir: Path) -> None:
    code, out = run("audit_checkpoint", "--public-key")

    assert code == 0
    assert out == f"public key: {public_key_text()}\nfile: {checkpoint_dir / 'checkpoints.jsonl'}\n"


def test_verify_audit_explains_at_verbosity_2(db: None) -> None:
    record(3)
    audit_checkpoint()
    with triggers_off():
        raw("UPDATE audit_auditevent SET action = 'x' WHERE seq = 2")

    code, out = run("verify_audit", "-v", "2")
    assert code == 1
    assert out.splitlines() == [
        "BROKEN at seq 2 (2 events checked)",
        "reason: hash_mismatch: this entry's content does not match its hash under the audit key: "
        "it was edited, or written without the key",
        "checkpoints: 1 valid, newest at seq 3, 0 bad; unkeyed (pre-keying) events: 0",
    ]

"""`verify_audit` tells cron and CI whether the chain holds, by its output and its exit status."""

from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command

from audit.models import AuditEvent
from audit.services import audit_record


def verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_an_intact_chain_prints_ok_and_exits_0(ada: Any) -> None:
    audit_record(actor=ada, action="release.download", target_type="release", target_id="r-1")

    assert verify() == (0, f"ok: {AuditEvent.objects.count()} events\n")


def test_an_empty_log_is_intact(db: None) -> None:
    assert verify() == (0, "ok: 0 events\n")


def test_a_broken_chain_prints_where_and_exits_1(ada: Any) -> None:
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    # An appended-by-hand row: allowed by the triggers, caught by the chain head.
    AuditEvent.objects.create(
        seq=last.seq + 1,
        at=last.at,
        actor_name="ada",
        action="user.update",
        target_type="user",
        target_id="1",
        outcome="success",
        prev_hash=last.hash,
        hash="0" * 64,
    )
    total = AuditEvent.objects.count()

    assert verify() == (1, f"BROKEN at seq {total} ({total} events checked)\n")

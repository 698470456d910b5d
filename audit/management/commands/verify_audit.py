"""Verify the audit hash chain from cron or CI: exit 0 when intact, 1 when broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.models import AuditVerification, VerificationMode, VerificationTrigger
from audit.selectors import MAX_MERGE_DELAY, REASONS
from audit.services import audit_verification_run


class Command(BaseCommand):
    help = (
        "Check the audit chain against the audit key and the signed checkpoints; print "
        "`ok: N events` (exit 0) or where it breaks (exit 1). -v 2 adds the reason and checkpoints. "
        "The verdict is recorded for the audit pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since-last",
            action="store_true",
            help=(
                "Verify only the events after the last verified one (or the newest signed checkpoint); "
                "see docs/security.md for what this does not catch. Default: the whole chain."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        mode = VerificationMode.INCREMENTAL if options["since_last"] else VerificationMode.FULL
        record = audit_verification_run(mode=mode, trigger=VerificationTrigger.COMMAND)
        if record.ok:
            after = f" after #{record.from_seq}" if record.from_seq else ""
            self.stdout.write(f"ok: {record.events} events{after}")
        elif record.reason == "pending_forged":
            self.stdout.write(f"BROKEN: {record.pending_forged} pending events without a valid writer seal")
        elif record.reason == "merge_delay_exceeded":
            self.stdout.write(
                f"LATE: {record.pending_overdue} pending events older than the maximum merge delay "
                f"({MAX_MERGE_DELAY.total_seconds():g} s); is the sequencer running?"
            )
        elif record.first_bad_seq is None:
            self.stdout.write(f"BROKEN: checkpoint file ({record.bad_checkpoints} bad lines)")
        else:
            # Plain stdout line plus exit status (not CommandError, which would prefix the verdict),
            # so monitoring can both grep the line and alert on the code.
            self.stdout.write(f"BROKEN at seq {record.first_bad_seq} ({record.events} events checked)")
        if options["verbosity"] >= 2:
            self._details(record)
        if not record.ok:
            raise SystemExit(1)

    def _details(self, record: AuditVerification) -> None:
        if record.reason:
            self.stdout.write(f"reason: {record.reason}: {REASONS.get(record.reason, '')}")
        newest = "none yet" if record.checkpoint_seq is None else f"newest at seq {record.checkpoint_seq}"
        self.stdout.write(
            f"checkpoints: {record.checkpoints} valid, {newest}, {record.bad_checkpoints} bad; "
            f"unkeyed (pre-keying) events: {record.unkeyed_events}"
        )
        if record.pending:
            self.stdout.write(
                f"pending (not linked yet): {record.pending}, {record.pending_overdue} older than "
                f"{MAX_MERGE_DELAY.total_seconds():g} s, {record.pending_forged} without a valid seal"
            )

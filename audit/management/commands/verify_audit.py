"""Verify the audit hash chain from cron or CI: exit 0 when intact, 1 when broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.selectors import ChainVerdict, audit_verify


class Command(BaseCommand):
    help = (
        "Check the audit chain against the audit key and the signed checkpoints; print "
        "`ok: N events` (exit 0) or where it breaks (exit 1). -v 2 adds the reason and checkpoints."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = audit_verify()
        if verdict.ok:
            self.stdout.write(f"ok: {verdict.events} events")
        elif verdict.first_bad_seq is None:
            self.stdout.write(f"BROKEN: checkpoint file ({verdict.bad_checkpoints} bad lines)")
        else:
            # Plain stdout line plus exit status (not CommandError, which would prefix the verdict),
            # so monitoring can both grep the line and alert on the code.
            self.stdout.write(f"BROKEN at seq {verdict.first_bad_seq} ({verdict.events} events checked)")
        if options["verbosity"] >= 2:
            self._details(verdict)
        if not verdict.ok:
            raise SystemExit(1)

    def _details(self, verdict: ChainVerdict) -> None:
        if verdict.reason:
            self.stdout.write(f"reason: {verdict.reason}: {verdict.detail}")
        newest = "none yet" if verdict.checkpoint_seq is None else f"newest at seq {verdict.checkpoint_seq}"
        self.stdout.write(
            f"checkpoints: {verdict.checkpoints} valid, {newest}, {verdict.bad_checkpoints} bad; "
            f"unkeyed (pre-keying) events: {verdict.unkeyed_events}"
        )

"""Verify the audit hash chain from cron or CI: exit 0 when intact, 1 when broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.selectors import audit_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain; print `ok: N events` (exit 0) or where it breaks (exit 1)."

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = audit_verify()
        if verdict.ok:
            self.stdout.write(f"ok: {verdict.events} events")
            return
        # Plain stdout line plus exit status (not CommandError, which would prefix the verdict),
        # so monitoring can both grep the line and alert on the code.
        self.stdout.write(f"BROKEN at seq {verdict.first_bad_seq} ({verdict.events} events checked)")
        raise SystemExit(1)

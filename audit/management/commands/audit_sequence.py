"""Link pending audit events into the chain now (sequenced mode), as the beat does every second."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.services import SEQUENCE_MAX_ROWS, audit_sequence


class Command(BaseCommand):
    help = (
        "Link the committed pending audit events into the hash chain, in id order (sequenced mode, "
        "SYNTHGATE_AUDIT_SEQUENCER). Prints how many were linked; exits 1 if any pending event "
        "carries no valid writer seal (left pending; verify_audit reports it)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total, last = 0, None
        while True:
            outcome = audit_sequence()
            total += outcome.linked
            last = outcome.last_seq or last
            refused = outcome.refused
            # A call stops at SEQUENCE_MAX_ROWS; go on through a backlog, not forever under load.
            if outcome.linked < SEQUENCE_MAX_ROWS:
                break
        head = f", head at #{last}" if last is not None else ""
        self.stdout.write(f"linked: {total} events{head}")
        if refused:
            self.stdout.write(f"REFUSED: {len(refused)} pending events without a valid writer seal")
            raise SystemExit(1)

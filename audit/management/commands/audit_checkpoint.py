"""Sign the audit chain head into the checkpoint file now (cron, or where no Celery beat runs)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.checkpoints import checkpoint_path, public_key_text
from audit.services import audit_checkpoint


class Command(BaseCommand):
    help = (
        "Write a signed checkpoint of the audit chain head if it moved since the last one; "
        "exit 1 if the chain since the last checkpoint does not verify."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="Print the checkpoint verification key (Ed25519, urlsafe base64) and the file, then exit.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["public_key"]:
            self.stdout.write(f"public key: {public_key_text()}\nfile: {checkpoint_path()}")
            return
        outcome = audit_checkpoint()
        if outcome.status == "written":
            self.stdout.write(f"checkpoint written at seq {outcome.seq}")
        elif outcome.status == "current":
            self.stdout.write(f"checkpoint already at seq {outcome.seq}")
        elif outcome.status == "empty":
            self.stdout.write("no events yet; nothing to checkpoint")
        else:
            self.stdout.write(f"REFUSED: the chain does not verify at seq {outcome.seq}; run verify_audit")
            raise SystemExit(1)

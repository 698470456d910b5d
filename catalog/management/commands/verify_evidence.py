"""Verify an evidence package offline: exit 0 and print OK, or list the problems and exit 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.hashing import audit_key
from catalog.evidence import evidence_check_live, evidence_verify


class Command(BaseCommand):
    help = (
        "Check an evidence package (zip) without the database: every file against MANIFEST.json, "
        "no file added or missing, the manifest and checkpoint signatures, the audit events "
        "against their hash links and the checkpoint. Prints OK (exit 0) or each problem (exit 1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("package", help="The zip from GET /api/v1/requests/{id}/evidence/.")
        parser.add_argument(
            "--public-key",
            default="",
            help="The portal's checkpoint key (`manage.py audit_checkpoint --public-key`), given as "
            "--public-key=KEY since a key may begin with '-'; "
            "without it signatures are checked against the key the package carries.",
        )
        parser.add_argument(
            "--with-audit-key",
            action="store_true",
            help="Also recompute each keyed event's HMAC with this installation's "
            "SYNTHGATE_AUDIT_KEY (only meaningful on the portal that exported the package).",
        )
        parser.add_argument(
            "--against-log",
            action="store_true",
            help="On the portal: also check the download's audit event recorded this manifest and "
            "each packaged event is the live row (implies --with-audit-key; run verify_audit too).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["package"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.stdout.write(f"FAILED: cannot read {path}: {exc.strerror}")
            raise SystemExit(1) from None
        live = options["against_log"]
        key = audit_key() if options["with_audit_key"] or live else None
        verdict = evidence_verify(data, public_key=options["public_key"], audit_key=key)
        if live and verdict.ok:
            evidence_check_live(data, verdict)
        if verdict.manifest_sha256:
            self.stdout.write(f"manifest sha256: {verdict.manifest_sha256}")
        for note in verdict.notes:
            self.stdout.write(f"note: {note}")
        if verdict.ok:
            self.stdout.write("OK")
            return
        # Plain lines plus the exit status (not CommandError), as verify_audit does.
        self.stdout.write(f"FAILED: {len(verdict.problems)} problem(s)")
        for problem in verdict.problems:
            self.stdout.write(f"- {problem}")
        raise SystemExit(1)

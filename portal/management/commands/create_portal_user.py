"""Create a portal user from a script: `... create_portal_user --username U --role R [--team T]
[--totp-secret BASE32]`.

The password comes from stdin (never argv, which other users of the host can read in `ps`).
Failures exit non-zero with one line on stderr, so provisioning scripts can log and stop.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.errors import DomainError
from core.roles import Role
from portal.auth_mfa import totp_enrol_with_secret
from portal.services import user_create


def _one_line(message: str) -> str:
    return " ".join(message.split())


class Command(BaseCommand):
    help = "Create a portal user; the password is read from stdin (first line), or prompted on a TTY."
    # Lets tests and callers pass `stdin=io.StringIO(...)` to call_command, as createsuperuser does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        # Not argparse-required: argparse would print a multi-line usage block instead of one reason.
        parser.add_argument("--username", help="Login name (required).")
        parser.add_argument("--role", help=f"One of {', '.join(Role.values)} (required).")
        parser.add_argument("--team", default=None, help="Team name; created if it does not exist.")
        parser.add_argument("--email", default="", help="Email address.")
        parser.add_argument(
            "--totp-secret",
            default=None,
            help="Base32 TOTP secret (at least 16 characters) to enrol as the user's confirmed second factor.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [f"--{name}" for name in ("username", "role") if not options.get(name)]
        if missing:
            raise CommandError(f"Missing {' and '.join(missing)}; see --help.")
        password = self._read_password(options.get("stdin") or sys.stdin)
        try:
            # One transaction: a bad secret leaves no half-made user behind.
            with transaction.atomic():
                user = user_create(
                    actor=None,
                    username=options["username"],
                    role=options["role"],
                    team_name=options["team"],
                    email=options["email"],
                    password=password,
                )
                if options.get("totp_secret"):
                    totp_enrol_with_secret(user=user, secret_base32=options["totp_secret"])
        except DomainError as exc:
            raise CommandError(_one_line(exc.message)) from exc
        team = f", team {user.team.name}" if user.team else ""
        factor = ", TOTP enrolled" if options.get("totp_secret") else ""
        self.stdout.write(f"Created {user.username} ({user.role}{team}{factor}).")

    def _read_password(self, stdin: TextIO) -> str:
        if stdin.isatty():
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The two passwords differ; run the command again.")
        else:
            password = stdin.readline().removesuffix("\n").removesuffix("\r")
        if not password:
            raise CommandError("No password given: pipe it on stdin, e.g. `printf '%s\\n' \"$PW\" | ...`.")
        return password

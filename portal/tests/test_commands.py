"""`create_portal_user` provisions accounts from scripts; bad input stops it with one line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from audit.models import AuditEvent
from portal.models import Team, User

PASSWORD = "Plenty-Of-Entropy-77"
REPO = Path(__file__).resolve().parents[2]


def signs_in(username: str) -> bool:
    # Through the sign-in page's path: django-axes refuses authenticate() without a request.
    request = RequestFactory().post("/accounts/login/")
    return authenticate(request, username=username, password=PASSWORD) is not None


def create(stdin: str = PASSWORD + "\n", **options: Any) -> str:
    out = io.StringIO()
    call_command("create_portal_user", stdin=io.StringIO(stdin), stdout=out, **options)
    return out.getvalue()


def test_creates_the_user_and_their_team_from_the_password_on_stdin(db: None) -> None:
    output = create(username="dora", role="privacy_officer", team="Neurology", email="dora@example.org")

    dora = User.objects.get(username="dora")
    assert (dora.role, str(dora.team), dora.email) == ("privacy_officer", "Neurology", "dora@example.org")
    assert signs_in("dora")
    assert "Created dora" in output


def test_reuses_an_existing_team(db: None) -> None:
    create(username="dora", role="data_scientist", team="Neurology")
    create(username="emil", role="data_scientist", team="Neurology")

    assert Team.objects.filter(name="Neurology").count() == 1
    assert str(User.objects.get(username="emil").team) == "Neurology"


def test_reads_sys_stdin_when_no_stream_is_passed(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\r\nignored second line\n"))

    call_command("create_portal_user", username="dora", role="auditor", stdout=io.StringIO())

    assert signs_in("dora")


def test_the_creation_is_audited_as_a_system_action(db: None) -> None:
    create(username="dora", role="auditor")

    event = AuditEvent.objects.get(action="user.create")
    assert event.actor_name == "system"
    assert event.details["username"] == "dora"


def test_unknown_role_is_refused_and_names_the_valid_ones(db: None) -> None:
    with pytest.raises(CommandError, match="Unknown role 'wizard'; use one of data_scientist"):
        create(username="dora", role="wizard")

    assert not User.objects.filter(username="dora").exists()


def test_duplicate_username_is_refused(db: None) -> None:
    create(username="dora", role="auditor")

    with pytest.raises(CommandError, match="already exists"):
        create(username="dora", role="admin")

    assert User.objects.get(username="dora").role == "auditor"


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short\n", "too short"), ("password123\n", "too common"), ("\n", "No password"), ("", "No password")],
)
def test_weak_or_missing_password_is_refused(db: None, password: str, reason: str) -> None:
    with pytest.raises(CommandError, match=reason) as caught:
        create(stdin=password, username="dora", role="auditor", team="Neurology")

    assert "\n" not in str(caught.value)
    assert not User.objects.filter(username="dora").exists()
    assert not Team.objects.filter(name="Neurology").exists()


@pytest.mark.parametrize("options", [{"role": "auditor"}, {"username": "dora"}])
def test_missing_username_or_role_is_refused(db: None, options: dict[str, str]) -> None:
    with pytest.raises(CommandError, match="Missing --"):
        create(**options)


def test_from_a_shell_a_missing_role_exits_non_zero_with_one_line_on_stderr() -> None:
    # The process refuses before touching the database, so no migrated database is needed.
    result = subprocess.run(
        [sys.executable, "manage.py", "create_portal_user", "--username", "dora"],
        cwd=REPO,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["CommandError: Missing --role; see --help."]

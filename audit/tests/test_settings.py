"""The audit keys live outside the database: production refuses to start without the chain key,
development keeps a private per-checkout one. Settings load in a subprocess with a controlled
environment, so the Django that runs these tests is unaffected."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
GOOD_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
PRODUCTION = {
    "SYNTHGATE_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "example.org",
    "SYNTHGATE_DATA_KEY": GOOD_KEY,
    "SYNTHGATE_AUDIT_KEY": base64.urlsafe_b64encode(bytes(range(32, 64))).decode(),
}
PRINT = (
    "import json; from django.conf import settings as s; print(json.dumps({k: str(getattr(s, k)) for k in "
    "['SYNTHGATE_AUDIT_KEY', 'SYNTHGATE_AUDIT_SIGNING_KEY', 'SYNTHGATE_AUDIT_CHECKPOINT_DIR', "
    "'SYNTHGATE_AUDIT_CHECKPOINT_EVERY']}))"
)


def load(var_dir: Path, code: str = PRINT, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SYNTHGATE_", "CELERY_")) and k != "DATABASE_URL"
    }
    base.update({"SYNTHGATE_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "portal.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=120
    )


def without(name: str) -> dict[str, str]:
    return {key: value for key, value in PRODUCTION.items() if key != name}


def test_production_refuses_to_start_without_the_audit_key(tmp_path: Path) -> None:
    result = load(tmp_path, **without("SYNTHGATE_AUDIT_KEY"))

    assert result.returncode != 0
    assert "Environment variable SYNTHGATE_AUDIT_KEY is required" in result.stderr


@pytest.mark.parametrize("name", ["SYNTHGATE_AUDIT_KEY", "SYNTHGATE_AUDIT_SIGNING_KEY"])
@pytest.mark.parametrize("value", ["short", "QUJD", "not base64 at all!!"])
def test_production_refuses_a_malformed_audit_key(tmp_path: Path, name: str, value: str) -> None:
    result = load(tmp_path, **{**PRODUCTION, name: value})

    assert result.returncode != 0
    assert f"{name} must be 32 random bytes" in result.stderr


def test_production_refuses_an_empty_audit_key(tmp_path: Path) -> None:
    result = load(tmp_path, **{**PRODUCTION, "SYNTHGATE_AUDIT_KEY": ""})

    assert result.returncode != 0 and "SYNTHGATE_AUDIT_KEY must be 32 random bytes" in result.stderr


def test_production_loads_with_the_audit_key_and_keeps_no_key_file(tmp_path: Path) -> None:
    result = load(tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["SYNTHGATE_AUDIT_KEY"] == PRODUCTION["SYNTHGATE_AUDIT_KEY"]
    assert loaded["SYNTHGATE_AUDIT_CHECKPOINT_DIR"] == str(tmp_path / "audit-checkpoints")
    assert not (tmp_path / "audit_key").exists()


def test_development_keeps_a_private_stable_audit_key_under_var(tmp_path: Path) -> None:
    first = load(tmp_path, SYNTHGATE_ENV="development")
    second = load(tmp_path, SYNTHGATE_ENV="development")

    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "audit_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = json.loads(first.stdout)["SYNTHGATE_AUDIT_KEY"]
    assert key == key_file.read_text().strip() == json.loads(second.stdout)["SYNTHGATE_AUDIT_KEY"]
    assert len(base64.urlsafe_b64decode(key)) == 32


def test_checkpoint_location_and_interval_come_from_the_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "worm"
    result = load(
        tmp_path,
        SYNTHGATE_ENV="test",
        SYNTHGATE_AUDIT_CHECKPOINT_DIR=str(elsewhere),
        SYNTHGATE_AUDIT_CHECKPOINT_EVERY="25",
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert (loaded["SYNTHGATE_AUDIT_CHECKPOINT_DIR"], loaded["SYNTHGATE_AUDIT_CHECKPOINT_EVERY"]) == (
        str(elsewhere),
        "25",
    )


def test_a_checkpoint_interval_below_1_is_refused(tmp_path: Path) -> None:
    result = load(tmp_path, SYNTHGATE_ENV="test", SYNTHGATE_AUDIT_CHECKPOINT_EVERY="0")

    assert result.returncode != 0 and "SYNTHGATE_AUDIT_CHECKPOINT_EVERY" in result.stderr


# --- Sequenced audit writes (issue 16 item 3) -----------------------------------------------------
SEQUENCER = (
    "import json; from django.conf import settings as s; print(json.dumps({'on': "
    "s.SYNTHGATE_AUDIT_SEQUENCER, 'beat': s.CELERY_BEAT_SCHEDULE.get('audit-sequence')}))"
)
POSTGRES_URL = "postgres://synthgate@db.example.org:5432/synthgate"  # parsed only, never connected to


def test_sequenced_mode_is_off_by_default_with_no_beat_entry(tmp_path: Path) -> None:
    result = load(tmp_path, SEQUENCER, SYNTHGATE_ENV="test", DATABASE_URL=POSTGRES_URL)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"on": False, "beat": None}


def test_sequenced_mode_on_postgresql_links_every_second_on_the_beat(tmp_path: Path) -> None:
    from audit.tasks import SEQUENCE_TASK

    result = load(
        tmp_path, SEQUENCER, SYNTHGATE_ENV="test", DATABASE_URL=POSTGRES_URL, SYNTHGATE_AUDIT_SEQUENCER="1"
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"on": True, "beat": {"task": SEQUENCE_TASK, "schedule": 1.0}}


def test_sequenced_mode_is_refused_on_sqlite(tmp_path: Path) -> None:
    result = load(tmp_path, SEQUENCER, SYNTHGATE_ENV="test", SYNTHGATE_AUDIT_SEQUENCER="true")

    assert result.returncode != 0 and "SYNTHGATE_AUDIT_SEQUENCER needs PostgreSQL" in result.stderr

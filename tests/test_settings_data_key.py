"""Production refuses to start without a valid data-encryption key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOOD_KEY = "A" * 43 + "="  # urlsafe base64 of 32 bytes


def _load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SYNTHGATE_"))}
    base.update(
        {
            "SYNTHGATE_ENV": "production",
            "DJANGO_SECRET_KEY": "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "example.org",
            "SYNTHGATE_AUDIT_KEY": "B" * 43 + "=",
            "SYNTHGATE_VAR_DIR": str(REPO / "var" / "settings-check"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        cwd=REPO,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_a_data_key_fails_loudly() -> None:
    result = _load_settings()
    assert result.returncode != 0
    assert "SYNTHGATE_DATA_KEY" in result.stderr


@pytest.mark.parametrize("key", ["short", "not base64 at all!!", "QUJD"])
def test_production_with_a_malformed_data_key_fails_loudly(key: str) -> None:
    result = _load_settings(SYNTHGATE_DATA_KEY=key)
    assert result.returncode != 0 and "32 random bytes" in result.stderr


def test_production_with_a_valid_key_loads() -> None:
    result = _load_settings(SYNTHGATE_DATA_KEY=GOOD_KEY)
    assert result.returncode == 0, result.stderr

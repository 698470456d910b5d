"""Audit tests write checkpoints into a directory of their own, so no test (nor a run of the
portal on this machine) sees another's checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"
    return Path(settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR)

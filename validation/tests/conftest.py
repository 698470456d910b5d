"""Validation tests keep registered datasets in their own storage folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder

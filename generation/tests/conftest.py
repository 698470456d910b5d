"""Every generation test writes files to its own storage folder, so it can count what is left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder


def stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []

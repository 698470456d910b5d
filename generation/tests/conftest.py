"""Every generation test writes files to its own storage folder, so it can count what is left."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

# dp_mst wraps SmartNoise, which is optional and not installed by `make` (it gives (epsilon, delta)-DP
# and the ledger accounts for epsilon only). Its tests run where SmartNoise is installed
# (docs/synthesizers.md has the exact install line); elsewhere they are not collected at all.
collect_ignore = [] if importlib.util.find_spec("snsynth") else ["test_dp_mst.py"]


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder


def stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []

"""Data at rest: synthetic outputs are encrypted like the sources, every stored file is 0600 in
0700 folders, and the embedded SQLite database is readable by its owner only (issue 13, item 8).

Written as someone with a copy of the storage directory, or another account on the host, would
look: read the raw bytes, stat the files."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper

from generation.crypto import DecryptionError
from generation.models import SynthesisJob
from generation.services import job_claim, job_store_output
from generation.storage import (
    absolute_path,
    encrypt_legacy_file,
    open_encrypted,
    read_encrypted_bytes,
    storage_root,
    store_encrypted,
)

CANARY = "Canary-Ward-7731"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The default umask of most systems (022): files created without an explicit mode are 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _claimed_job(dataset: Any) -> SynthesisJob:
    job = SynthesisJob.objects.create(
        dataset=dataset, columns=["ward", "age"], synthesizer="gaussian_copula", rows=3, seed=1
    )
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None
    return claimed


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"ward": [CANARY, "B", "C"], "age": [61, -2, 70]})


def test_a_stored_output_holds_neither_its_values_nor_its_header_in_plaintext(dataset: Any) -> None:
    job = job_store_output(job=_claimed_job(dataset), frame=_frame())

    raw = absolute_path(job.output_path).read_bytes()
    assert CANARY.encode() not in raw
    assert b"ward,age" not in raw and b"ward" not in raw
    plaintext = read_encrypted_bytes(job.output_path)
    assert plaintext.startswith(b"ward,age\n") and CANARY.encode() in plaintext


def test_the_recorded_output_hash_is_of_the_csv_a_downloader_receives(dataset: Any) -> None:
    job = job_store_output(job=_claimed_job(dataset), frame=_frame())

    opened = open_encrypted(job.output_path)
    served = b"".join(opened.chunks)
    assert hashlib.sha256(served).hexdigest() == job.output_sha256
    assert SynthesisJob.objects.get(pk=job.pk).output_sha256 == job.output_sha256
    assert opened.size == len(served)


def test_a_truncated_output_is_refused_before_any_byte_is_served(dataset: Any) -> None:
    frame = pd.DataFrame({"ward": [f"w{i:07d}" for i in range(300_000)]})  # > 1 MiB: two chunks
    job = job_store_output(job=_claimed_job(dataset), frame=frame)
    path = absolute_path(job.output_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])

    with pytest.raises(DecryptionError):
        open_encrypted(job.output_path)


def test_every_stored_file_is_0600_in_0700_folders(dataset: Any) -> None:
    job = job_store_output(job=_claimed_job(dataset), frame=_frame())
    dp_state = store_encrypted(b"{}", folder="dp-state", suffix=".json")
    upload = store_encrypted(b"parquet", folder="uploads", suffix=".parquet")

    files = [dataset.storage_path, dataset.holdout_path, job.output_path, dp_state.relative_path]
    files.append(upload.relative_path)
    for relative in files:
        path = absolute_path(relative)
        assert _mode(path) == 0o600, relative
        assert _mode(path.parent) == 0o700, relative
    assert _mode(storage_root()) == 0o700


def test_a_storage_folder_made_with_a_loose_mode_is_tightened(settings: Any, tmp_path: Path) -> None:
    loose = tmp_path / "loose-storage"
    loose.mkdir(mode=0o755)
    settings.SYNTHGATE_STORAGE_DIR = loose

    assert _mode(storage_root()) == 0o700


def test_an_output_written_in_plaintext_by_an_earlier_version_is_encrypted_in_place(dataset: Any) -> None:
    plaintext = b"ward,age\nCanary-Ward-7731,61\n"
    relative = "releases/legacy.csv"
    absolute_path(relative).parent.mkdir(parents=True, exist_ok=True)
    absolute_path(relative).write_bytes(plaintext)

    assert encrypt_legacy_file(relative) is True
    assert CANARY.encode() not in absolute_path(relative).read_bytes()
    assert read_encrypted_bytes(relative) == plaintext  # same path, same plaintext hash
    assert _mode(absolute_path(relative)) == 0o600
    assert encrypt_legacy_file(relative) is False  # already encrypted: left alone


def test_the_portal_database_file_is_readable_by_its_owner_only(db: Any) -> None:
    # The whole-suite stage runs on the embedded SQLite database (scripts/test.sh), whose file this
    # guarantee is about; anywhere else the test must fail, not skip.
    assert connection.vendor == "sqlite", "this test needs the embedded SQLite database"
    path = Path(str(connection.settings_dict["NAME"]))
    assert path.exists(), path

    assert _mode(path) == 0o600


def test_a_new_sqlite_database_and_its_wal_and_shm_files_are_created_0600(
    tmp_path: Path, django_db_blocker: Any
) -> None:
    from generation.storage import sqlite_precreate_private

    name = tmp_path / "fresh.sqlite3"
    settings_dict = {**connection.settings_dict, "NAME": str(name)}
    sqlite_precreate_private(settings_dict)
    database = DatabaseWrapper(settings_dict, alias="fresh")
    with django_db_blocker.unblock():
        try:
            with database.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("CREATE TABLE t (v TEXT)")
                cursor.execute("INSERT INTO t VALUES ('x')")
            for suffix in ("", "-wal", "-shm"):
                assert _mode(Path(f"{name}{suffix}")) == 0o600, suffix
        finally:
            database.close()


def test_an_existing_world_readable_database_is_tightened_when_the_portal_connects(
    tmp_path: Path, django_db_blocker: Any
) -> None:
    name = tmp_path / "old.sqlite3"
    name.touch(mode=0o644)
    name.chmod(0o644)
    database = DatabaseWrapper({**connection.settings_dict, "NAME": str(name)}, alias="old")
    with django_db_blocker.unblock():
        try:
            database.ensure_connection()
            assert _mode(name) == 0o600
        finally:
            database.close()

"""Holdout custody (generators never see it) and encryption at rest."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from approvals.services import request_decide
from conftest import SAFE_COLUMNS, csv_upload, small_flchain_csv
from generation.crypto import DecryptionError, decrypt_file, encrypt_chunks
from generation.services import (
    dataset_register,
    dataset_sign_off,
    dataset_update_columns,
    job_claim,
    job_synthesize,
)
from generation.storage import absolute_path, read_encrypted_parquet
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer


def _with_row_ids(rows: int = 500) -> bytes:
    frame = pd.read_csv(io.BytesIO(small_flchain_csv(rows)))
    frame.insert(0, "rid", range(100_000, 100_000 + rows))
    return frame.to_csv(index=False).encode()


def test_holdout_rows_never_reach_a_generator(
    sam: Any, alice: Any, olivia: Any, make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from approvals.services import request_submit

    dataset = dataset_register(
        actor=sam, name="with rid", epsilon_cap="1", uploaded_file=csv_upload(_with_row_ids())
    )
    # A unique 6-digit number looks MRN-shaped; the steward knows it is a test row id.
    dataset_update_columns(
        actor=sam,
        dataset_id=dataset.pk,
        changes=[{"name": "rid", "classification": "other", "lower": 0, "upper": 999_999}],
    )
    dataset = dataset_sign_off(actor=sam, dataset_id=dataset.pk)
    holdout = set(read_encrypted_parquet(dataset.holdout_path)["rid"])
    training = set(read_encrypted_parquet(dataset.storage_path)["rid"])
    assert len(holdout) == 100 and len(training) == 400 and not holdout & training

    seen: list[pd.DataFrame] = []
    original = GaussianCopulaSynthesizer.fit_sample

    def spy(self: Any, frame: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        seen.append(frame.copy())
        return original(self, frame, **kwargs)

    monkeypatch.setattr(GaussianCopulaSynthesizer, "fit_sample", spy)
    request = request_submit(
        actor=alice, request_id=make_request(dataset_id=dataset.pk, columns=["rid", *SAFE_COLUMNS]).pk
    )
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    job_synthesize(job=job_claim(job_id=request.job_id))
    assert len(seen) == 1
    assert set(seen[0]["rid"]) == training
    assert not set(seen[0]["rid"]) & holdout


def test_the_job_keeps_the_metadata_it_was_approved_against(
    dataset: Any, sam: Any, submitted_request: Any, olivia: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    job = submitted_request.job
    assert job.classification_version == 1 and [c["name"] for c in job.metadata] == SAFE_COLUMNS
    dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=[{"name": "age", "upper": 150}])
    job.refresh_from_db()
    assert next(c for c in job.metadata if c["name"] == "age")["upper"] != 150


def _encrypt(data: bytes, path: Path) -> Path:
    path.write_bytes(b"".join(encrypt_chunks([data])))
    return path


def test_encryption_round_trips_large_multi_chunk_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # ~5 MB: several chunks
    assert decrypt_file(_encrypt(data, tmp_path / "f")).getvalue() == data


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_last_chunk", "append"])
def test_tampered_ciphertext_is_refused(tmp_path: Path, damage: str) -> None:
    path = _encrypt(b"x" * 3_000_000, tmp_path / "f")
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[100] ^= 1
    elif damage == "truncate":
        del blob[-10:]
    elif damage == "drop_last_chunk":
        del blob[-(1_000_000 - 48 - 16) :]
    else:
        blob += blob[7 : 7 + 100]
    path.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError):
        decrypt_file(path)


def test_a_different_key_cannot_decrypt(tmp_path: Path, settings: Any) -> None:
    from generation.crypto import generate_key

    path = _encrypt(b"secret rows", tmp_path / "f")
    settings.SYNTHGATE_DATA_KEY = generate_key()
    with pytest.raises(DecryptionError):
        decrypt_file(path)


def test_stored_sources_are_ciphertext(dataset: Any) -> None:
    for relative in (dataset.storage_path, dataset.holdout_path):
        raw = absolute_path(relative).read_bytes()
        assert raw.startswith(b"SGENC1\n") and b"PAR1" not in raw[:64]

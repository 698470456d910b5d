"""Upload spooling: one capped, hashing writer (storage.store_stream) behind every upload."""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import ValidationFailed
from generation.storage import spool_upload
from generation.tests.conftest import stored_files


def test_an_upload_is_spooled_privately_with_its_hash_and_size(settings: Any, storage_dir: Path) -> None:
    settings.SYNTHGATE_MAX_UPLOAD_BYTES = 1024
    body = b"a,b\n" + b"1,2\n" * 200  # 804 bytes

    spooled = spool_upload(SimpleUploadedFile("t.csv", body))

    assert (spooled.sha256, spooled.size_bytes) == (hashlib.sha256(body).hexdigest(), len(body))
    assert spooled.path.read_bytes() == body
    assert storage_dir.resolve() in spooled.path.parents
    assert stat.S_IMODE(spooled.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("make", [lambda b: SimpleUploadedFile("t.csv", b), io.BytesIO])
def test_an_upload_over_the_cap_is_refused_and_leaves_nothing(
    settings: Any, storage_dir: Path, make: Any
) -> None:
    settings.SYNTHGATE_MAX_UPLOAD_BYTES = 1024 * 1024
    with pytest.raises(ValidationFailed) as refused:
        spool_upload(make(b"x" * (1024 * 1024 + 1)))

    assert (refused.value.code, refused.value.fields) == ("file_too_large", {"file": "too_large"})
    assert "1 MB limit" in str(refused.value)
    assert stored_files(storage_dir) == []

"""Protected file storage for source datasets and synthetic outputs.

Files live under SYNTHGATE_STORAGE_DIR, which is never served over HTTP. Paths stored in the
database are relative to it, so the directory can move (or be a shared mount for many workers).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from core.errors import ValidationFailed

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    sha256: str
    size_bytes: int


def storage_root() -> Path:
    root = Path(settings.SYNTHGATE_STORAGE_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def absolute_path(relative_path: str) -> Path:
    root = storage_root().resolve()
    path = (root / relative_path).resolve()
    if root not in path.parents:
        raise ValueError("Stored path escapes the storage root.")
    return path


def store_stream(chunks: Iterable[bytes], *, folder: str, suffix: str, max_bytes: int) -> StoredFile:
    """Write chunks to a new file, hashing as it goes; stop and delete past `max_bytes`."""
    relative = f"{folder}/{uuid.uuid4().hex}{suffix}"
    target = absolute_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ValidationFailed(
                        f"The file is larger than the {max_bytes // (1024 * 1024)} MB limit; "
                        "upload a smaller extract.",
                        code="file_too_large",
                        fields={"file": "too_large"},
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return StoredFile(relative_path=relative, sha256=digest.hexdigest(), size_bytes=size)


def store_encrypted(plaintext: bytes, *, folder: str, suffix: str) -> StoredFile:
    """Encrypt and store; `sha256` is of the plaintext (what the content hash means to users)."""
    from generation.crypto import encrypt_chunks

    digest = hashlib.sha256(plaintext).hexdigest()
    pieces = (plaintext[i : i + CHUNK] for i in range(0, len(plaintext), CHUNK))
    stored = store_stream(encrypt_chunks(pieces), folder=folder, suffix=suffix + ".enc", max_bytes=2**42)
    return StoredFile(relative_path=stored.relative_path, sha256=digest, size_bytes=len(plaintext))


def read_encrypted_parquet(relative_path: str) -> Any:
    """Decrypt a stored split into a DataFrame. Called only by worker-side services."""
    import pandas as pd

    from generation.crypto import decrypt_file

    return pd.read_parquet(decrypt_file(absolute_path(relative_path)))


def delete_stored(relative_path: str) -> None:
    if relative_path:
        absolute_path(relative_path).unlink(missing_ok=True)

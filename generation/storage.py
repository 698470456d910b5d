"""Protected file storage for source datasets, uploads, DP state and synthetic outputs.

Files live under SYNTHGATE_STORAGE_DIR, which is never served over HTTP. Paths stored in the
database are relative to it, so the directory can move (or be a shared mount for many workers).
Every file is encrypted (generation.crypto) and created 0600 in 0700 folders: a copy of the
directory, a backup or another local account reads nothing without SYNTHGATE_DATA_KEY. The one
exception is an upload's spool (`spool_upload`): plaintext, 0600, and deleted once it is parsed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from core.errors import ValidationFailed

CHUNK = 1024 * 1024
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class OpenedFile:
    """A stored file checked and ready to stream: `size` plaintext bytes from `chunks`."""

    size: int
    chunks: Iterator[bytes]


def storage_root() -> Path:
    root = Path(settings.SYNTHGATE_STORAGE_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A directory made earlier (or by hand) with a looser mode is tightened, not trusted.
    if stat.S_IMODE(root.stat().st_mode) & 0o077:
        root.chmod(0o700)
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


# Uploads are parsed from a plaintext temporary copy here (never from memory), then deleted.
SPOOL_FOLDER = "tmp"


@dataclass(frozen=True)
class SpooledUpload:
    """An upload copied to a private temporary file; the caller deletes `path` when done."""

    path: Path
    sha256: str  # of the uploaded bytes
    size_bytes: int


def upload_chunks(uploaded: Any) -> Iterator[bytes]:
    """The bytes of a Django UploadedFile in its own chunks, or of a plain file object, read whole."""
    if hasattr(uploaded, "chunks"):
        yield from uploaded.chunks()
    else:
        yield uploaded.read()


def spool_upload(uploaded: Any) -> SpooledUpload:
    """Copy an upload to a private (0600) temporary file, hashing it, under the upload cap.

    Past SYNTHGATE_MAX_UPLOAD_BYTES it stops, deletes what it wrote and raises ValidationFailed
    (`file_too_large`). The copy is plaintext: the caller parses it, then deletes it.
    """
    stored = store_stream(
        upload_chunks(uploaded),
        folder=SPOOL_FOLDER,
        suffix=".upload",
        max_bytes=settings.SYNTHGATE_MAX_UPLOAD_BYTES,
    )
    return SpooledUpload(
        path=absolute_path(stored.relative_path), sha256=stored.sha256, size_bytes=stored.size_bytes
    )


def store_encrypted(plaintext: bytes, *, folder: str, suffix: str) -> StoredFile:
    """Encrypt and store; `sha256` is of the plaintext (what the content hash means to users)."""
    pieces = (plaintext[i : i + CHUNK] for i in range(0, len(plaintext), CHUNK))
    return store_encrypted_chunks(pieces, folder=folder, suffix=suffix)


def store_encrypted_chunks(chunks: Iterable[bytes], *, folder: str, suffix: str) -> StoredFile:
    """Encrypt a plaintext stream into a new file; `sha256` and `size_bytes` are of the plaintext,
    so a user who hashes what they downloaded gets the recorded value."""
    from generation.crypto import encrypt_chunks

    digest, size = hashlib.sha256(), 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    stored = store_stream(encrypt_chunks(hashed()), folder=folder, suffix=suffix + ".enc", max_bytes=2**42)
    return StoredFile(relative_path=stored.relative_path, sha256=digest.hexdigest(), size_bytes=size)


def open_encrypted(relative_path: str) -> OpenedFile:
    """Check a stored file's framing (a truncated file is refused here, before any byte is sent)
    and return its plaintext as a stream of chunks: no plaintext copy is ever written to disk."""
    from generation.crypto import decrypt_chunks, plaintext_size

    path = absolute_path(relative_path)
    return OpenedFile(size=plaintext_size(path), chunks=decrypt_chunks(path))


def read_encrypted_bytes(relative_path: str) -> bytes:
    """The whole plaintext of a stored file, in memory (worker-side and tests)."""
    from generation.crypto import decrypt_file

    return decrypt_file(absolute_path(relative_path)).getvalue()


def read_encrypted_parquet(relative_path: str) -> Any:
    """Decrypt a stored split into a DataFrame. Called only by worker-side services."""
    import pandas as pd

    from generation.crypto import decrypt_file

    return pd.read_parquet(decrypt_file(absolute_path(relative_path)))


def encrypt_legacy_file(relative_path: str) -> bool:
    """Encrypt, in place, a stored file written in plaintext by an earlier version (synthetic
    outputs were); True if it was. The path and the plaintext's SHA-256 stay the same, so
    releases and receipts that point at it remain valid."""
    from generation.crypto import MAGIC, encrypt_chunks

    path = absolute_path(relative_path)
    try:
        with path.open("rb") as handle:
            if handle.read(len(MAGIC)) == MAGIC:
                return False
    except FileNotFoundError:
        return False
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            for sealed in encrypt_chunks(iter(lambda: source.read(CHUNK), b"")):
                out.write(sealed)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True


def delete_stored(relative_path: str) -> None:
    if relative_path:
        absolute_path(relative_path).unlink(missing_ok=True)


# --- The embedded database's files ---------------------------------------------------------------

_SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def _sqlite_path(settings_dict: dict[str, Any]) -> Path | None:
    name = str(settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return Path(name)


def sqlite_precreate_private(settings_dict: dict[str, Any]) -> None:
    """Create a missing SQLite database file 0600 before SQLite does (SQLite would create it
    with the process umask, typically 0644: world-readable). Its -wal, -shm and -journal files
    then inherit 0600, because SQLite gives them the database file's mode."""
    path = _sqlite_path(settings_dict)
    if path is None or path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process made it first; sqlite_make_private tightens it if needed
    except OSError as exc:  # a read-only checkout: SQLite will report what it cannot open
        logger.warning("cannot create %s: %s", path.name, type(exc).__name__)


def sqlite_make_private(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: the SQLite database and its side files are owner-only.

    Also tightens files an earlier version (or a test database) created with a looser mode.
    """
    if connection.vendor != "sqlite":
        return
    path = _sqlite_path(connection.settings_dict)
    if path is None:
        return
    for suffix in _SQLITE_SIDE_FILES:
        side = Path(f"{path}{suffix}")
        try:
            if stat.S_IMODE(side.stat().st_mode) & 0o077:
                side.chmod(0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:  # owned by another account: say so, but do not refuse to connect
            logger.warning("cannot make %s owner-only: %s", side.name, type(exc).__name__)

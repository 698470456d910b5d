"""Encryption at rest for every stored file (sources, holdouts, uploads, DP state, synthetic
outputs): AES-256-GCM in 1 MiB chunks.

File layout: MAGIC, then per chunk: 12-byte random nonce, 4-byte big-endian ciphertext length,
ciphertext+tag. Each chunk's associated data binds its index and whether it is the last one, so
reordering, dropping or truncating chunks fails authentication instead of yielding a shorter
table. Streaming keeps memory flat for large uploads.

The key is 32 bytes, base64 in SYNTHGATE_DATA_KEY. Production refuses to start without it
(settings); development keeps a random per-checkout key under var/.
"""

from __future__ import annotations

import base64
import io
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

MAGIC = b"SGENC1\n"
CHUNK = 1024 * 1024
_LEN = struct.Struct(">I")
_TAG = 16  # AES-GCM tag bytes at the end of every sealed chunk


class DecryptionError(Exception):
    """The stored file is not ours, was altered, or the key is wrong."""


def _key() -> bytes:
    raw = base64.urlsafe_b64decode(settings.SYNTHGATE_DATA_KEY)
    if len(raw) != 32:
        raise DecryptionError("SYNTHGATE_DATA_KEY must decode to 32 bytes.")
    return raw


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


def _rechunk(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in chunks:
        buffer.extend(piece)
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    yield bytes(buffer)


def encrypt_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the encrypted file for the plaintext `chunks` (always ends with a final chunk)."""
    aead = AESGCM(_key())
    yield MAGIC
    pending: bytes | None = None
    index = 0
    for block in _rechunk(chunks):
        if pending is not None:
            yield _seal(aead, pending, index, last=False)
            index += 1
        pending = block
    yield _seal(aead, pending or b"", index, last=True)


def _seal(aead: AESGCM, plaintext: bytes, index: int, *, last: bool) -> bytes:
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext, _aad(index, last))
    return nonce + _LEN.pack(len(sealed)) + sealed


def decrypt_file(path: os.PathLike[str] | str) -> io.BytesIO:
    """Decrypt a stored file into memory (workers only). Raises DecryptionError on any tampering."""
    out = io.BytesIO()
    for block in decrypt_chunks(path):
        out.write(block)
    out.seek(0)
    return out


def decrypt_chunks(path: os.PathLike[str] | str) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk (memory stays at one chunk: downloads stream this).

    Each chunk is authenticated before it is yielded; a file cut short or extended raises
    DecryptionError at the point where that shows (after the chunks before it were yielded), so
    callers that send bytes to a client should run `plaintext_size` first."""
    aead = AESGCM(_key())
    with open(path, "rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise DecryptionError("Not a SynthGate-encrypted file.")
        index, finished = 0, False
        while header := handle.read(12 + _LEN.size):
            if finished or len(header) < 12 + _LEN.size:
                raise DecryptionError("Encrypted file has trailing or truncated data.")
            nonce, (length,) = header[:12], _LEN.unpack(header[12:])
            block, finished = _open_chunk(aead, nonce, handle.read(length), index)
            index += 1
            yield block
        if not finished:
            raise DecryptionError("Encrypted file is truncated.")


def plaintext_size(path: os.PathLike[str] | str) -> int:
    """The plaintext length, after checking the file's framing and that its final chunk
    authenticates as the last one (so a truncated file is refused before any byte is sent).
    Reads only the chunk headers and the final chunk."""
    aead = AESGCM(_key())
    with open(path, "rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise DecryptionError("Not a SynthGate-encrypted file.")
        total = os.fstat(handle.fileno()).st_size
        size, index, position = 0, 0, len(MAGIC)
        while True:
            header = handle.read(12 + _LEN.size)
            (length,) = _LEN.unpack(header[12:]) if len(header) == 12 + _LEN.size else (-1,)
            end = position + len(header) + length
            if length < _TAG or end > total:
                raise DecryptionError("Encrypted file has trailing or truncated data.")
            size += length - _TAG
            if end == total:
                _, last = _open_chunk(aead, header[:12], handle.read(length), index)
                if not last:
                    raise DecryptionError("Encrypted file is truncated.")
                return size
            handle.seek(end)
            position, index = end, index + 1


def _open_chunk(aead: AESGCM, nonce: bytes, sealed: bytes, index: int) -> tuple[bytes, bool]:
    """(plaintext, whether the chunk was sealed as the file's last one)."""
    for last in (False, True):
        try:
            return aead.decrypt(nonce, sealed, _aad(index, last)), last
        except InvalidTag:
            continue
    raise DecryptionError("Encrypted file failed authentication (altered, or wrong key).")


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

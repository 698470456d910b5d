"""Signed checkpoints of the audit chain head, kept outside the database.

A checkpoint is an Ed25519 signature over (head sequence number, head hash, time). They are
appended, one JSON object per line, to `checkpoints.jsonl` in SYNTHGATE_AUDIT_CHECKPOINT_DIR.
Whoever controls the database can delete the newest rows and fix the head row, or (holding the
chain key) recompute the chain; a checkpoint signed earlier, in a file they cannot rewrite, still
says what the chain held. The file only ever grows: keep it append-only (`chattr +a`, WORM or
object-lock storage, or ship each line to a log host), because deleting lines from it shrinks
what verification can prove.

The signing key comes from SYNTHGATE_AUDIT_SIGNING_KEY, or is derived (HKDF) from the chain key.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from audit.hashing import audit_key

CHECKPOINT_FILE = "checkpoints.jsonl"
_KIND = "synthgate.audit.checkpoint"
_HKDF_INFO = b"synthgate audit checkpoint signing key v1"


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: the chain's head was `seq` with hash `hash` at time `at`."""

    seq: int
    hash: str
    at: str
    key_id: str
    signature: str


@dataclass(frozen=True)
class CheckpointLog:
    """What the checkpoint file holds: the checkpoints whose signature verifies, sorted by seq,
    and the (1-based) line numbers that do not parse or do not verify."""

    valid: list[Checkpoint]
    bad_lines: list[int]

    @property
    def newest(self) -> Checkpoint | None:
        return self.valid[-1] if self.valid else None


def checkpoint_path() -> Path:
    return Path(settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR) / CHECKPOINT_FILE


def signing_key() -> Ed25519PrivateKey:
    seed_b64 = settings.SYNTHGATE_AUDIT_SIGNING_KEY
    seed = base64.urlsafe_b64decode(seed_b64) if seed_b64 else _derived_seed(audit_key())
    return _private_key(seed)


def public_key_text() -> str:
    """The verification key (raw Ed25519, urlsafe base64), to hand to an external verifier."""
    return base64.urlsafe_b64encode(_public_bytes(signing_key().public_key())).decode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_public_bytes(public)).hexdigest()[:16]


def checkpoint_sign(*, seq: int, hash: str, at: datetime | None = None) -> Checkpoint:
    moment = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    private = signing_key()
    signature = private.sign(_message(seq=seq, hash=hash, at=moment))
    return Checkpoint(
        seq=seq,
        hash=hash,
        at=moment,
        key_id=key_id(private.public_key()),
        signature=base64.urlsafe_b64encode(signature).decode("ascii"),
    )


def checkpoint_append(checkpoint: Checkpoint) -> None:
    """Append one line. O_APPEND plus an exclusive lock keeps concurrent writers' lines whole;
    the file is created 0600 and never opened for anything but appending."""
    path = checkpoint_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps(asdict(checkpoint), sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoints_read() -> CheckpointLog:
    """Every checkpoint in the file, checked against the signing key."""
    path = checkpoint_path()
    if not path.exists():
        return CheckpointLog(valid=[], bad_lines=[])
    public = signing_key().public_key()
    valid: list[Checkpoint] = []
    bad: list[int] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        checkpoint = _parse_verified(line, public)
        if checkpoint is None:
            bad.append(number)
        else:
            valid.append(checkpoint)
    valid.sort(key=lambda c: c.seq)
    return CheckpointLog(valid=valid, bad_lines=bad)


def _parse_verified(line: bytes, public: Ed25519PublicKey) -> Checkpoint | None:
    try:
        raw: Any = json.loads(line)
        checkpoint = Checkpoint(
            seq=int(raw["seq"]),
            hash=str(raw["hash"]),
            at=str(raw["at"]),
            key_id=str(raw["key_id"]),
            signature=str(raw["signature"]),
        )
        signature = base64.urlsafe_b64decode(checkpoint.signature)
        public.verify(signature, _message(seq=checkpoint.seq, hash=checkpoint.hash, at=checkpoint.at))
    except (ValueError, TypeError, KeyError, InvalidSignature):
        return None
    return checkpoint


def _message(*, seq: int, hash: str, at: str) -> bytes:
    payload = {"kind": _KIND, "v": 1, "seq": seq, "hash": hash, "at": at}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def _public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@lru_cache(maxsize=4)
def _derived_seed(chain_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(chain_key)


@lru_cache(maxsize=4)
def _private_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)

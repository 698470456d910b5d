"""Stored passwords: Argon2id at OWASP's minimum parameters (portal/hashers.py), and a password
stored before (PBKDF2) is re-hashed with Argon2id at its owner's next successful sign-in only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.test import Client

import portal.settings as configured
from conftest import PASSWORD
from portal.hashers import Argon2idHasher

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _production_hashers(settings: Any) -> None:
    # The root conftest swaps in MD5 to keep the suite fast; these tests need the real list.
    settings.PASSWORD_HASHERS = configured.PASSWORD_HASHERS


def test_new_passwords_are_argon2id_with_owasps_minimum_parameters() -> None:
    assert configured.PASSWORD_HASHERS[0] == "portal.hashers.Argon2idHasher"
    encoded = make_password("A-long-enough-passphrase-1")
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert isinstance(identify_hasher(encoded), Argon2idHasher)
    assert check_password("A-long-enough-passphrase-1", encoded)
    assert not check_password("A-long-enough-passphrase-2", encoded)
    # No PBKDF2 in a new hash, and the password itself is nowhere in it.
    assert "pbkdf2" not in encoded and "passphrase" not in encoded


def _stored_with_pbkdf2(user: Any) -> str:
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    return str(user.password)


def test_a_pbkdf2_password_is_rehashed_with_argon2id_at_the_next_sign_in(alice: Any) -> None:
    old = _stored_with_pbkdf2(alice)
    assert old.startswith("pbkdf2_sha256$")

    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert "_auth_user_id" in client.session
    alice.refresh_from_db()
    assert alice.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert Client().post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302


def test_a_wrong_password_leaves_the_stored_hash_as_it_was(alice: Any) -> None:
    old = _stored_with_pbkdf2(alice)
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "Not-the-password-99"})
    assert "_auth_user_id" not in client.session
    alice.refresh_from_db()
    assert alice.password == old

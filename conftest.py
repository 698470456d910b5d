"""Shared fixtures: personas (healthchecks-style) and factories for the spine's objects.

Personas:
  alice   data scientist, team Cardiology  (files requests)
  bob     data scientist, team Cardiology  (alice's teammate)
  charlie data scientist, team Oncology    (another team: sees none of Cardiology's work)
  olivia  privacy officer, team Privacy    (reviews)
  oscar   privacy officer, team Cardiology (a second reviewer, on alice's team)
  sam     data steward                     (registers datasets)
  ada     admin
  audrey  auditor
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

os.environ.setdefault("XDG_DATA_HOME", str(Path(__file__).parent / "var" / "xdg"))

# The public clinical tables the tests read, shipped in the repository (a clone needs nothing beside it).
DEMO_DATA = Path(__file__).resolve().parent / "portal" / "demo"
TEST_DATA = Path(__file__).resolve().parent / "tests" / "data"
PASSWORD = "Correct-Horse-42"
IN_CI = os.environ.get("CI", "").lower() == "true"


def on_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `services` need PostgreSQL and Redis: deselected (not skipped) in the SQLite
    stage; they run in the PostgreSQL/Redis stage, which fails under CI if those are missing."""
    if on_postgres():
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("services") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def data_file(name: str) -> Path:
    """A shipped clinical table: the demo copy (flchain) or tests/data (the others)."""
    for folder in (DEMO_DATA, TEST_DATA):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(name)


def csv_upload(text_or_bytes: str | bytes, name: str = "source.csv") -> SimpleUploadedFile:
    content = text_or_bytes.encode() if isinstance(text_or_bytes, str) else text_or_bytes
    return SimpleUploadedFile(name, content, content_type="text/csv")


def small_flchain_csv(rows: int = 600) -> bytes:
    import pandas as pd

    frame = pd.read_csv(data_file("flchain.csv")).head(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture(autouse=True)
def _audit_triggers_allow_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """TransactionTestCase-style tests end with a table flush, which the audit log's append-only
    triggers would refuse. Lift them just for the flush and restore them for the next test."""
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")
    _set_audit_triggers(enabled=True)
    yield
    _set_audit_triggers(enabled=False)


def _set_audit_triggers(*, enabled: bool) -> None:
    from importlib import import_module

    migration = import_module("audit.migrations.0002_append_only_triggers")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER")
        elif connection.vendor == "sqlite":
            for sql in migration.SQLITE_DROP:
                cursor.execute(sql)
            if enabled:
                for sql in migration.SQLITE:
                    cursor.execute(sql)


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings: Any, tmp_path: Path) -> None:
    # Signed checkpoints live outside the database and outlive a test's database: each test gets
    # its own folder, or a checkpoint of an earlier test's chain would "detect" a rewrite.
    settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"


@pytest.fixture(autouse=True)
def _fixed_holdout_split(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registration draws a random holdout split; a fixed one keeps a test release's gate verdict
    # (membership inference on a 120-row holdout, say) the same on every run.
    monkeypatch.setattr("generation.services.datasets.new_holdout_seed", lambda: 20240601)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness costs ~0.3 s per persona; tests need correctness, not cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db: Any) -> Callable[..., Any]:
    from portal.services import user_create

    def make(username: str, role: str, team: str | None = None) -> Any:
        return user_create(username=username, password=PASSWORD, role=role, team_name=team)

    return make


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice", "data_scientist", "Cardiology")


@pytest.fixture
def bob(make_user: Callable[..., Any], alice: Any) -> Any:
    return make_user("bob", "data_scientist", "Cardiology")


@pytest.fixture
def charlie(make_user: Callable[..., Any]) -> Any:
    return make_user("charlie", "data_scientist", "Oncology")


@pytest.fixture
def olivia(make_user: Callable[..., Any]) -> Any:
    return make_user("olivia", "privacy_officer", "Privacy")


@pytest.fixture
def oscar(make_user: Callable[..., Any], alice: Any) -> Any:
    return make_user("oscar", "privacy_officer", "Cardiology")


@pytest.fixture
def sam(make_user: Callable[..., Any]) -> Any:
    return make_user("sam", "data_steward", "Data Office")


@pytest.fixture
def ada(make_user: Callable[..., Any]) -> Any:
    return make_user("ada", "admin", "IT")


@pytest.fixture
def audrey(make_user: Callable[..., Any]) -> Any:
    return make_user("audrey", "auditor", "Audit")


@pytest.fixture
def api() -> Callable[[Any], APIClient]:
    """api(user) -> an APIClient authenticated as that user with a real (hashed, expiring) token;
    api(None) is anonymous."""

    def client_for(user: Any | None) -> APIClient:
        from portal.auth_tokens import token_mint

        client = APIClient()
        if user is not None:
            # Minted without an audit row: fixture plumbing, not a sign-in the test is about.
            issued = token_mint(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
        return client

    return client_for


@pytest.fixture(autouse=True)
def _mfa_not_required(settings: Any) -> None:
    # Personas sign in with force_login or a password and no authenticator; tests of the second
    # factor turn this on (`mfa_required`). Deployments cannot turn it off (see settings.py).
    settings.SYNTHGATE_MFA_REQUIRED = False


@pytest.fixture
def mfa_required(settings: Any) -> None:
    settings.SYNTHGATE_MFA_REQUIRED = True


@pytest.fixture(autouse=True)
def _fresh_throttle_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    # Throttle counters live in a shared cache (a database table outside any model), which a
    # transactional test's flush does not empty; a rolled-back test leaves nothing behind.
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        yield
        return
    from django.core.cache import cache

    request.getfixturevalue("transactional_db")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def dataset(sam: Any) -> Any:
    """A registered 600-row slice of flchain with a 1.0 epsilon cap, its columns declared by the
    steward from public knowledge (generation.public_declarations), then signed off."""
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    registered = dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv()), epsilon_cap="1.0"
    )
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=FLCHAIN)
    return dataset_sign_off(actor=sam, dataset_id=registered.pk)


SAFE_COLUMNS = ["age", "sex", "kappa", "lambda", "creatinine", "futime", "death"]


@pytest.fixture
def make_request(alice: Any, dataset: Any) -> Callable[..., Any]:
    from approvals.services import RequestInput, request_create

    def make(actor: Any = None, **overrides: Any) -> Any:
        fields: dict[str, Any] = {
            "dataset_id": dataset.pk,
            "title": "Readmission model prototype",
            "purpose": "Prototype a 30-day mortality model",
            "intended_use": "Feature engineering in a notebook",
            "audience": "internal",
            "columns": SAFE_COLUMNS,
            "synthesizer": "gaussian_copula",
            "rows": 300,
            "epsilon": None,
        }
        fields.update(overrides)
        return request_create(actor=actor or alice, data=RequestInput(**fields))

    return make


@pytest.fixture
def submitted_request(make_request: Callable[..., Any], alice: Any) -> Any:
    from approvals.services import request_submit

    return request_submit(actor=alice, request_id=make_request().pk)

"""The installed stack and the security settings are what the project relies on.

`pip install` and `pip check` both succeed with a stack on which `import diffprivlib` fails
(shared/STACK.md), so importing every pinned dependency here is the only check that catches it.
Production settings are loaded in a subprocess, with a controlled environment, so the Django that
runs these tests is unaffected.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

BASE_DIR = Path(__file__).resolve().parent.parent
VALID_SECRET = "x" * 20 + "-production-secret-key-for-tests"

PINNED_MODULES = [
    "numpy",
    "scipy",
    "sklearn",
    "pandas",
    "pyarrow",
    "sdv",
    "sdmetrics",
    "rdt",
    "ctgan",
    "copulas",
    "diffprivlib",
    "anonymeter",
    "plotly",
    "django",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "csp",
    "whitenoise",
    "dj_database_url",
    "psycopg",
    "celery",
    "kombu",
    "redis",
    "cryptography",
    "torch",
    "django_otp",
    "axes",
    "argon2",
    "qrcode",
]


@pytest.mark.parametrize("module", PINNED_MODULES)
def test_pinned_dependency_imports(module: str) -> None:
    importlib.import_module(module)


def test_diffprivlib_fits_a_model_on_the_pinned_scikit_learn_and_scipy() -> None:
    # scikit-learn 1.7 imports fine yet breaks diffprivlib's `.fit`; scipy 1.18 drops L-BFGS-B options.
    import numpy as np
    from diffprivlib.models import LogisticRegression
    from diffprivlib.utils import PrivacyLeakWarning

    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, size=(200, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        model = LogisticRegression(epsilon=1.0, data_norm=2.0, random_state=0).fit(features, labels)
    assert model.coef_.shape == (1, 3)


def test_torch_is_the_cpu_build() -> None:
    import torch

    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build; install the CPU wheel"


# --- Production settings, loaded in a subprocess -----------------------------------------------


def _load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings with only `env` set (plus PATH-like basics); print a few values as JSON."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SYNTHGATE_", "CELERY_")) and key != "DATABASE_URL"
    }
    clean.update({"SYNTHGATE_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "portal.settings"})
    clean.update(env)
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None) "
        "for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER', "
        "'ALLOWED_HOSTS', 'CELERY_TASK_ALWAYS_EAGER', 'WHITENOISE_USE_FINDERS', 'SECURE_HSTS_PRELOAD', "
        "'SESSION_COOKIE_NAME', 'CSRF_COOKIE_NAME', 'CACHES', 'REST_FRAMEWORK', 'AXES_LOCKOUT_PARAMETERS', "
        "'AXES_HANDLER', 'SESSION_COOKIE_AGE', 'SYNTHGATE_SESSION_ABSOLUTE_HOURS', 'SYNTHGATE_MFA_REQUIRED', "
        "'AUTH_PASSWORD_VALIDATORS']}))"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "SYNTHGATE_ENV": "production",
    "DJANGO_SECRET_KEY": VALID_SECRET,
    "DJANGO_ALLOWED_HOSTS": "synthgate.example.org",
    "SYNTHGATE_DATA_KEY": base64.urlsafe_b64encode(bytes(range(32))).decode(),
    "SYNTHGATE_AUDIT_KEY": base64.urlsafe_b64encode(bytes(range(32, 64))).decode(),
}


def _without(name: str) -> dict[str, str]:
    return {key: value for key, value in PRODUCTION.items() if key != name}


def test_production_settings_load_with_the_required_variables(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **_without("DJANGO_SECRET_KEY"))
    assert result.returncode != 0
    assert "Environment variable DJANGO_SECRET_KEY is required" in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **{**PRODUCTION, "DJANGO_SECRET_KEY": "too-short"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be at least 32 characters" in result.stderr


def test_production_refuses_to_start_without_a_data_encryption_key(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **_without("SYNTHGATE_DATA_KEY"))
    assert result.returncode != 0
    assert "Environment variable SYNTHGATE_DATA_KEY is required" in result.stderr


def test_production_refuses_to_start_with_debug_on(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **{**PRODUCTION, "DJANGO_DEBUG": "true"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be off in production" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **_without("DJANGO_ALLOWED_HOSTS"))
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is required in production" in result.stderr


def test_production_sets_secure_cookies_hsts_and_ssl_redirect(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["ALLOWED_HOSTS"] == ["synthgate.example.org"]
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False
    # Production serves only collected (hashed, compressed) static files, never from the finders.
    assert values["WHITENOISE_USE_FINDERS"] is False


def _values(tmp_path: Path, **env: str) -> dict[str, object]:
    result = _load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_production_preloads_hsts_and_binds_cookies_to_the_host(tmp_path: Path) -> None:
    values = _values(tmp_path, **PRODUCTION)
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SESSION_COOKIE_NAME"] == "__Host-sessionid"
    assert values["CSRF_COOKIE_NAME"] == "__Host-csrftoken"
    assert values["SYNTHGATE_MFA_REQUIRED"] is True


def test_check_deploy_with_production_settings_gives_no_warning(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SYNTHGATE_", "CELERY_")) and key != "DATABASE_URL"
    }
    env.update(PRODUCTION, SYNTHGATE_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="portal.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_django_admin_is_not_mounted_in_production(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "SYNTHGATE_"))}
    env.update(PRODUCTION, SYNTHGATE_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="portal.settings")
    script = (
        "import django; django.setup(); from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/django-admin/login/'); print('mounted')\n"
        "except Resolver404:\n    print('absent')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "absent", result.stderr


def test_by_default_x_forwarded_for_is_ignored_and_counters_share_the_database(tmp_path: Path) -> None:
    values = _values(tmp_path, SYNTHGATE_ENV="development")
    assert values["REST_FRAMEWORK"]["NUM_PROXIES"] == 0  # type: ignore[index]
    assert values["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"  # type: ignore[index]
    assert values["AXES_HANDLER"] == "portal.auth_lockout.PortalAxesHandler"  # axes' database handler
    assert values["AXES_LOCKOUT_PARAMETERS"] == ["username", "ip_address"]
    assert values["SESSION_COOKIE_AGE"] == 1800
    assert values["SYNTHGATE_SESSION_ABSOLUTE_HOURS"] == 8
    assert values["SYNTHGATE_MFA_REQUIRED"] is True
    minimum = values["AUTH_PASSWORD_VALIDATORS"][0]  # type: ignore[index]
    assert minimum["OPTIONS"]["min_length"] == 12


def test_trusted_proxies_and_a_redis_cache_come_from_the_environment(tmp_path: Path) -> None:
    values = _values(
        tmp_path,
        SYNTHGATE_ENV="development",
        SYNTHGATE_TRUSTED_PROXIES="1",
        SYNTHGATE_CACHE_URL="redis://r:6379/2",
    )
    assert values["REST_FRAMEWORK"]["NUM_PROXIES"] == 1  # type: ignore[index]
    assert values["CACHES"]["default"] == {  # type: ignore[index]
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://r:6379/2",
    }


def test_an_unknown_environment_name_is_refused(tmp_path: Path) -> None:
    result = _load_settings(tmp_path, SYNTHGATE_ENV="prod")
    assert result.returncode != 0
    assert "SYNTHGATE_ENV='prod'" in result.stderr


# --- Settings the running test suite sees --------------------------------------------------------


def test_celery_tasks_are_not_run_eagerly() -> None:
    # Eager tasks would hide that the pipeline needs a real worker process.
    from portal.celery import app

    assert django_settings.CELERY_TASK_ALWAYS_EAGER is False
    assert app.conf.task_always_eager is False
    assert app.conf.task_default_queue == "synthesis"


def test_api_denies_by_default_and_never_uses_basic_auth() -> None:
    from rest_framework.authentication import BasicAuthentication
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.settings import api_settings

    assert django_settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == [
        "rest_framework.permissions.IsAuthenticated"
    ]
    assert api_settings.DEFAULT_PERMISSION_CLASSES == [IsAuthenticated]
    assert not any(
        issubclass(cls, BasicAuthentication) for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
    )


# --- The demo seed (make run) is for development only -------------------------------------------


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_logins_work() -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from core.roles import NEEDS_SECOND_FACTOR
    from generation.models import SourceDataset
    from portal.management.commands.seed_demo import (
        DEMO_DATASET_NAME,
        DEMO_PASSWORD,
        DEMO_TOTP_SECRET,
        DEMO_USERS,
    )
    from portal.models import User

    call_command("seed_demo", stdout=io.StringIO())
    output = io.StringIO()
    call_command("seed_demo", stdout=output)

    assert "0 user(s) created, dataset already present" in output.getvalue()
    assert f"password for all: {DEMO_PASSWORD}" in output.getvalue()

    assert User.objects.count() == len(DEMO_USERS)
    for username, role, team in DEMO_USERS:
        user = User.objects.get(username=username)
        assert (user.role, user.team.name) == (role, team)
        assert user.check_password(DEMO_PASSWORD)
        # The roles that need a second factor have the printed demo secret enrolled.
        devices = TOTPDevice.objects.filter(user=user, confirmed=True)
        if role in NEEDS_SECOND_FACTOR:
            assert [base64.b32encode(d.bin_key).decode() for d in devices] == [DEMO_TOTP_SECRET]
        else:
            assert not devices.exists()
    assert DEMO_TOTP_SECRET in output.getvalue()
    dataset = SourceDataset.objects.get(name=DEMO_DATASET_NAME)
    assert dataset.rows == 7874
    # Signed off, so the scientist can file a request as soon as `make run` prints the logins.
    assert dataset.status == "ready"
    # With the study's outcome declared, so the train-on-synthetic test predicts death, not mgus.
    signed = dataset.classification_versions.get(number=dataset.classification_version)
    assert [c["name"] for c in signed.columns if c["outcome"]] == ["death"]


def test_seed_demo_refuses_to_run_in_production(settings: object) -> None:
    settings.IS_PRODUCTION = True  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="refused in production"):
        call_command("seed_demo")


@pytest.mark.parametrize(
    ("environment", "var_dir", "expected"),
    [
        ("test", "/tmp/sg-xdist", "/tmp/sg-xdist/gw7"),  # an xdist process: a folder of its own
        ("test", "/tmp/sg-xdist/gw7", "/tmp/sg-xdist/gw7"),  # its worker subprocess: the same, not nested
        ("development", "/tmp/sg-xdist", "/tmp/sg-xdist"),  # outside tests the variable means nothing
    ],
)
def test_each_pytest_xdist_process_has_its_own_var_folder(
    environment: str, var_dir: str, expected: str
) -> None:
    """make test runs the SQLite stage in two pytest-xdist processes: each must keep its SQLite files,
    broker folders and stored files apart, and the worker processes it starts must find the same."""
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("SYNTHGATE_", "DJANGO_", "DATABASE_URL"))
        },
        "SYNTHGATE_ENV": environment,
        "SYNTHGATE_VAR_DIR": var_dir,
        "PYTEST_XDIST_WORKER": "gw7",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    code = (
        "import os; from django.conf import settings; "
        "print(settings.VAR_DIR, settings.SYNTHGATE_STORAGE_DIR, os.environ['SYNTHGATE_VAR_DIR'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [expected, f"{expected}/storage", expected]

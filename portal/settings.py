"""SynthGate settings: one module, differences come from the environment.

`SYNTHGATE_ENV` is `development` (default for `make run`), `test` or `production`.
Production refuses to start with a missing secret, debug on, or insecure cookies.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Environment variable {name} is required; set it and restart.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from exc


ENVIRONMENT = env_str("SYNTHGATE_ENV", "development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"SYNTHGATE_ENV={ENVIRONMENT!r}; use development, test or production.")
IS_PRODUCTION = ENVIRONMENT == "production"

# Everything the embedded install writes (SQLite, broker folders, stored files) lives here.
VAR_DIR = Path(env_str("SYNTHGATE_VAR_DIR", str(BASE_DIR / "var")))
# Under pytest-xdist each test process gets a folder of its own (SQLite, broker folders, stored
# files), as pytest-django gives each its own test database. Exported so the worker, gunicorn and
# manage.py subprocesses a test starts resolve the same folder (the check keeps them from nesting).
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if ENVIRONMENT == "test" and _XDIST_WORKER and VAR_DIR.name != _XDIST_WORKER:
    VAR_DIR = VAR_DIR / _XDIST_WORKER
    os.environ["SYNTHGATE_VAR_DIR"] = str(VAR_DIR)


def _development_secret() -> str:
    """A per-checkout random key, so development never ships a shared default secret."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if IS_PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters.")
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _development_secret()

DEBUG = env_bool("DJANGO_DEBUG", False)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")

ALLOWED_HOSTS = [
    h.strip()
    for h in env_str(
        "DJANGO_ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1],testserver"
    ).split(",")
    if h.strip()
]
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required in production.")
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "core",
    "notifications",
    "audit",
    "generation",
    "validation",
    "approvals",
    "catalog",
    "federation",
    "portal",
]

MIDDLEWARE = [
    # Outermost: drops DRF's view <-> response references once a response is sent (core.middleware).
    "core.middleware.FreeApiResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below whitenoise, so static files stay cacheable; everything else is `no-store`.
    "portal.middleware.NoStoreMiddleware",
    "audit.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Writes one `denied` audit row per refused request (404/403/409) of a signed-in user.
    "audit.middleware.RefusalAuditMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.middleware.SessionLifetimeMiddleware",
    "portal.middleware.PortalLoginRequiredMiddleware",
    "portal.middleware.MfaRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the lockout flag the authentication backend set during the view.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        # Django's engine; each render's context is taken apart afterwards (core/templates.py).
        "BACKEND": "core.templates.FreedContextTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.context.unread",
                "catalog.access_views.pending_access_requests",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# No DATABASE_URL: SQLite under var/. IMMEDIATE transactions make SQLite take its write lock
# when a transaction starts, so concurrent writers queue instead of failing on lock upgrade.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
_database_url = os.environ.get("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "synthgate.sqlite3"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = dict(_SQLITE_OPTIONS)
    # A file, not :memory:, so a worker subprocess can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_synthgate.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2id first (portal/hashers.py); the PBKDF2 hashers only verify passwords stored before, and
# Django re-hashes each with Argon2id at its owner's next sign-in.
PASSWORD_HASHERS = [
    "portal.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
# ASVS V6.2: at least 12 characters, not a common (breached-list) password, not the username.
# Django's common-password list is the offline breached-password check; querying HIBP would need
# network access from hospital networks, so it is not done.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if ENVIRONMENT != "production"
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Served by whitenoise from the finders when collectstatic has not run (development, tests).
WHITENOISE_USE_FINDERS = not IS_PRODUCTION

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Bound to the exact host, and never readable by scripts.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- Authentication, sessions, tokens (ASVS V6, V7) ------------------------------------------
# Idle timeout: the cookie and the stored session expire this long after the last request
# (every request extends it). The absolute lifetime since sign-in is enforced by
# portal.middleware.SessionLifetimeMiddleware, whatever the activity.
SYNTHGATE_SESSION_IDLE_MINUTES = env_int("SYNTHGATE_SESSION_IDLE_MINUTES", 30)
SYNTHGATE_SESSION_ABSOLUTE_HOURS = env_int("SYNTHGATE_SESSION_ABSOLUTE_HOURS", 8)
if SYNTHGATE_SESSION_IDLE_MINUTES < 1 or SYNTHGATE_SESSION_ABSOLUTE_HOURS < 1:
    raise ImproperlyConfigured(
        "SYNTHGATE_SESSION_IDLE_MINUTES and SYNTHGATE_SESSION_ABSOLUTE_HOURS must be at least 1."
    )
SESSION_COOKIE_AGE = SYNTHGATE_SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# API tokens are stored as SHA-256 hashes and expire this many hours after they are issued.
SYNTHGATE_API_TOKEN_HOURS = env_int("SYNTHGATE_API_TOKEN_HOURS", 24)
if SYNTHGATE_API_TOKEN_HOURS < 1:
    raise ImproperlyConfigured("SYNTHGATE_API_TOKEN_HOURS must be at least 1.")
# A second factor (TOTP) for privacy officers, stewards, auditors and admins in the browser, and
# for every API sign-in of a user who has one. Tests turn it off by default (conftest.py) and on
# where they test it; there is no environment switch, so no deployment can turn it off.
SYNTHGATE_MFA_REQUIRED = True
OTP_TOTP_ISSUER = "SynthGate"
SYNTHGATE_RECOVERY_CODES = 10

AUTHENTICATION_BACKENDS = [
    # First: refuses locked-out accounts and addresses before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Client addresses: X-Forwarded-For is believed only for the number of proxies the deployment
# declares (0 by default: the TCP peer is the client). DRF's throttles read the same number.
SYNTHGATE_TRUSTED_PROXIES = env_int("SYNTHGATE_TRUSTED_PROXIES", 0)
if SYNTHGATE_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("SYNTHGATE_TRUSTED_PROXIES must be 0 or more.")
# Lockout (django-axes, in the database so every web process counts together): an account is
# locked after SYNTHGATE_LOCKOUT_FAILURES failed sign-ins from anywhere, and a client address
# after SYNTHGATE_LOCKOUT_ADDRESS_FAILURES over any accounts (higher: staff share NAT addresses),
# each for SYNTHGATE_LOCKOUT_MINUTES since the last counted failure.
AXES_ENABLED = True
# axes' database handler, with the two limits (portal/auth_lockout.py).
AXES_HANDLER = "portal.auth_lockout.PortalAxesHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env_int("SYNTHGATE_LOCKOUT_FAILURES", 10)
SYNTHGATE_LOCKOUT_ADDRESS_FAILURES = env_int("SYNTHGATE_LOCKOUT_ADDRESS_FAILURES", 50)
AXES_COOLOFF_TIME = env_int("SYNTHGATE_LOCKOUT_MINUTES", 15) / 60
if (
    AXES_FAILURE_LIMIT < 1
    or SYNTHGATE_LOCKOUT_ADDRESS_FAILURES < AXES_FAILURE_LIMIT
    or AXES_COOLOFF_TIME <= 0
):
    raise ImproperlyConfigured(
        "SYNTHGATE_LOCKOUT_FAILURES and SYNTHGATE_LOCKOUT_MINUTES must be at least 1, and "
        "SYNTHGATE_LOCKOUT_ADDRESS_FAILURES at least SYNTHGATE_LOCKOUT_FAILURES."
    )
AXES_CLIENT_IP_CALLABLE = "portal.auth_client.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = False
# Locked-out attempts do not extend the lock (an attacker cannot keep a victim locked forever
# by guessing once a minute past the limit; the cool-off runs from the last counted failure).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Throttle counters (DRF) live in a cache every web process shares: Redis when configured,
# otherwise a database table (created by portal's migration 0002 via createcachetable).
SYNTHGATE_CACHE_URL = os.environ.get("SYNTHGATE_CACHE_URL", "")
if SYNTHGATE_CACHE_URL:
    if not SYNTHGATE_CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("SYNTHGATE_CACHE_URL must be a redis:// or rediss:// URL.")
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": SYNTHGATE_CACHE_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "synthgate_cache",
        }
    }
# Sign-in, sign-out and password pages.
PASSWORD_RESET_TIMEOUT = env_int("SYNTHGATE_PASSWORD_RESET_SECONDS", 3600)

# All scripts and styles come from our own origin; no CDN, no inline script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}

# Uploads: a hard cap, and everything above the memory threshold is streamed to a temp file.
SYNTHGATE_MAX_UPLOAD_BYTES = env_int("SYNTHGATE_MAX_UPLOAD_BYTES", 200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o600
# The first handler enforces the size cap while the upload streams in, before anything is kept.
FILE_UPLOAD_HANDLERS = [
    "generation.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]


# Source files are encrypted at rest with this key (32 bytes, urlsafe base64). Production
# refuses to start without it; development keeps a random per-checkout key under var/.
def _development_data_key() -> str:
    path = VAR_DIR / "data_key"
    if not path.exists():
        import base64

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"))
        path.chmod(0o600)
    return path.read_text().strip()


if IS_PRODUCTION:
    SYNTHGATE_DATA_KEY = env_str("SYNTHGATE_DATA_KEY")
else:
    SYNTHGATE_DATA_KEY = os.environ.get("SYNTHGATE_DATA_KEY") or _development_data_key()
try:
    import base64 as _b64

    if len(_b64.urlsafe_b64decode(SYNTHGATE_DATA_KEY)) != 32:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        "SYNTHGATE_DATA_KEY must be 32 random bytes in urlsafe base64; generate one with "
        'python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
    ) from None


# The audit chain is keyed (HMAC-SHA256) and its checkpoints are signed (Ed25519) with keys that
# live outside the database, so a database administrator can neither recompute the chain nor
# forge a checkpoint. SYNTHGATE_AUDIT_KEY is required in production (32 bytes, urlsafe base64);
# development keeps a random per-checkout key under var/. The signing key is derived from it
# unless SYNTHGATE_AUDIT_SIGNING_KEY (an Ed25519 seed, same format) is set.
def _development_audit_key() -> str:
    path = VAR_DIR / "audit_key"
    if not path.exists():
        import base64

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        try:  # created 0600 from the start; O_EXCL lets two starting processes race safely
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"))
    return path.read_text().strip()


if IS_PRODUCTION:
    SYNTHGATE_AUDIT_KEY = env_str("SYNTHGATE_AUDIT_KEY")
else:
    SYNTHGATE_AUDIT_KEY = os.environ.get("SYNTHGATE_AUDIT_KEY") or _development_audit_key()
SYNTHGATE_AUDIT_SIGNING_KEY = os.environ.get("SYNTHGATE_AUDIT_SIGNING_KEY", "")
import base64 as _b64  # noqa: E402

for _name, _value, _required in (
    ("SYNTHGATE_AUDIT_KEY", SYNTHGATE_AUDIT_KEY, True),
    ("SYNTHGATE_AUDIT_SIGNING_KEY", SYNTHGATE_AUDIT_SIGNING_KEY, False),
):
    try:
        if (_value or _required) and len(_b64.urlsafe_b64decode(_value)) != 32:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(
            f"{_name} must be 32 random bytes in urlsafe base64; generate one with "
            'python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
        ) from None
# Signed checkpoints of the chain head go to an append-only file in this directory; keep it
# where a database administrator cannot write (another host, WORM storage, chattr +a).
SYNTHGATE_AUDIT_CHECKPOINT_DIR = Path(
    env_str("SYNTHGATE_AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints"))
)
SYNTHGATE_AUDIT_CHECKPOINT_EVERY = env_int("SYNTHGATE_AUDIT_CHECKPOINT_EVERY", 100)
SYNTHGATE_AUDIT_CHECKPOINT_SECONDS = env_int("SYNTHGATE_AUDIT_CHECKPOINT_SECONDS", 300)
if SYNTHGATE_AUDIT_CHECKPOINT_EVERY < 1 or SYNTHGATE_AUDIT_CHECKPOINT_SECONDS < 1:
    raise ImproperlyConfigured(
        "SYNTHGATE_AUDIT_CHECKPOINT_EVERY and SYNTHGATE_AUDIT_CHECKPOINT_SECONDS must be at least 1."
    )
# Sequenced audit writes (issue 16 item 3), for scaled PostgreSQL deployments: writers insert events
# pending, without the chain-head lock, and the sequencer links them every second (beat entry
# "audit-sequence" below; maximum merge delay audit.selectors.MAX_MERGE_DELAY, 5 s). Off by default.
SYNTHGATE_AUDIT_SEQUENCER = env_bool("SYNTHGATE_AUDIT_SEQUENCER", False)
if SYNTHGATE_AUDIT_SEQUENCER and "postgresql" not in DATABASES["default"]["ENGINE"]:
    raise ImproperlyConfigured("SYNTHGATE_AUDIT_SEQUENCER needs PostgreSQL (DATABASE_URL).")

SYNTHGATE_MAX_COLUMNS = env_int("SYNTHGATE_MAX_COLUMNS", 500)
# Decoded-size limits for uploaded tables, checked from Parquet metadata or a streamed CSV count
# before pandas builds a frame (generation/uploads.py): rows, cells (rows x columns), text bytes.
SYNTHGATE_MAX_ROWS = env_int("SYNTHGATE_MAX_ROWS", 1_000_000)
SYNTHGATE_MAX_CELLS = env_int("SYNTHGATE_MAX_CELLS", 10_000_000)
SYNTHGATE_MAX_DECODED_BYTES = env_int("SYNTHGATE_MAX_DECODED_BYTES", 512 * 1024 * 1024)
# Longest physical CSV line the intake tokenizes (generation.intake.scan_csv).
SYNTHGATE_MAX_LINE_CHARS = env_int("SYNTHGATE_MAX_LINE_CHARS", 1024 * 1024)
# Nesting depth of JSON request bodies (portal.api.parsers.BoundedJSONParser).
SYNTHGATE_MAX_JSON_DEPTH = env_int("SYNTHGATE_MAX_JSON_DEPTH", 32)
if (
    min(SYNTHGATE_MAX_ROWS, SYNTHGATE_MAX_CELLS, SYNTHGATE_MAX_DECODED_BYTES, SYNTHGATE_MAX_COLUMNS) < 1
    or SYNTHGATE_MAX_JSON_DEPTH < 4
):
    raise ImproperlyConfigured("Upload and JSON limits must be positive (JSON depth at least 4).")
SYNTHGATE_HOLDOUT_SHARE = float(env_str("SYNTHGATE_HOLDOUT_SHARE", "0.2"))
if not 0.05 <= SYNTHGATE_HOLDOUT_SHARE <= 0.5:
    raise ImproperlyConfigured("SYNTHGATE_HOLDOUT_SHARE must be between 0.05 and 0.5.")
SYNTHGATE_SMALL_CELL_K = env_int("SYNTHGATE_SMALL_CELL_K", 5)

# Source datasets and releases are stored here, never under STATIC_ROOT or a served path.
SYNTHGATE_STORAGE_DIR = Path(env_str("SYNTHGATE_STORAGE_DIR", str(VAR_DIR / "storage")))

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.auth_tokens.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],  # DRF's JSONRenderer, encoded by orjson
    "DEFAULT_PARSER_CLASSES": [
        # A JSON body is one object, nested no deeper than SYNTHGATE_MAX_JSON_DEPTH (issue 13, item 7).
        "portal.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"auth": env_str("SYNTHGATE_AUTH_THROTTLE", "30/minute")},
    # X-Forwarded-For is read only behind this many trusted proxies (0: never).
    "NUM_PROXIES": SYNTHGATE_TRUSTED_PROXIES,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SynthGate API",
    "DESCRIPTION": "Governed, privacy-preserving synthetic health data.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets share the field name `decision`: name them, so the schema is stable.
    "ENUM_NAME_OVERRIDES": {
        "ReviewDecisionEnum": "approvals.choices.DecisionKind",
        "RetryDecisionEnum": [("approve", "Approve"), ("refuse", "Refuse")],
        "RequestKindEnum": "approvals.choices.RequestKind",
        "ReleaseKindEnum": "catalog.models.ReleaseKind",
    },
    # Every operation documents the JSON error shape for its 4xx answers (tests/test_api_fuzz.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.errors.document_error_responses",
    ],
}

# --- Celery ---------------------------------------------------------------------------------
# No CELERY_BROKER_URL: kombu's filesystem transport, which needs no server yet delivers
# tasks across processes to a real `celery worker`. Redis in production.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
_broker_dir = Path(env_str("SYNTHGATE_BROKER_DIR", str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # How often an idle worker looks for a message (kombu's default is 1 s, which a worker
        # finishing a job waits on average half of before its next one).
        "polling_interval": float(env_str("SYNTHGATE_BROKER_POLL_SECONDS", "0.2")),
    }
else:
    # Longer than the hard time limit, so Redis never redelivers a task that is still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("SYNTHGATE_TASK_HARD_LIMIT", 3600) + 600,
    }
# The database holds job state; no result backend is needed.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("SYNTHGATE_TASK_SOFT_LIMIT", 3300)
CELERY_TASK_TIME_LIMIT = env_int("SYNTHGATE_TASK_HARD_LIMIT", 3600)
CELERY_TASK_DEFAULT_QUEUE = "synthesis"
# Three queues, so each kind of work can get its own worker processes (docs/deploy.md, scale-out):
# synthesis (the pipeline: fit, sample, validate, publish; CPU-bound, minutes), validation (the
# pre-release risk and domain estimates on a source; seconds to minutes) and housekeeping (periodic
# tasks: reconcile, audit checkpoints and verification, expiry notices; short, and never stuck
# behind a long synthesis). One worker consuming all three (the default) is the embedded install.
SYNTHGATE_QUEUES = ("synthesis", "validation", "housekeeping")
CELERY_TASK_ROUTES = {
    "synthgate.pipeline.run": {"queue": "synthesis"},
    "synthgate.federation.run_study": {"queue": "synthesis"},
    "synthgate.datasets.estimate_risk": {"queue": "validation"},
    "synthgate.datasets.estimate_domain": {"queue": "validation"},
    "synthgate.jobs.reconcile": {"queue": "housekeeping"},
    "synthgate.releases.expiry_notices": {"queue": "housekeeping"},
    "synthgate.federation.reconcile": {"queue": "housekeeping"},
    "synthgate.db.analyze": {"queue": "housekeeping"},
    # Checkpoints, verification and any later audit task: all periodic bookkeeping.
    "synthgate.audit.*": {"queue": "housekeeping"},
}
# Each worker process imports SDV/torch/anonymeter and compiles the numba kernels on a made-up
# 50-row table before it takes a job (validation.warmup), so a worker's first job costs what its
# later ones do. Off in tests (a test turns it on), where each worker would pay ~10-40 s for it.
SYNTHGATE_WORKER_WARMUP = env_bool("SYNTHGATE_WORKER_WARMUP", ENVIRONMENT != "test")
# A pool process reports itself up only after warming up; Celery kills one silent for longer than
# this (default 4 s), so allow for a cold start on a busy machine (the warm-up takes 5-40 s).
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 240.0 if SYNTHGATE_WORKER_WARMUP else 4.0
# Intra-op threads (torch, BLAS, OpenMP, numba) per worker process; 0 = the cores divided by the
# worker's concurrency. Set 1 when several single-process workers share a machine (core.threads).
SYNTHGATE_WORKER_THREADS = env_int("SYNTHGATE_WORKER_THREADS", 0)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
SYNTHGATE_JOB_LEASE_SECONDS = env_int("SYNTHGATE_JOB_LEASE_SECONDS", 300)
SYNTHGATE_STALE_QUEUED_SECONDS = env_int("SYNTHGATE_STALE_QUEUED_SECONDS", 900)
SYNTHGATE_RECONCILE_SECONDS = env_int("SYNTHGATE_RECONCILE_SECONDS", 60)
# One beat process (or `worker -B` on a single machine) sends this; any worker runs it.
CELERY_BEAT_SCHEDULE = {
    "reconcile-jobs": {"task": "synthgate.jobs.reconcile", "schedule": float(SYNTHGATE_RECONCILE_SECONDS)},
    # Signed audit checkpoints outside the database, also when fewer than N events were written.
    "audit-checkpoint": {
        "task": "synthgate.audit.checkpoint",
        "schedule": float(SYNTHGATE_AUDIT_CHECKPOINT_SECONDS),
    },
    # Chain verification recorded for the audit pages (audit.tasks.verify_audit_chain): incremental
    # every 15 minutes, full once a day; a task-level lock keeps two beats from running it twice.
    "audit-verify": {"task": "synthgate.audit.verify", "schedule": 900.0},
    # Release and grant expiry notices (catalog.tasks.notify_expiring): hourly is plenty, each notice
    # goes out once (its dedup key), and the task holds a lock so two beats do not both send.
    "release-expiry-notices": {"task": "synthgate.releases.expiry_notices", "schedule": 3600.0},
    # Fails federated studies whose run lease lapsed (worker died) and settles their sites' ledgers.
    "reconcile-studies": {"task": "synthgate.federation.reconcile", "schedule": 300.0},
    # The query planner's statistics (core.tasks, core.dbstats): SQLite has none until ANALYZE runs.
    "db-analyze": {"task": "synthgate.db.analyze", "schedule": 3600.0},
}
# SQLite tables whose statistics are sampled rather than read in full (core.dbstats): the audit log
# alone grows to millions of rows; every other table is analyzed exactly.
SYNTHGATE_ANALYZE_SAMPLED_TABLES = ("audit_auditevent",)
if SYNTHGATE_AUDIT_SEQUENCER:
    # Links pending audit events into the chain (audit.tasks.sequence_audit_chain), every second.
    CELERY_BEAT_SCHEDULE["audit-sequence"] = {"task": "synthgate.audit.sequence", "schedule": 1.0}
# How many days before a release or an access grant expires its users are told.
SYNTHGATE_EXPIRY_NOTICE_DAYS = env_int("SYNTHGATE_EXPIRY_NOTICE_DAYS", 7)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Email (reviewer notifications) ----------------------------------------------------------
# Development and the demo write e-mails to the console (`make run`'s output); production defaults
# to SMTP, so a deployment never silently prints people's notifications to its logs.
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if IS_PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "synthgate@localhost")
# Used when DJANGO_EMAIL_BACKEND is django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("DJANGO_EMAIL_TIMEOUT", 10)
# Makes the links in notification emails absolute (e.g. https://synthgate.example.org).
SYNTHGATE_BASE_URL = env_str("SYNTHGATE_BASE_URL", "")

# --- Logging --------------------------------------------------------------------------------
# Log lines carry ids and column names only; services never log data values.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("SYNTHGATE_LOG_LEVEL", "INFO")},
    # Third-party libraries log at INFO with table details; keep them to warnings.
    "loggers": {
        name: {"level": "WARNING"}
        for name in (
            "django.db.backends",
            "sdv",
            "rdt",
            "copulas",
            "SingleTableSynthesizer",
            "MultiTableSynthesizer",
            "sdmetrics",
            "numba",
        )
    },
}

"""Settings for promo-pools, read from the environment.

With no environment at all the project runs on its zero-setup default: DEBUG on, a SQLite file in
the project folder, a Celery broker kept in files under ``var/`` (no Redis needed) and e-mail
printed to the console. Production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DATABASE_URL
(PostgreSQL), CELERY_BROKER_URL (Redis) and the EMAIL_* variables.

Long because Django reads one settings module, and each setting here stands next to the reason
for its value.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import structlog
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PROMO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean; refuse a value that is not one of the known words.

    A typo must not silently turn a setting off (DJANGO_SECURE_COOKIES=ture).
    """
    true, false = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in true or value in false:
        return value in true
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r} is not a boolean: use one of "
        f"{', '.join(true)} or {', '.join(false)}."
    )


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer; refuse, naming the variable, one that is not."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not a whole number.") from None


def env_float(name: str, default: float) -> float:
    """Return the variable as a number; refuse, naming the variable, one that is not."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not a number.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "django-insecure-zero-setup-default-only-for-local-use"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# Absolute links in e-mails point here.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # WhiteNoise serves static files under runserver too, so `make run` is as fast as production.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "import_export",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "axes",
    "health_check",
    "django_structlog",
    "pools",
    "imports",
    "notifications",
]

MIDDLEWARE = [
    # /healthz and /readyz, answered before anything that could refuse a probe (pools/health.py).
    "pools.health.ProbeMiddleware",
    "pools.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight after security, before sessions or the database are touched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Each staff member's language: the admin's chooser (a cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    # The HTTP API answers in English whatever the caller's language.
    "pools.api_base.ApiSpeaksEnglish",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "notifications.languages.RememberLanguageMiddleware",
    # Binds the request id (and user) to every line logged while the request is answered.
    "django_structlog.middlewares.RequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "promo_project.urls"
WSGI_APPLICATION = "promo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
# A worker's database sessions notice a dead peer within about a minute, both ways: libpq's
# keepalives on the worker's side; on the server's side the same keepalives for the session
# (a worker cut off by the network is otherwise noticed after the kernel's two hours), and an
# idle transaction ended after a minute (its locks would hold the import's next batch).
# Applied to the worker's connections when it starts (promo_project/celery.py).
DATABASE_DEAD_PEER_SECONDS = env_int("DATABASE_DEAD_PEER_SECONDS", 30)
WORKER_DATABASE_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": max(1, DATABASE_DEAD_PEER_SECONDS // 3),
    "keepalives_interval": max(1, DATABASE_DEAD_PEER_SECONDS // 6),
    "keepalives_count": 3,
    "tcp_user_timeout": DATABASE_DEAD_PEER_SECONDS * 1000,
    "options": " ".join(
        f"-c {name}={value}"
        for name, value in {
            "tcp_keepalives_idle": max(1, DATABASE_DEAD_PEER_SECONDS // 3),
            "tcp_keepalives_interval": max(1, DATABASE_DEAD_PEER_SECONDS // 6),
            "tcp_keepalives_count": 3,
            "tcp_user_timeout": DATABASE_DEAD_PEER_SECONDS * 1000,
            "idle_in_transaction_session_timeout": 2 * DATABASE_DEAD_PEER_SECONDS * 1000,
        }.items()
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for the worker's write lock instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# English, and Russian (the home market of the product this one follows). Every string a manager
# reads goes through Django's translation machinery; the catalogue is locale/ru (`make messages`).
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One format per language for dates and numbers on every screen and e-mail:
# promo_project/formats/<language>/formats.py (thousands separators everywhere; templates write raw
# numbers into attributes with |unlocalize).
FORMAT_MODULE_PATH = ["promo_project.formats"]
USE_THOUSAND_SEPARATOR = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Static files through WhiteNoise in every mode. With DEBUG off (after `collectstatic`) each file
# gets a content hash in its name, a gzip and a Brotli copy, and a cache lifetime of ten years,
# so a page's second load asks for none of them. With DEBUG on (`make run`) files come straight
# from the apps' folders, unhashed, as edited.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# The cache holds the API's rate-limit counters: Redis when several processes serve the API.
CACHE_URL = os.environ.get("CACHE_URL", "")
# A Redis that does not answer within CACHE_TIMEOUT seconds counts as down: the API then goes on
# without it (pools/shared_cache.py) instead of waiting.
CACHE_TIMEOUT = float(os.environ.get("CACHE_TIMEOUT") or 0.5)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "OPTIONS": {"socket_connect_timeout": CACHE_TIMEOUT, "socket_timeout": CACHE_TIMEOUT},
    }
    if CACHE_URL.startswith("redis")
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Per process, for what must cost no round trip: API keys already checked; and the rate
    # limits' counters while the shared cache is unreachable (room for that many).
    "local": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "local",
        "OPTIONS": {"MAX_ENTRIES": 50_000},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    # A valid key, then its scope: the operations it may call (pools/api_keys.py).
    "DEFAULT_PERMISSION_CLASSES": [
        "pools.api_base.HasValidAPIKey",
        "pools.api_base.KeyMayCall",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["pools.api_base.JSONBodyParser"],
    "EXCEPTION_HANDLER": "pools.api_base.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Guessing codes is the attack the source document warns of: checks and redemptions are
    # limited per API key and per customer.
    "DEFAULT_THROTTLE_RATES": {
        "api_key": os.environ.get("API_RATE_PER_KEY", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "promo-pools API",
    "DESCRIPTION": "Issue codes to customers, mark codes as issued, check and redeem codes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Callers send an API key; a 429 carries Retry-After (every answer documented).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pools.api_base.schema_retry_after",
    ],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "“Api-Key <key>”, a key staff create in the admin.",
            }
        }
    },
    "SECURITY": [{"ApiKey": []}],
}

# --- Guessing and abuse limits of the API (pools/guessing.py, docs/http-api.md) ---
# Requests per customer id (stripped as the services strip it), whichever key asks.
API_RATE_PER_CUSTOMER = os.environ.get("API_RATE_PER_CUSTOMER", "30/min")
# Answers of `unknown_code` (failed guesses) per clock hour, per API key and per pool.
API_FAILED_CHECKS_PER_KEY = int(os.environ.get("API_FAILED_CHECKS_PER_KEY") or 500)
API_FAILED_CHECKS_PER_POOL = int(os.environ.get("API_FAILED_CHECKS_PER_POOL") or 1000)
# Issuing (pools/issuing_limits.py): codes per API key, and per customer per pool whichever
# key asks (a batch counts each customer). A mailing of millions goes through an assignment in
# the admin, which is not counted; a pool's own daily cap is set on its page.
API_ISSUE_RATE_PER_KEY = os.environ.get("API_ISSUE_RATE_PER_KEY", "10000/min")
API_ISSUE_RATE_PER_CUSTOMER = os.environ.get("API_ISSUE_RATE_PER_CUSTOMER", "10/h")
# --- end of the API's limits ---

# Celery: imports and notifications run in workers. Redis in production; without it, a broker kept
# in plain files so that `make run` still drives a real worker process with no other service.
# (The host name means nothing to the file broker; naming one keeps kombu from warning.)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery-broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange bindings; kombu's default is a `control` folder in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Redelivery of an unacknowledged task waits this long; keep it above the longest import.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A task is acknowledged only after it finished, and given back if its worker died, so that a
# killed worker's import is redelivered; each worker takes one task at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Progress and outcome live on the job rows; the result backend is not used.
CELERY_TASK_IGNORE_RESULT = True

CELERY_BEAT_SCHEDULE = {
    # The beat and the worker that runs it are seen by /readyz (pools/health.py).
    "service-heartbeat": {
        "task": "pools.tasks.service_heartbeat",
        "schedule": float(env_int("HEARTBEAT_SECONDS", 30)),
    },
    # Every kind of job (pools/jobs.py): those whose worker died are queued again, those whose
    # task the broker lost (or never took: it was down) are handed over again.
    "jobs-recover": {
        "task": "pools.tasks.jobs_recover",
        "schedule": float(env_int("JOB_RECOVERY_SECONDS", 60)),
    },
    # Expire codes past their dates (each pool they leave short is checked for alerts).
    "codes-expire": {
        "task": "pools.tasks.codes_expire",
        "schedule": float(env_int("EXPIRY_SECONDS", 300)),
    },
    # Outbox: import notices and alerts whose queueing failed (the broker was down).
    "notifications-send-due": {
        "task": "notifications.tasks.notifications_send_due",
        "schedule": float(env_int("NOTICE_RETRY_SECONDS", 60)),
    },
    # Deletes export files kept past EXPORT_KEEP_HOURS.
    "code-exports-clean": {
        "task": "pools.tasks.code_exports_clean",
        "schedule": float(env_int("EXPORT_CLEAN_SECONDS", 600)),
    },
    # Safety net for low-stock alerts: checks every pool that alerts or may re-arm.
    "pools-check-stock": {
        "task": "notifications.tasks.pools_check_stock",
        "schedule": float(env_int("STOCK_CHECK_SECONDS", 300)),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# /metrics (pools/metrics.py): a bearer token, or the client's address within these networks.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
# Counters every process of a host shares (prometheus_client's multiprocess mode reads this
# variable when it is first imported, after these settings). Empty it when the host's processes
# start (docs/operations.md).
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics")
)
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# /readyz turns red when no worker ran the heartbeat, or the beat sent none, for this long.
READY_WORKER_SECONDS = env_int("READY_WORKER_SECONDS", 120)
READY_BEAT_SECONDS = env_int("READY_BEAT_SECONDS", 120)

# Uploads. Every upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE (Django's 2.5 MB) streams to a
# temporary file; pools.uploads.UploadHandler stores no more than IMPORT_MAX_FILE_SIZE of it, and
# the form refuses a larger file with its size (pools.uploads.UploadField).
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "pools.uploads.UploadHandler",
]
# Imports. Uploads larger than IMPORT_MAX_FILE_SIZE are refused before they are stored.
IMPORT_MAX_FILE_SIZE = env_int("IMPORT_MAX_FILE_SIZE", 500 * 1024 * 1024)
# An XLSX is a zip: refuse one that would unpack to more than this, or that unpacks to more
# than IMPORT_MAX_XLSX_RATIO times its size (a zip bomb). 256 MB of XML is about 2 million rows
# of five columns, more than any real file of codes or customers; and what reading a sheet
# costs follows its unpacked XML (calamine, used in the request for small workbooks, held about
# 1.5 to 3 times it), so a limit of 2 GB let a 5 MB file take seconds and gigabytes.
IMPORT_MAX_XLSX_UNPACKED = env_int("IMPORT_MAX_XLSX_UNPACKED", 256 * 1024 * 1024)
IMPORT_MAX_XLSX_RATIO = env_int("IMPORT_MAX_XLSX_RATIO", 100)
# A batch is one transaction; see imports/services.py for what one costs.
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 20000)
# Customers an assignment issues to per batch: one claim statement and one transaction with the
# job's counts (5,000: about 0.15 s on PostgreSQL here, so progress moves several times a second).
ASSIGN_BATCH_SIZE = env_int("ASSIGN_BATCH_SIZE", 5000)
# Connections an assignment issues on (PostgreSQL, single-use codes): with two, a slice's
# statements run while the one before it commits, on the database's other core.
ASSIGN_CONNECTIONS = env_int("ASSIGN_CONNECTIONS", 2)
# Jobs (pools/jobs.py: imports, assignments, withdrawals, undos; exports have their own timeout).
# A running job whose heartbeat is older than this has lost its worker and is taken over.
JOB_HEARTBEAT_TIMEOUT = env_int("JOB_HEARTBEAT_TIMEOUT", 60)
# A job whose worker died this many times fails, with a message saying so (it can be run again).
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
# A task that finds its pool busy with another import tries again after this many seconds.
IMPORT_BUSY_RETRY = env_int("IMPORT_BUSY_RETRY", 10)
# A queued job that no task took or touched for this long lost its task (a broker restarted
# without persistence, or down when the job was queued): it is handed over again, at most once
# per this interval.
JOB_QUEUED_TIMEOUT = env_int("JOB_QUEUED_TIMEOUT", 300)
# A batch that waits longer than this on a lock (a cut-off worker's open transaction) gives
# its attempt back and tries again later; below JOB_HEARTBEAT_TIMEOUT, so that the waiting
# worker is not itself taken for lost.
IMPORT_LOCK_TIMEOUT = env_int("IMPORT_LOCK_TIMEOUT", 20)
# The upload request parses a workbook up to this size to check its Code column at once;
# larger ones are checked as containers there and read fully by the worker. Parsing holds the
# sheet: a 7 MB XLSX of 400,000 rows of five columns took 1.8 s here.
IMPORT_SNIFF_MAX_WORKBOOK = env_int("IMPORT_SNIFF_MAX_WORKBOOK", 8 * 1024 * 1024)
# ... and only if it unpacks to no more than this (inspection.sheets_loadable): parsing holds
# what the sheet unpacks to, whatever the file's size (a 5.3 MB XLSX of 404 MB of XML held
# 1.17 GB for 25 s in the request before this limit). A sheet of 64 MB of XML (460,000 rows)
# held about 90 MB here.
IMPORT_SNIFF_MAX_UNPACKED = env_int("IMPORT_SNIFF_MAX_UNPACKED", 64 * 1024 * 1024)
# "Check the file" reads at most this many rows, or for this many seconds, while the manager
# waits, and says the counts are of those: one import batch's worth, which a CSV gives in a
# fraction of a second.
IMPORT_PREVIEW_ROWS = env_int("IMPORT_PREVIEW_ROWS", 20_000)
IMPORT_PREVIEW_SECONDS = env_float("IMPORT_PREVIEW_SECONDS", 2.0)
# Codes a withdrawal looks up, locks and withdraws per transaction, and codes an undo of an
# import removes per transaction: short enough that issuing from the pool never waits long
# behind them (a 10,000-row delete holds its locks for a fraction of a second).
WITHDRAW_SLICE = env_int("WITHDRAW_SLICE", 5_000)
UNDO_SLICE = env_int("UNDO_SLICE", 10_000)
# A file of codes to withdraw is stored by the request and read by the worker, which holds its
# codes once and keeps them on the withdrawal's row (the resume reads them there): the limit
# bounds both. Read a chunk at a time, a 20 MB list of 1.9 million codes took +190 MB here.
WITHDRAW_MAX_LIST_SIZE = env_int("WITHDRAW_MAX_LIST_SIZE", 20 * 1024 * 1024)
# Exports (pools/export_services.py). A chunk is one COPY and one commit of progress; a job killed
# mid-way resumes after its last committed chunk. 1,000,000 rows of CSV took ~1.3 s here.
EXPORT_CHUNK_ROWS = env_int("EXPORT_CHUNK_ROWS", 1_000_000)
# A running export whose heartbeat is older than this has lost its worker and is run again.
EXPORT_HEARTBEAT_TIMEOUT = env_int("EXPORT_HEARTBEAT_TIMEOUT", 300)
# Export files are deleted this long after they were written.
EXPORT_KEEP_HOURS = env_int("EXPORT_KEEP_HOURS", 72)
# Pasted lists arrive as form fields, which Django caps at 2.5 MB by default.
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024

EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "promo-pools@localhost")
# An import notice or alert not sent this many seconds after it was due is queued again by the
# beat task (the broker was down when it was due), for up to NOTICE_WINDOW_HOURS.
NOTICE_RETRY_SECONDS = env_int("NOTICE_RETRY_SECONDS", 60)
NOTICE_WINDOW_HOURS = env_int("NOTICE_WINDOW_HOURS", 24)

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)

# --- HTTPS, security headers and admin login limits (docs/settings-and-production.md) ---
# Each is off by default, so that `make run` works on plain http://127.0.0.1:8000; production
# behind HTTPS turns them on from the environment. `manage.py check --deploy` is clean with all
# of them set (tests/test_production_settings.py).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a proxy that ends TLS: the header it sets on HTTPS requests, e.g.
# "X-Forwarded-Proto: https". Set it only if the proxy always sets or strips that header.
_proxy_ssl_header = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "")
if _proxy_ssl_header:
    _name, _, _value = _proxy_ssl_header.partition(":")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())

# Content-Security-Policy, on everywhere (the admin works under it: the browser tests fail on a
# violation). django-csp rather than a middleware of our own: Django 5.2 has none built in
# (6.0 adds one), and django-csp is the maintained one, with report-only mode and nonces.
# DJANGO_CSP_REPORT_ONLY=1 reports violations instead of blocking them (to try a change).
_csp = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
if os.environ.get("DJANGO_CSP_REPORT_URI"):
    _csp["DIRECTIVES"]["report-uri"] = [os.environ["DJANGO_CSP_REPORT_URI"]]
if env_bool("DJANGO_CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _csp
else:
    CONTENT_SECURITY_POLICY = _csp

# Admin logins: after LOGIN_FAILURE_LIMIT failed attempts on one account (from anywhere), or
# from one address (on any accounts), further attempts are refused for LOGIN_COOLOFF_MINUTES,
# counted again from each attempt made meanwhile. Attempts are kept in PostgreSQL (not the
# cache, so that a Redis outage does not lift the limit); `manage.py axes_reset` unlocks.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT") or 5)
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_COOLOFF_MINUTES") or 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_TEMPLATE = "admin/login_locked.html"
# Behind N proxies, the client's address is the N-th from the right of X-Forwarded-For; without
# proxies it is the connection's (REMOTE_ADDR), which a client cannot forge.
if os.environ.get("DJANGO_PROXY_COUNT"):
    AXES_IPWARE_PROXY_COUNT = int(os.environ["DJANGO_PROXY_COUNT"])
    AXES_IPWARE_PROXY_ORDER = "right-most"
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
# --- end of HTTPS, security headers and login limits ---

# Logs (docs/operations.md): plain text lines by default; LOG_FORMAT=json writes one JSON object
# per line, for a log collector. Either way every line logged while a request is answered carries
# its request id, and so do the lines of the tasks it queues (django-structlog passes it in the
# task's headers). The id is made here for each request (an X-Request-ID header from outside is
# not trusted: anyone could send one).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
_LOG_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *_LOG_CHAIN,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    cache_logger_on_first_use=True,
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str)
                if LOG_FORMAT == "json"
                else structlog.dev.ConsoleRenderer(colors=False),
            ],
            # Lines from the standard library's loggers (Django's, Celery's, ours) get the same.
            "foreign_pre_chain": [*_LOG_CHAIN, structlog.stdlib.ExtraAdder()],
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's errors once, in this format (its default handler would print them again, plain).
    "loggers": {"django": {"handlers": ["console"], "propagate": False}},
}
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# A request's first line only when asked (LOG_LEVEL=DEBUG): its last, with the status, suffices.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG

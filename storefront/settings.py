"""Settings for the demo shop, read from the environment with safe defaults.

With nothing set this is the embedded default: SQLite and media under ./var,
Celery on kombu's filesystem transport (no broker to install). Production and
CI set DATABASE_URL, CELERY_BROKER_URL and friends; see the README's table.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

from stylerec.conf import BEAT_SCHEDULE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STOREFRONT_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key kept in var/ so sessions survive restarts."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "styletransfer",
    "stylerec",
    "storefront",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "stylerec.tracking.TrackingMiddleware",
]

ROOT_URLCONF = "storefront.urls"
WSGI_APPLICATION = "storefront.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "storefront.context_processors.shop",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker) share the file: wait for locks instead of failing.
    # IMMEDIATE takes the write lock when a transaction begins, so one that reads first and
    # writes later waits its turn (a deferred one fails at once once another write commits).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif os.environ.get("DATABASE_PREPARED_STATEMENTS", "1") == "1":
    # Lets stylerec's decision log prepare its INSERT (Django's ORM queries are sent with
    # client-side parameters and are never prepared). Set
    # DATABASE_PREPARED_STATEMENTS=0 behind a pooler that cannot hold them (PgBouncer < 1.21).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if cache_url := os.environ.get("CACHE_URL"):
    REDIS_CACHE = "storefront.redis_cache.SharedClientRedisCache"
    CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": cache_url}}
else:
    # Files under var/, not process memory: the web process must see what the worker changes
    # (renditions turning ready, new fits), and the demo runs them as separate processes.
    CACHES = {
        "default": {
            "BACKEND": "storefront.file_cache.FileCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

SESSION_ENGINE = "django.contrib.sessions.backends.db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one
# Serve app static files straight from the apps, so the demo needs no collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# The demo serves uploaded and rendered files itself; behind a real web server turn this off.
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)
# Refuse request bodies (uploads, event batches) larger than this.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024))

LOGIN_URL = "admin:login"

# --- Celery: tasks take ids, messages are JSON, renders go to the "render" queue.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = VAR_DIR / "queue"
    for _sub in ("out", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Render workers take one job at a time: a render is long, and a prefetched job would wait
# behind it instead of going to an idle GPU.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
if CELERY_BROKER_URL.startswith("redis"):
    # An unacknowledged job (its worker died) is delivered again after this many seconds;
    # longer than the longest render, so a slow render is never handed out twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
    }
CELERY_BEAT_SCHEDULE = {
    **BEAT_SCHEDULE,  # the apps' sweeps and refits, as the README gives them
    "stylerec-fit": {"task": "stylerec.fit", "schedule": float(os.environ.get("FIT_EVERY", 3600))},
}
CELERY_TIMEZONE = TIME_ZONE

# The apps carry their own rate limits and schema; the demo only lets the environment raise a
# scope's limit (bench/ does) the way any shop would, through REST_FRAMEWORK.
_throttle_rates = {
    scope: rate
    for scope in ("events", "catalog", "shoppers", "staff")
    if (rate := os.environ.get(f"THROTTLE_{scope.upper()}"))
}
if _throttle_rates:
    REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": _throttle_rates}

# --- The two apps, configured the way any shop would.
STYLETRANSFER = {
    "PRODUCT_MODEL": "storefront.Product",
    "PRODUCT_IMAGE_FIELD": "image",
    # The demo's seven styles are the decoder's own training paintings, and on a CPU their
    # onboarding would hold the local worker for about an hour before the catalogue renders.
    "ONBOARD_STYLES": env_bool("STYLETRANSFER_ONBOARD_STYLES"),
    # Grid cards are about 260 px and the product page about 520: 512-px renders (the demo
    # styles' size on a CPU), and a 256-px copy of each for the grid.
    "WIDTHS": [256, 512],
}
STYLEREC = {
    "PRODUCT_MODEL": "storefront.Product",
    # What the mobile API shows of a product, and how it filters them.
    "PRODUCT_SERIALIZER": "storefront.api.ProductSerializer",
    "PRODUCT_SEARCH_FIELDS": ["name", "description"],
    "PRODUCT_CATEGORY_LOOKUP": "category__slug",
    "PRODUCT_SELECT_RELATED": ["category"],
    # One shopper in ten sees the original photos only, so the dashboard can show the lift.
    "CONTROL_SHARE": float(os.environ.get("STYLEREC_CONTROL_SHARE", "0.1")),
    "REDRAW_INTERVAL": int(os.environ.get("STYLEREC_REDRAW_INTERVAL", 24 * 3600)),
    "CURRENCY": "USD",  # what the demo's prices are in
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
    if env_bool("DJANGO_SECURE_COOKIES"):
        # A site served over HTTPS: plain HTTP is redirected, and browsers told to stay on
        # HTTPS for DJANGO_HSTS_SECONDS (an hour unless raised once HTTPS is known to hold).
        SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
        SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "3600"))
        # Only for a domain whose every subdomain is HTTPS too; preload lists are for keeps.
        SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS")
        SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD")
    if env_bool("DJANGO_BEHIND_TLS_PROXY"):
        # The proxy terminates TLS and says so; without this the redirect would loop.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

"""Settings for the ops portal, read from the environment.

One module for every deployment. Values come from environment variables parsed strictly by
ops_portal.core.env; with DEBUG off, a missing secret stops start-up with a clear message.
See docs/OPERATIONS.md for the full list.
"""
import base64
import hashlib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from ops_portal.core.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)
from ops_portal.core.proxy import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("OPS_PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", None)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production-0000"

# Keys that encrypt secrets at rest (SSH keys, webhook secrets): comma-separated Fernet keys, the
# first encrypts, all decrypt, so keys rotate by prepending a new one.
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", [])
if not ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS must be set when DEBUG is off (generate one with `python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
        )
    ENCRYPTION_KEYS = [
        base64.urlsafe_b64encode(hashlib.sha256(b"dev-encryption:" + SECRET_KEY.encode()).digest()).decode()
    ]

# The portal's own address, for links in notifications (approval links, job pages).
PORTAL_URL = env_str("PORTAL_URL", "http://127.0.0.1:8000").rstrip("/")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if not DEBUG else ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Served behind TLS (directly or by a proxy that sets X-Forwarded-Proto)?
HTTPS = env_bool("HTTPS", not DEBUG)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "channels",
    "ops_portal.core",
    "ops_portal.accounts",
    "ops_portal.audit",
    "ops_portal.inventory",
    "ops_portal.notifications",
    "ops_portal.monitoring",
    "ops_portal.configs",
    "ops_portal.containers",
    "ops_portal.programs",
    "ops_portal.projects",
    "ops_portal.puppet",
    "ops_portal.playbooks",
    "ops_portal.processes",
    "ops_portal.autoscaling",
    "ops_portal.healing",
    "ops_portal.approvals",
    "ops_portal.jobs",
    "ops_portal.dashboard",
]

MIDDLEWARE = [
    "ops_portal.core.proxy.ProxyHeadersMiddleware",
    "ops_portal.core.middleware.RequestIdMiddleware",
    "ops_portal.core.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "ops_portal.core.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ops_portal.core.middleware.MetricsMiddleware",
]

ROOT_URLCONF = "ops_portal.urls"
WSGI_APPLICATION = "ops_portal.wsgi.application"
ASGI_APPLICATION = "ops_portal.asgi.application"

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
                "ops_portal.dashboard.context_processors.navigation",
            ],
        },
    },
]

# Help texts of form fields are escaped (some are written by users: template parameters' help).
FORM_RENDERER = "ops_portal.core.forms.PortalFormRenderer"

DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"), base_dir=BASE_DIR
    )
}
# The test runner's database name (the suite sets a unique one per run so runs never collide).
if env_str("TEST_DATABASE_NAME", None):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite (the embedded default) cannot enforce "unique, nulls not distinct"; model validation
# still checks it, and PostgreSQL enforces it in the database.
SILENCED_SYSTEM_CHECKS = ["models.W047"]

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Prefix for every Redis key and channel group this deployment owns, so several portals (or a
# test run beside a running portal) can share one Redis.
REDIS_PREFIX = env_str("REDIS_PREFIX", "opsportal")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
        "TIMEOUT": 300,
    }
}

# The channel layer carries live events from web, workers and beat to the websockets of every web
# process. "pubsub" (the default): one Redis PUBLISH per batch, received once by each web process
# and handed to its subscribed sockets there, so a batch costs the same whatever the number of
# watchers. "core": channels-redis' lists, one copy of each batch per subscribed socket, popped one
# at a time by its process (kept for comparison: `bench events`). Either way live delivery is best
# effort: an ordered stream (a job's log) that sees a gap reads it from the database.
CHANNEL_LAYER = env_choice("CHANNEL_LAYER", ("pubsub", "core"), "pubsub")
# A job's output: lines read but not yet stored before the reading threads wait (backpressure: a
# command that prints faster than the portal stores slows down instead of growing the live delay),
# and the most events one flush stores and publishes at once (docs/OPERATIONS.md, "Live output").
JOB_EVENTS_MAX_UNSTORED = env_int("JOB_EVENTS_MAX_UNSTORED", 10000, minimum=100, maximum=1_000_000)
JOB_EVENTS_MAX_BATCH = env_int("JOB_EVENTS_MAX_BATCH", 5000, minimum=100, maximum=50_000)
# With "core", each websocket waits for its next message with a blocking pop of 5 s (channels-redis'
# brpop_timeout); redis-py's default socket timeout is also 5 s, so an idle socket's read timed out
# and the socket was closed with 1011. Reads get a timeout well above the pop, and idle pooled
# connections are checked before use.
CHANNEL_LAYER_SOCKET_TIMEOUT = env_int("CHANNEL_LAYER_SOCKET_TIMEOUT", 30, minimum=10)
_CHANNEL_REDIS = {"address": REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT, "socket_connect_timeout": 5,
                  "socket_keepalive": True, "health_check_interval": 15}
if CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                  "CONFIG": {"hosts": [_CHANNEL_REDIS], "prefix": f"{REDIS_PREFIX}:asgi"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [_CHANNEL_REDIS], "prefix": f"{REDIS_PREFIX}:asgi",
                                             "capacity": 5000, "expiry": 60, "group_expiry": 86400}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Overridable only so the test suite can use a fast hasher; production keeps Django's defaults.
_hashers = env_list("PASSWORD_HASHERS", [])
if _hashers:
    PASSWORD_HASHERS = _hashers
# Every password sign-in (the portal's page, the admin's) goes through the throttled backend.
AUTHENTICATION_BACKENDS = ["ops_portal.accounts.throttle.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"
# Failed sign-ins allowed per user name and per client address in LOGIN_THROTTLE_WINDOW seconds.
LOGIN_THROTTLE_ATTEMPTS = env_int("LOGIN_THROTTLE_ATTEMPTS", 5, minimum=1)
LOGIN_THROTTLE_WINDOW = env_int("LOGIN_THROTTLE_WINDOW", 900, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_MAX_AGE = 3600
# Development (and the test suite, whose runner turns settings.DEBUG off at run time) serves static
# files straight from the finders; production serves STATIC_ROOT, filled by collectstatic.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG

# Request bodies above this size are refused (uploads for deploys have their own limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# Security. Cookies are secure and HSTS is on whenever the portal is served over HTTPS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
# Forwarding headers (X-Forwarded-For/-Proto) count only when the peer is one of these proxies
# (IPs or CIDR ranges); from anyone else they are dropped (ops_portal.core.proxy).
try:
    TRUSTED_PROXIES = parse_networks(env_list("TRUSTED_PROXIES", []))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
if env_str("BEHIND_PROXY", None) is not None:
    raise ImproperlyConfigured("BEHIND_PROXY is gone: list the proxies' addresses in TRUSTED_PROXIES instead "
                               "(forwarding headers from anyone else are ignored).")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Health and metrics answer over plain HTTP for load balancers inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# /metrics and the details of /readyz answer loopback clients freely; others must send
# `Authorization: Bearer <token>` (no token set: they get 403, and /readyz its status only).
METRICS_TOKEN = env_str("METRICS_TOKEN", None)
# Several processes on one machine (web and worker) share their metrics through files here
# (prometheus_client's multiprocess mode, which reads the variable itself).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", None)
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR must be an existing directory, got {PROMETHEUS_MULTIPROC_DIR!r}."
    )
HEALTH_TOKEN = env_str("HEALTH_TOKEN", None)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ops_portal.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "ops_portal.core.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "ops_portal.core.api.filters.StrictFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": ["ops_portal.core.api.parsers.LimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "ops_portal.core.api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "ops_portal.core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["ops_portal.core.api.renderers.PortalJSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_str("API_RATE_LIMIT", "6000/min")},
    # Throttles identify anonymous clients by REMOTE_ADDR, which ProxyHeadersMiddleware resolved.
    "NUM_PROXIES": 0,
    "PAGE_SIZE": 50,
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ops portal API",
    "DESCRIPTION": "Containers, hosts and processes: inventory, jobs, approvals and audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui/favicon-32x32.png",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "ops_portal.core.api.schema.local_times"],
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "ops_portal.jobs.choices.JobState",
        "TargetStateEnum": "ops_portal.jobs.choices.TargetState",
        "ApprovalStateEnum": "ops_portal.approvals.choices.RequestState",
        "DecisionEnum": "ops_portal.approvals.choices.Decision",
        "RoleEnum": "ops_portal.accounts.choices.Role",
        "SourceEnum": "ops_portal.core.choices.Source",
        "ScanSourceEnum": "ops_portal.processes.choices.ScanSource",
        "ScalingMetricEnum": "ops_portal.autoscaling.choices.Metric",
        # Two choice sets answer to "action": the jobs' registered actions and a healing policy's.
        "ActionEnum": "ops_portal.jobs.actions.all_actions",
        "HealActionEnum": "ops_portal.healing.choices.HealAction",
    },
}

# Celery: Redis broker, late acknowledgement (a task whose worker dies is redelivered; the job
# runner refuses to run a job twice), bounded time, one task prefetched per process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 3600, minimum=60),
    "global_keyprefix": f"{REDIS_PREFIX}:celery:",
}
# kombu's Redis transport with a fix for Redis restarts (see ops_portal/core/broker.py).
if CELERY_BROKER_URL.split("://", 1)[0] in ("redis", "rediss"):
    CELERY_BROKER_TRANSPORT = "ops_portal.core.broker:Transport"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect to the broker for as long as it takes (Celery's default gives up after 100 tries and
# the worker exits); a job already running goes on meanwhile: its state is in the database.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3600, minimum=10)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 120
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set; a
# job's claim then paid a new PostgreSQL connection (a backend forked) on its critical path. Kept
# instead, and closed every this many tasks; around each task Django's own rules apply
# (CONN_MAX_AGE, health checks: ops_portal/celery.py).
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "ops_portal.jobs.beat:Scheduler"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "default")
# Seconds between worker and beat heartbeats, and how long a heartbeat stays valid.
HEARTBEAT_INTERVAL = env_int("HEARTBEAT_INTERVAL", 10, minimum=1)
HEARTBEAT_TTL = env_int("HEARTBEAT_TTL", 30, minimum=2)
# Warm SSH connections a worker process keeps between jobs (docs/OPERATIONS.md): at most this
# many, each closed after this many idle seconds; 0 turns them off.
SSH_WARM_MAX = env_int("SSH_WARM_MAX", 256, minimum=0, maximum=100000)
SSH_WARM_IDLE_SECONDS = env_int("SSH_WARM_IDLE_SECONDS", 300, minimum=0, maximum=86400)
# The portal's own machine (hosts with the "local" transport) holds the portal's secrets: only
# administrators of all environments may run work there. The test suite turns this off to use
# local hosts as stand-ins for real targets of operators; a test checks the refusal.
LOCAL_TARGETS_NEED_GLOBAL_ADMIN = env_bool("LOCAL_TARGETS_NEED_GLOBAL_ADMIN", True)
# Built-in periodic tasks (reaping, retention, metrics...) are created enabled; the test suite
# creates them switched off so its beat fires only what a test scheduled.
BUILTIN_SCHEDULES_ENABLED = env_bool("BUILTIN_SCHEDULES_ENABLED", True)
# An evaluation pass that opens (or resolves) more alerts than this at once, an outage of many
# containers say, announces them to each notification channel as one notification listing them.
ALERT_NOTIFY_GROUP_OVER = env_int("ALERT_NOTIFY_GROUP_OVER", 20, minimum=1, maximum=100000)
# A running job whose worker stopped heartbeating for this long is marked lost by the reaper.
JOB_LOST_AFTER_SECONDS = env_int("JOB_LOST_AFTER_SECONDS", 60, minimum=5)
# How services and stacks publish ports when their spec does not say: "ingress" (Swarm's routing
# mesh, needs IPVS in the engine's kernel), "host" (each task's node, DNS round robin), or "auto":
# host mode for unix-socket engines when this kernel has no IPVS, the routing mesh otherwise.
CONTAINERS_PUBLISH_MODE = env_choice("CONTAINERS_PUBLISH_MODE", ("auto", "ingress", "host"), "auto")
# The container watcher: full resync of every engine this often (seconds), besides each reconnect.
CONTAINERS_RESYNC_SECONDS = env_int("CONTAINERS_RESYNC_SECONDS", 300, minimum=10)
# Hosts (names or addresses, lower-case) autoscaling policies may read an HTTP metric from, besides
# 127.0.0.1, ::1 and localhost. Empty: loopback only.
AUTOSCALING_METRIC_HOSTS = [h.lower() for h in env_list("AUTOSCALING_METRIC_HOSTS", [])]
# Self-healing decides on an exit this long after it (ms), so the "stop" event that follows a requested
# stop (docker stop, the portal's stop job) is in: such exits are not healed.
HEALING_SETTLE_MS = env_int("HEALING_SETTLE_MS", 1000, minimum=0, maximum=60000)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ops-portal@localhost")

LOG_FORMAT = env_choice("LOG_FORMAT", ("text", "json"), "text")
LOG_LEVEL = env_choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ops_portal.core.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "ops_portal.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "paramiko": {"level": "WARNING"},
    },
}

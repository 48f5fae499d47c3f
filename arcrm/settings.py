"""arcrm settings, read from the environment.

Every value has a default that makes `make run` work on a laptop with nothing
set; production values come only from the environment (see .env.example).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from celery.schedules import crontab

from arcrm.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files of the embedded defaults: SQLite database, broker folder,
# beat schedule, outgoing mail and rendered letters.
VAR_DIR = Path(env_str("ARCRM_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
for _host in ALLOWED_HOSTS:
    # Django compares these with the Host header's name, without its port: an
    # address or a port never matches, and every request would answer
    # 'Bad Request (400)'.
    _name = _host.split("://")[-1].split("/")[0]
    _name = _name.split("]")[0] + "]" if _name.startswith("[") else _name.split(":")[0]
    if _name != _host:
        raise ConfigError(f"ALLOWED_HOSTS takes host names, not addresses: write {_name}, not {_host!r}")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A proxy in front that ends TLS: its X-Forwarded-Proto says https, and the
# address it adds last to X-Forwarded-For is the client's (arcrm/throttle.py).
# It must append to X-Forwarded-For: one that passes the header on leaves the
# client's own value last, and the client then names the address counted.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Failed sign-ins (arcrm/throttle.py): this many for one user name from one
# address within SIGN_IN_LOCK_MINUTES refuse that name from that address for
# SIGN_IN_LOCK_MINUTES; from one address, a more generous count refuses the
# address (one machine trying many names). `manage.py sign_in_unlock` lifts a
# refusal.
SIGN_IN_FAILURES_PER_USER_AND_ADDRESS = env_int("SIGN_IN_FAILURES_PER_USER_AND_ADDRESS", 5, minimum=1)
SIGN_IN_FAILURES_PER_ADDRESS = env_int("SIGN_IN_FAILURES_PER_ADDRESS", 50, minimum=1)
SIGN_IN_LOCK_MINUTES = env_int("SIGN_IN_LOCK_MINUTES", 15, minimum=1)
# API requests refused for their token, from one address within a minute,
# before that address's wrong tokens are answered 429 for a minute.
API_TOKEN_FAILURES_PER_MINUTE = env_int("API_TOKEN_FAILURES_PER_MINUTE", 30, minimum=1)
# Sessions in the database, read by a query compiled once a process (arcrm/sessions.py).
SESSION_ENGINE = "arcrm.sessions"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
# HSTS: browsers that saw the site over HTTPS refuse plain HTTP to it for this
# long. Off by default: once sent it cannot be taken back before it expires.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
# The HSTS header also for every subdomain, and asking to be on the browsers'
# built-in list: each binds more than this site, for longer, so each is the
# install's own choice.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# A plain-HTTP request is sent to its https:// address; off by default, as
# the proxy in front usually does it (and `make run` has no TLS).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)

# Pages run our own scripts only (htmx and static/js, all files: no inline
# script, no hx-on, no eval); styles may be inline, as htmx's indicator style
# and some style="" attributes are. Nothing is loaded from another site, no
# page may be framed (as X-Frame-Options DENY says), forms post only here.
# The e-mail previews' sandboxed srcdoc frames inherit it.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# With DEBUG on, Django's traceback page alone may run its inline script
# (arcrm/headers.py).
DEFAULT_EXCEPTION_REPORTER = "arcrm.headers.ErrorPageReporter"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Its loader is set in TEMPLATES below, after the PDF layouts' own (the default
    # app config would replace the loaders with its own).
    "template_partials.apps.SimpleAppConfig",
    "arcrm",
    "customers",
    "ar_collections.apps.CollectionsConfig",
]

MIDDLEWARE = [
    "arcrm.headers.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "arcrm.roles.IntegrationAccountMiddleware",
]

ROOT_URLCONF = "arcrm.urls"
WSGI_APPLICATION = "arcrm.wsgi.application"
ASGI_APPLICATION = "arcrm.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "loaders": [
                # The PDF layouts first, compiled with their own {% keep %} and |as_text,
                # which no other template has; then every template as Django finds it,
                # and a partial by its name ("page.html#list").
                "ar_collections.layout_tags.Loader",
                ("template_partials.loader.Loader", [
                    ("django.template.loaders.cached.Loader", [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ]),
                ]),
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "arcrm.context_processors.roles",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'arcrm.sqlite3'}"
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # a collector to the worklist, others to the customers
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Dates Django formats itself (the admin) read as the pages write them: "2 Mar 2026".
FORMAT_MODULE_PATH = ["arcrm.formats"]

# Currency of a document that does not say otherwise (ISO 4217).
DEFAULT_CURRENCY = env_str("DEFAULT_CURRENCY", "EUR").upper()
if len(DEFAULT_CURRENCY) != 3 or not DEFAULT_CURRENCY.isalpha():
    raise ConfigError(f"DEFAULT_CURRENCY must be an ISO 4217 code; got {DEFAULT_CURRENCY!r}")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# E-mail: SMTP when EMAIL_HOST is set; otherwise every message is written to a
# file under var/mail so a demo never sends real mail.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# TLS from the first byte (port 465), where EMAIL_USE_TLS asks for STARTTLS (587).
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigError("EMAIL_USE_TLS (STARTTLS, usually port 587) and EMAIL_USE_SSL (TLS from the first "
                      "byte, usually port 465) exclude each other: set the one your mail server speaks")
# Seconds a mail server may take to answer; 0 would not wait at all.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Accounts Receivable <ar@example.com>")
# Where people reach this installation; links in internal e-mails (disputes
# routed to a department) point here. Unset, they point to the address the
# collector who wrote them was using.
SITE_URL = env_str("SITE_URL", "")

# Our letterhead on letters and e-mails.
COMPANY_NAME = env_str("COMPANY_NAME", "arcrm Demo GmbH")
COMPANY_ADDRESS = env_str("COMPANY_ADDRESS", "Hafenstraße 1\n20457 Hamburg\nGermany").replace("\\n", "\n")
COMPANY_PHONE = env_str("COMPANY_PHONE", "+49 40 1234 5678")
COMPANY_BANK = env_str("COMPANY_BANK", "IBAN DE02 1203 0000 0000 2020 51 · BIC BYLADEM1001")

# A cache every process shares (Redis) when there is one. The signed-in user
# with their permissions is read from it, not from the database, on every
# request (arcrm/authcache.py). Without Redis nothing is cached: each process
# would keep its own copy, which no change could reach. Sessions stay in the
# database: a signed-out session must be gone, whatever Redis does.
CACHE_URL = env_redis_url("CACHE_URL", env_redis_url("REDIS_URL"))
AUTHENTICATION_BACKENDS = ["arcrm.authcache.CachedModelBackend"]
AUTH_CACHE_SECONDS = 0
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "arcrm.cache.ForgivingRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "arcrm"),
            # A Redis that does not answer is a miss, not a page that hangs.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    AUTH_CACHE_SECONDS = env_int("AUTH_CACHE_SECONDS", 300, minimum=0)  # 0: not cached

# Celery. With REDIS_URL set the broker is Redis; otherwise kombu's filesystem
# transport, which needs no server and is enough for one machine.
REDIS_URL = env_redis_url("REDIS_URL")
# The filesystem transport ignores the host, but its address names one: kombu
# fills in a missing host with a warning each time its pool opens a connection.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    # The transport expects its folders to exist; a worker without them dies at start.
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task that is not acknowledged within this time is handed to another
    # worker. Long enough for the slowest batch, short enough to recover; under
    # a minute, a task still running would be handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    }
# Time limits of the tasks, in seconds. Without them a mail server that takes
# the connection and then never answers (or trickles its reply), or a letter
# that never finishes rendering, holds a worker process for ever. At the soft
# limit the task is interrupted and winds down: a delivery batch records the
# step it was on as put off, like a mail server's "not now", and hands the
# rest of its batch back (ar_collections/delivery.py). One still running
# TIME_LIMIT_GRACE later is killed, as a crashed worker would be, and the
# delivery sweep finds what it left. Deliveries and sweeps: a batch of 50
# takes seconds, and a mail server that does not answer costs it
# EMAIL_TIMEOUT twice (connecting, then the goodbye). With the grace it must
# end within the delivery sweep's hand-over wait (checked below). The nightly
# jobs (planning the run, the behaviour refresh, commitments, imports) take a
# minute or so at 100,000 accounts; a run cut short carries on in a task of
# its own (tasks.start_dunning_run).
DELIVERY_TIME_LIMIT = env_int("DELIVERY_TIME_LIMIT", 300, minimum=10)
# Days an account's next dunning step waits, from the day a collector asked,
# for a manager's decision on a pause, extended terms or a payment plan
# (dunning.requests_holding): what the collector told the customer is not
# contradicted by a firmer step meanwhile. Past them the run goes on and the
# approvals mark the request overdue for decision. 0: it never waits.
DUNNING_WAITS_FOR_DECISION_DAYS = env_int("DUNNING_WAITS_FOR_DECISION_DAYS", 3, minimum=0, maximum=30)
JOB_TIME_LIMIT = env_int("JOB_TIME_LIMIT", 1800, minimum=60)
TIME_LIMIT_GRACE = 60
# The delivery sweep hands a step still planned over again once nothing has
# happened to it for this long (delivery.HANDED_OVER_FOR). A delivery still
# running by then would be taken for one whose worker died: its steps handed
# to a second worker, a last attempt under way failed as stopped part-way.
# So the delivery's time limit and the grace after it end within it, checked
# here where both are set, so that changing either cannot break it unseen.
DELIVERY_HANDED_OVER_FOR = dt.timedelta(minutes=15)
_delivery_stopped_after = DELIVERY_TIME_LIMIT + TIME_LIMIT_GRACE
_handed_over_after = int(DELIVERY_HANDED_OVER_FOR.total_seconds())
if _delivery_stopped_after > _handed_over_after:
    raise ConfigError(
        f"DELIVERY_TIME_LIMIT ({DELIVERY_TIME_LIMIT} s) plus {TIME_LIMIT_GRACE} s to wind down must end "
        f"within the delivery sweep's hand-over wait ({_handed_over_after} s): at most "
        f"{_handed_over_after - TIME_LIMIT_GRACE} s"
    )
CELERY_TASK_SOFT_TIME_LIMIT = JOB_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT + TIME_LIMIT_GRACE
_visibility = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
for _name, _limit in (("JOB_TIME_LIMIT", JOB_TIME_LIMIT), ("DELIVERY_TIME_LIMIT", DELIVERY_TIME_LIMIT)):
    if _visibility is not None and _limit + TIME_LIMIT_GRACE > _visibility:
        # The broker would hand a task still running to a second worker.
        raise ConfigError(f"{_name} ({_limit} s) plus {TIME_LIMIT_GRACE} s to wind down must end within "
                          f"CELERY_VISIBILITY_TIMEOUT ({_visibility} s): lower the one or raise the other")
CELERY_TASK_IGNORE_RESULT = True  # no result backend: outcomes are rows in PostgreSQL
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another one
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")



def _daily_at(name: str, default: str) -> crontab:
    hour, _, minute = env_str(name, default).partition(":")
    try:
        return crontab(hour=int(hour), minute=int(minute or 0))
    except ValueError:
        raise ConfigError(f"{name} must be HH:MM, e.g. {default}") from None


# How often planned dunning steps whose hand-over was lost (Redis restarted)
# or whose mail server said "not now" are handed to the workers again.
DELIVERY_SWEEP_MINUTES = env_int("DELIVERY_SWEEP_MINUTES", 15, minimum=1)

# Promises and plans are checked first, so that one broken today counts towards
# the segment the behaviour refresh computes next; dunning plans after both.
CELERY_BEAT_SCHEDULE = {
    "check-commitments": {
        "task": "collections.check_commitments",
        "schedule": _daily_at("COMMITMENTS_CHECK_AT", "02:30"),
    },
    "refresh-payment-behaviour": {
        "task": "collections.refresh_payment_behaviour",
        "schedule": _daily_at("BEHAVIOUR_REFRESH_AT", "03:00"),
    },
    "nightly-dunning-run": {
        "task": "collections.start_dunning_run",
        "schedule": _daily_at("DUNNING_RUN_AT", "03:30"),
    },
    # Collectors' e-mails the mail server did not take at once (ar_collections/outbox.py).
    "sweep-queued-mail": {
        "task": "collections.sweep_queued_mail",
        "schedule": crontab(minute="*/5"),
    },
    # Dunning steps still planned whose hand-over was lost or whose wait is over
    # (ar_collections/delivery.py: actions_sweep_waiting).
    "sweep-waiting-actions": {
        "task": "collections.sweep_waiting_actions",
        "schedule": dt.timedelta(minutes=DELIVERY_SWEEP_MINUTES),
    },
    # Uploaded CSV files whose import task was lost (ar_collections/imports.py).
    "sweep-queued-imports": {
        "task": "collections.sweep_queued_imports",
        "schedule": crontab(minute="*/5"),
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
    raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR; got {env_str('LOG_LEVEL')!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"refusals": {"()": "arcrm.logs.RefusalsWithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["refusals"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # WeasyPrint reports every font and stylesheet it loads at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

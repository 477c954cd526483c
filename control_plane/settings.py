"""Django settings for the control plane; every value comes from `control_plane.environment`.

The variables are listed in ``control_plane/env.example`` and described in the README.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from control_plane.environment import (
    Environment,
    check_mqtt_url,
    parse_database_url,
    parse_public_url,
)

# Admin and form classes are generic only in the stubs; this makes ``ModelAdmin[Device]`` run.
django_stubs_ext.monkeypatch()

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEV_STATE_DIR = REPO_DIR / "var" / "control-plane"

env = Environment()

DEBUG = env.flag("DEBUG", False)
SECRET_KEY = env.secret("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CONTROL_PLANE_SECRET_KEY (or _FILE) is required unless CONTROL_PLANE_DEBUG=1 "
            '(generate one: python -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    SECRET_KEY = "insecure-development-key-never-use-in-production"
ALLOWED_HOSTS = env.items("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.items("CSRF_TRUSTED_ORIGINS", [])

# Behind the TLS front (nginx, playbooks/roles/control_plane/templates/nginx.conf.j2).
HTTPS = env.flag("HTTPS", False)
"""Served to browsers and devices over HTTPS by a proxy that sets ``X-Forwarded-Proto``.

Only true behind a proxy that overwrites that header on every request and is the only way to
reach gunicorn (a Unix socket or loopback), or a client could claim a secure connection.
"""
PUBLIC_URL = parse_public_url(env.text("PUBLIC_URL"), https=HTTPS)
"""``https://fleet.example.lan``: the origin admins and devices use; None: the request's own."""
if PUBLIC_URL is not None and PUBLIC_URL not in CSRF_TRUSTED_ORIGINS:
    CSRF_TRUSTED_ORIGINS.append(PUBLIC_URL)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
"""Health checks on the host itself talk to gunicorn's socket directly, without TLS."""
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(env.number("HSTS_SECONDS", 31_536_000 if HTTPS else 0))
"""How long browsers refuse plain HTTP to this host after one HTTPS answer (0: no HSTS)."""
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.flag("HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env.flag("HSTS_PRELOAD", False)
"""Asks browsers' built-in lists to carry the host: only for a public domain with a publicly
trusted certificate, never for a name certified by the fleet's own CA, so off by default."""
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = (
    ["security.W021"] if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD else []
)
"""``check --deploy`` asks for HSTS preload, which a fleet CA's name cannot have (see above);
leaving it off is the deliberate default, so that one warning says nothing here."""
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured("CONTROL_PLANE_HSTS_SECONDS must be 0 (off) or more")

DATABASE_URL = env.text("DATABASE_URL")
if DATABASE_URL is None:
    DEV_STATE_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{DEV_STATE_DIR / 'control-plane.sqlite3'}"
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ARTIFACT_ROOT = env.path("ARTIFACT_ROOT", DEV_STATE_DIR / "artifacts")
"""Where plugin components are stored, zstd-compressed, as ``<sha256>.wasm.zst``."""
ARTIFACT_ZSTD_LEVEL = int(env.number("ARTIFACT_ZSTD_LEVEL", 9))
"""zstd level for stored artifacts: 9 takes about 0.4 s for 18 MB; 19 packs 12 % tighter in 8 s."""
if not 1 <= ARTIFACT_ZSTD_LEVEL <= 22:
    raise ImproperlyConfigured("CONTROL_PLANE_ARTIFACT_ZSTD_LEVEL must be 1..22")
COMPILED_CACHE_DIR = env.optional_path("COMPILED_CACHE_DIR")
"""Optional: keep compiled components here, so validating the same bytes again is instant."""
SIGNING_KEY_PATH = env.path("SIGNING_KEY_PATH", DEV_STATE_DIR / "signing-key.pem")
"""The fleet's Ed25519 private key (PEM, mode 0600), made by ``manage.py create_signing_key``."""
HEARTBEAT_INTERVAL_S = env.number("HEARTBEAT_INTERVAL_S", 10.0)
"""How often devices report; a device is offline after two missed heartbeats plus 5 s."""
HISTORY_RETENTION_DAYS = env.number("HISTORY_RETENTION_DAYS", 30.0)
"""How long ``manage.py prune_history`` keeps readings and events."""

# The device-initiated channel (issue 11): MQTT notices and device client certificates.
MQTT_CA_FILE = env.optional_path("MQTT_CA_FILE")
"""The CA that signed the broker's certificate, which the control plane's publisher pins."""
MQTT_URL = check_mqtt_url(env.text("MQTT_URL"), MQTT_CA_FILE)
"""The broker devices subscribe to, ``mqtts://host:8883``; unset: no notices, heartbeats only."""
DEVICE_CA_CERT_PATH = env.path("DEVICE_CA_CERT_PATH", DEV_STATE_DIR / "device-ca.pem")
"""The CA that signs devices' MQTT client certificates; the broker trusts only it."""
DEVICE_CA_KEY_PATH = env.path("DEVICE_CA_KEY_PATH", DEV_STATE_DIR / "device-ca-key.pem")
"""Its private key (PEM, mode 0600), made by ``manage.py create_device_ca``."""
DEVICE_CERT_DAYS = int(env.number("DEVICE_CERT_DAYS", 90))
"""How long a device's client certificate is valid; devices renew at a third of it left."""
NOTICE_BATCH = int(env.number("NOTICE_BATCH", 500))
"""Notices the worker publishes per batch, and devices recomputed per transaction."""

# Bounded telemetry (issue 11).
READINGS_PER_HEARTBEAT_MAX = int(env.number("READINGS_PER_HEARTBEAT_MAX", 200))
"""A heartbeat carrying more readings is answered 429, before anything is stored."""
TELEMETRY_BYTES_PER_HOUR = int(env.number("TELEMETRY_BYTES_PER_HOUR", 4 * 1024 * 1024))
"""Heartbeat bytes one device may send per hour; beyond it, 429 with ``Retry-After``."""
READING_FUTURE_TOLERANCE_S = env.number("READING_FUTURE_TOLERANCE_S", 300.0)
"""Readings dated further ahead of the control plane's clock than this are refused."""

JOB_WORKERS = int(env.number("JOB_WORKERS", 1))
"""Jobs run at once per worker service; a native compile takes about 400 MB, so 1 by default."""
JOB_TIMEOUT_S = int(env.number("JOB_TIMEOUT_S", 1200))
"""A job running longer is killed and recorded as failed (an emulated compile takes 1-3 min)."""
JOB_RETRY_S = int(env.number("JOB_RETRY_S", JOB_TIMEOUT_S + 60))
"""A job taken by a worker that died is handed out again after this; must exceed the timeout."""
JOBS_SYNC = env.flag("JOBS_SYNC", False)
"""Run each job inside the call that enqueues it, with no worker: for in-process tests only."""
if JOB_WORKERS < 1:
    raise ImproperlyConfigured("CONTROL_PLANE_JOB_WORKERS must be at least 1")
if not 0 < JOB_TIMEOUT_S < JOB_RETRY_S:
    raise ImproperlyConfigured(
        "CONTROL_PLANE_JOB_RETRY_S must exceed CONTROL_PLANE_JOB_TIMEOUT_S (> 0), "
        "or a job still running would be handed to a second worker"
    )

Q_CLUSTER = {
    "name": "pi-fleet",
    "orm": "default",
    "workers": JOB_WORKERS,
    "timeout": JOB_TIMEOUT_S,
    "retry": JOB_RETRY_S,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.25,
    "save_limit": 500,
    "recycle": 10,
    "label": "Jobs",
    "sync": JOBS_SYNC,
    "ALT_CLUSTERS": {
        "pi-fleet-cross": {"workers": 1, "recycle": 1},
    },
}
"""django-q2 on the ORM broker: the queue is a table in the control plane's own database.

Enqueueing inside a transaction commits the job with the rows it refers to. A job that raised
or timed out is recorded as failed and not run again (its failure is the answer). A job whose
worker died leaves no result, so after ``retry`` seconds it is handed out again, as often as
that happens (``max_attempts`` counts results only); ``retry`` runs from when the broker took
the job, and with one worker up to two more wait behind the running one, so a job must be
safe to run twice. Workers are replaced after 10 jobs (a compile leaves the heap fragmented);
the broker polls every 0.25 s, so an idle worker starts a job within about 0.3 s.

Compiles for another CPU (under qemu-user, a minute or more each) go to a second queue,
``pi-fleet-cross``, served by its own worker (``Q_CLUSTER_NAME=pi-fleet-cross manage.py
qcluster``), so an upload's check never waits behind them. That worker is replaced after
every job: an emulated compile is long, and its memory must go back.
"""
CROSS_QUEUE = "pi-fleet-cross"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "control_plane.builds",
    "control_plane.devices",
    "control_plane.plugins",
    "control_plane.rollouts",
    "control_plane.notices",
    "control_plane.blobs",
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
]

ROOT_URLCONF = "control_plane.urls"
WSGI_APPLICATION = "control_plane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "devices:fleet"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", DEV_STATE_DIR / "static")

FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.text("LOG_LEVEL", "INFO")},
}

"""The one place that reads the environment: ``CONTROL_PLANE_*`` variables, typed.

Settings ask this module for every value, so the whole configuration surface is the list of
names in ``env.example`` and nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "CONTROL_PLANE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Environment:
    """Typed reads of ``CONTROL_PLANE_<NAME>``; a malformed value raises ImproperlyConfigured."""

    def __init__(self, environ: Mapping[str, str] | None = None, prefix: str = PREFIX) -> None:
        self._environ = os.environ if environ is None else environ
        self._prefix = prefix

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._environ.get(self._prefix + name)
        return default if value is None or value == "" else value

    def secret(self, name: str) -> str | None:
        """``<NAME>``, else the contents of the file ``<NAME>_FILE`` (keeps it out of env files)."""
        value = self.text(name)
        path = self.text(name + "_FILE")
        if value is not None or path is None:
            return value
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{self._prefix}{name}_FILE: cannot read {path}: {exc}"
            ) from exc

    def flag(self, name: str, default: bool) -> bool:
        value = self._environ.get(self._prefix + name)
        if value is None:
            return default
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise ImproperlyConfigured(f"{self._prefix}{name}={value!r} is not a boolean (1 or 0)")

    def number(self, name: str, default: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{self._prefix}{name}={value!r} is not a number") from None

    def items(self, name: str, default: list[str]) -> list[str]:
        value = self.text(name)
        if value is None:
            return default
        return [item.strip() for item in value.split(",") if item.strip()]

    def path(self, name: str, default: Path) -> Path:
        return self.optional_path(name) or default

    def optional_path(self, name: str) -> Path | None:
        value = self.text(name)
        return Path(value).expanduser() if value is not None else None


def parse_database_url(url: str) -> dict[str, Any]:
    """Turns ``sqlite:///path`` or ``postgresql://user:pass@host:port/db`` into DATABASES["x"].

    SQLite gets WAL, synchronous=NORMAL, a busy timeout and IMMEDIATE transactions, so
    concurrent heartbeats queue for the write lock instead of failing with "database is
    locked"; PostgreSQL connections are kept between requests.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = unquote(parts.path)
        if parts.netloc or not name:
            raise ImproperlyConfigured(
                f"database URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name[1:],
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=10000"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 10,
            },
        }
    if parts.scheme in {"postgres", "postgresql"}:
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ImproperlyConfigured(f"database URL {_redacted(url)}: no database name")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"database URL {_redacted(url)}: bad port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"database URL {_redacted(url)}: the scheme must be sqlite or postgresql"
    )


def parse_public_url(url: str | None, *, https: bool) -> str | None:
    """``https://host[:port]`` (a trailing ``/`` is fine) as an origin, or None when unset.

    The origin is what CSRF checks compare and what the admin prints for devices, so a path,
    query or credentials in it are refused rather than silently dropped; behind the TLS front
    (``https``) a plain ``http://`` origin is refused too.
    """
    if url is None:
        return None
    name = PREFIX + "PUBLIC_URL"
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={url!r}: write https://host or https://host:port")
    if parts.path not in {"", "/"} or parts.query or parts.fragment or "@" in parts.netloc:
        raise ImproperlyConfigured(f"{name}={url!r}: only scheme, host and port, no path")
    if https and parts.scheme != "https":
        raise ImproperlyConfigured(f"{name}={url!r}: must be https:// when CONTROL_PLANE_HTTPS=1")
    try:
        _ = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name}={url!r}: bad port") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def check_mqtt_url(url: str | None, ca_file: Path | None) -> str | None:
    """``mqtts://host:port``, with the CA file that pins the broker, or None (no broker).

    Checked at start, so a typo stops the control plane instead of leaving every notice
    pending behind a log line per publishing run.
    """
    if url is None:
        return None
    name = PREFIX + "MQTT_URL"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "mqtts" or not parts.hostname or port is None:
        raise ImproperlyConfigured(f"{name}={url!r}: write mqtts://host:port (TLS only)")
    if parts.path not in {"", "/"} or parts.query or "@" in parts.netloc:
        raise ImproperlyConfigured(f"{name}={url!r}: only host and port, no path or credentials")
    if ca_file is None:
        raise ImproperlyConfigured(
            f"{name} is set but {PREFIX}MQTT_CA_FILE is not: the broker's CA must be pinned"
        )
    return url


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)

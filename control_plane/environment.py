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


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)

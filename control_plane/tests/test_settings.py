"""Settings: read from CONTROL_PLANE_* only, fail fast, and SQLite tuned for concurrency."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler

from control_plane.environment import Environment, parse_database_url
from tests.support import REPO


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROL_PLANE_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "control_plane/manage.py", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_sqlite_url_names_a_relative_or_absolute_file():
    assert parse_database_url("sqlite:///var/db.sqlite3")["NAME"] == "var/db.sqlite3"
    assert parse_database_url("sqlite:////srv/cp/db.sqlite3")["NAME"] == "/srv/cp/db.sqlite3"


def test_a_postgresql_url_is_split_and_unquoted():
    database = parse_database_url("postgresql://fleet:p%40ss@db.local:5433/control")

    assert {k: database[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "control",
        "USER": "fleet",
        "PASSWORD": "p@ss",
        "HOST": "db.local",
        "PORT": "5433",
    }


def test_an_unknown_database_scheme_is_refused_without_showing_the_password():
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_database_url("mysql://root:hunter2@db/x")

    assert "scheme must be sqlite or postgresql" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_malformed_boolean_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match="CONTROL_PLANE_DEBUG='maybe'"):
        Environment({"CONTROL_PLANE_DEBUG": "maybe"}).flag("DEBUG", False)


def test_sqlite_connections_use_wal_normal_sync_a_busy_timeout_and_immediate_writes(
    tmp_path, django_db_blocker
):
    handler = ConnectionHandler({"default": parse_database_url(f"sqlite:///{tmp_path}/cp.db")})
    connection = handler["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            pragmas = {
                name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout")
            }
    finally:
        connection.close()

    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 10000}
    assert connection.transaction_mode == "IMMEDIATE"


def test_without_debug_a_missing_secret_key_stops_the_start(tmp_path):
    done = run_manage("check", env={"CONTROL_PLANE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})

    assert done.returncode != 0
    assert (
        "CONTROL_PLANE_SECRET_KEY (or _FILE) is required unless CONTROL_PLANE_DEBUG=1"
        in done.stderr
    )


def test_manage_py_runs_from_the_repository_root(tmp_path):
    done = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "ERROR",
        env={
            "CONTROL_PLANE_SECRET_KEY": "x" * 60,
            "CONTROL_PLANE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "CONTROL_PLANE_ALLOWED_HOSTS": "cp.example",
        },
    )

    assert done.returncode == 0, done.stderr


def test_env_example_lists_exactly_the_variables_the_settings_read():
    import re

    settings_source = (REPO / "control_plane" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\("([A-Z_]+)"', settings_source))
    example = (REPO / "control_plane" / "env.example").read_text()
    listed = set(re.findall(r"^CONTROL_PLANE_([A-Z_]+)=", example, re.MULTILINE))

    assert read == listed


def test_the_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret-key"
    secret.write_text("s" * 60 + "\n")

    assert Environment({"CONTROL_PLANE_SECRET_KEY_FILE": str(secret)}).secret("SECRET_KEY") == (
        "s" * 60
    )


def test_an_unreadable_secret_key_file_is_named(tmp_path):
    missing = tmp_path / "nope"

    with pytest.raises(
        ImproperlyConfigured, match=f"CONTROL_PLANE_SECRET_KEY_FILE: cannot read {missing}"
    ):
        Environment({"CONTROL_PLANE_SECRET_KEY_FILE": str(missing)}).secret("SECRET_KEY")

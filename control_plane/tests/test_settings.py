"""Settings: read from CONTROL_PLANE_* only, fail fast, and SQLite tuned for concurrency."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler

from control_plane.environment import (
    Environment,
    check_mqtt_url,
    parse_database_url,
    parse_public_url,
)
from tests.support import REPO, free_port


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


ROLE_ENVIRONMENT = {
    "CONTROL_PLANE_DEBUG": "0",
    "CONTROL_PLANE_ALLOWED_HOSTS": "fleet.example.lan,localhost,127.0.0.1",
    "CONTROL_PLANE_CSRF_TRUSTED_ORIGINS": "",
    "CONTROL_PLANE_HTTPS": "1",
    "CONTROL_PLANE_PUBLIC_URL": "https://fleet.example.lan",
    "CONTROL_PLANE_HSTS_SECONDS": "31536000",
    "CONTROL_PLANE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "CONTROL_PLANE_HSTS_PRELOAD": "0",
}
"""What the role's control-plane.env sets besides paths (the list is in /work/coord/front.md
for the role): behind its nginx, the secret key in a file, no debug."""


def test_check_deploy_is_clean_with_the_roles_settings(tmp_path):
    secret = tmp_path / "secret-key"
    secret.write_text("role-made-" + "0123456789abcdefghijklmnopqrstuvwxyz" * 2 + "\n")

    done = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            **ROLE_ENVIRONMENT,
            "CONTROL_PLANE_SECRET_KEY_FILE": str(secret),
            "CONTROL_PLANE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        },
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_without_https_check_deploy_names_the_four_transport_warnings(tmp_path):
    done = run_manage(
        "check",
        "--deploy",
        env={
            "CONTROL_PLANE_SECRET_KEY": "x" * 20 + "abcdefghijklmnopqrstuvwxyz0123456789",
            "CONTROL_PLANE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "CONTROL_PLANE_ALLOWED_HOSTS": "cp.example",
        },
    )

    warned = set(re.findall(r"security\.W\d+", done.stderr + done.stdout))
    assert warned == {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_the_public_url_is_kept_as_an_origin():
    assert parse_public_url("https://Fleet.Example.lan:8443/", https=True) == (
        "https://fleet.example.lan:8443"
    )
    assert parse_public_url(None, https=True) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("fleet.example.lan", "write https://host"),
        ("https://fleet.example.lan/admin/", "no path"),
        ("https://user:pw@fleet.example.lan", "no path"),
        ("http://fleet.example.lan", "must be https:// when CONTROL_PLANE_HTTPS=1"),
        ("https://fleet.example.lan:99999", "bad port"),
    ],
)
def test_a_malformed_public_url_is_refused_by_name(url, problem):
    with pytest.raises(ImproperlyConfigured, match=f"CONTROL_PLANE_PUBLIC_URL=.*{problem}"):
        parse_public_url(url, https=True)


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_gunicorn_refuses_to_listen_on_every_interface(host):
    gunicorn = Path(sys.executable).with_name("gunicorn")

    done = subprocess.run(
        [
            str(gunicorn),
            "--config",
            "python:control_plane.gunicorn_settings",
            "--bind",
            f"{host}:{free_port()}",
            "--workers",
            "1",
            "control_plane.wsgi:application",
        ],
        cwd=REPO,
        env={**os.environ, "CONTROL_PLANE_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert "refusing to bind" in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("url", "ca_file", "problem"),
    [
        ("mqtt://broker:1883", "ca.pem", "write mqtts://host:port"),
        ("mqtts://broker", "ca.pem", "write mqtts://host:port"),
        ("mqtts://u:p@broker:8883", "ca.pem", "no path or credentials"),
        ("mqtts://broker:8883", None, "CONTROL_PLANE_MQTT_CA_FILE is not"),
    ],
)
def test_a_broker_url_without_tls_a_port_or_a_pinned_ca_stops_the_start(url, ca_file, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        check_mqtt_url(url, Path(ca_file) if ca_file else None)


def test_a_broker_url_with_its_ca_is_kept_and_none_means_no_broker():
    assert check_mqtt_url("mqtts://broker:8883", Path("ca.pem")) == "mqtts://broker:8883"
    assert check_mqtt_url(None, None) is None

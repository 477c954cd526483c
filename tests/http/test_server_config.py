"""The [server] limits are read, type-checked and range-checked at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device_host.config import load_config
from device_host.errors import ConfigError

LOCAL = '[plugins]\nsource = "local"\n'


def _load(tmp_path: Path, server: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "host.toml"
    path.write_text(f"[server]\n{server}\n{LOCAL}")
    return load_config(path, environ or {})


def test_the_server_limits_have_safe_defaults(tmp_path):
    server = _load(tmp_path, "").server

    assert (server.max_connections, server.header_timeout_s) == (256, 10.0)
    assert (server.body_timeout_s, server.keepalive_s) == (30.0, 15.0)
    assert server.access_token_file is None


def test_the_server_limits_are_read_from_the_file_and_the_environment(tmp_path):
    server = _load(
        tmp_path,
        'max_connections = 64\nheader_timeout_s = 2\naccess_token_file = "/run/token"',
        {"DEVICE_HOST_SERVER_KEEPALIVE_S": "3.5"},
    ).server

    assert server.max_connections == 64 and server.header_timeout_s == 2.0
    assert server.keepalive_s == 3.5
    assert server.access_token_file == Path("/run/token")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_connections = 0", "max_connections must be 8..65536"),
        ("max_connections = 1000000", "max_connections must be 8..65536"),
        ("header_timeout_s = 0", "header_timeout_s must be 0.1..3600"),
        ("body_timeout_s = nan", "body_timeout_s must be 0.1..3600"),
        ("keepalive_s = -1", "keepalive_s must be 0.1..3600"),
        ('max_connections = "many"', "max_connections must be int"),
    ],
)
def test_a_bad_server_limit_fails_at_start_naming_the_key(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, line)


def test_a_connection_cap_beyond_the_open_files_limit_is_lowered_to_fit():
    probe = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
        "from device_host.http.server import fit_open_files; print(fit_open_files(256))"
    )

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    fitted = int(done.stdout)
    assert 8 <= fitted < 256
    assert "max_connections 256 lowered" in done.stderr

"""Who may see what: loopback or the device token for /healthz detail and /metrics; the
dashboard, /api/readings and the push endpoint stay public."""

from __future__ import annotations

import json
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_host.errors import ConfigError
from device_host.http.access import is_loopback, load_or_create_token
from tests.support import HostProcess, place_plugin


def _lan_address() -> str:
    """This machine's address on its network, which is how a LAN client reaches the host."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "this machine has no non-loopback IPv4 address"
    return address


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:  # type: ignore[no-untyped-def]
    host = HostProcess(tmp_path_factory.mktemp("access"), compiled_dir)
    host.settings = {"server": {"host": "0.0.0.0"}, "plugins": {"dashboard": "hello"}}
    place_plugin(build("hello"), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def lan_url(host: HostProcess) -> str:
    return f"http://{_lan_address()}:{host.port}"


@pytest.fixture(scope="module")
def token(host: HostProcess) -> str:
    return (host.workdir / "state" / "access-token").read_text().strip()


def test_the_access_token_is_created_on_first_start_readable_only_by_the_host(host, token):
    path = host.workdir / "state" / "access-token"

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 43


def test_healthz_from_the_lan_without_the_token_says_only_status_and_version(host, lan_url):
    status, body = _get(lan_url + "/healthz")

    assert status == 200
    assert set(json.loads(body)) == {"status", "host_version"}


def test_healthz_from_the_lan_with_the_token_has_the_detail(host, lan_url, token):
    detail = json.loads(_get(lan_url + "/healthz", token)[1])

    assert detail["plugins"][0]["name"] == "hello"
    assert "agent" in detail


def test_healthz_from_loopback_has_the_detail(host):
    assert "plugins" in host.healthz()


def test_metrics_from_the_lan_without_the_token_is_refused_naming_what_is_needed(host, lan_url):
    status, body = _get(lan_url + "/metrics")

    assert status == 403
    assert "Bearer" in json.loads(body)["error"] and "loopback" in json.loads(body)["error"]


def test_a_wrong_token_is_refused(host, lan_url, token):
    assert _get(lan_url + "/metrics", token[:-1] + ("x" if token[-1] != "x" else "y"))[0] == 403
    assert "plugins" not in json.loads(_get(lan_url + "/healthz", "nope")[1])


def test_metrics_from_the_lan_with_the_token_is_served(host, lan_url, token):
    status, body = _get(lan_url + "/metrics", token)

    assert status == 200 and "http_requests_total" in body


def test_the_dashboard_and_readings_stay_public(host, lan_url):
    assert _get(lan_url + "/")[0] == 200
    assert _get(lan_url + "/api/readings")[0] == 200


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:192.0.2.7", False),
        ("192.0.2.7", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("localhost", False),
    ],
)
def test_only_loopback_peers_are_loopback(peer, loopback):
    assert is_loopback(peer) is loopback


def test_an_existing_token_is_kept_and_a_short_one_is_refused(tmp_path: Path):
    path = tmp_path / "access-token"
    first = load_or_create_token(path)

    assert load_or_create_token(path) == first
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than"):
        load_or_create_token(path)

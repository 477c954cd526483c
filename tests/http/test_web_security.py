"""The web security model: host headers on every reply, a strict CSP on plugin pages, an
allow-list of plugin response headers, and statuses 200-599 only (docs/web-security.md)."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest

from tests.support import HostProcess, browse, http_get, place_plugin

HOSTILE = "/plugins/hostile-page"


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:  # type: ignore[no-untyped-def]
    host = HostProcess(tmp_path_factory.mktemp("web-security"), compiled_dir)
    host.settings = {"plugins": {"dashboard": "hostile-page"}}
    for name in ("hostile-page", "hello", "demo-dashboard"):
        place_plugin(build(name), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


def _get(url: str) -> tuple[int, Message, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def _csp(headers: Message) -> dict[str, list[str]]:
    policy = headers["Content-Security-Policy"]
    assert policy, "no Content-Security-Policy"
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


@pytest.mark.parametrize("path", ["/healthz", "/plugins/nope/", f"{HOSTILE}/", "/plugins/hello/"])
def test_every_reply_forbids_framing_and_sniffing_and_sends_no_referrer(host, path):
    _status, headers, _body = _get(host.url + path)

    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert _csp(headers)["frame-ancestors"] == ["'none'"]


def test_a_plugin_cannot_override_the_hosts_headers(host):
    _status, sniff, _ = _get(f"{host.url}{HOSTILE}/headers/sniff")
    _status, csp, _ = _get(f"{host.url}{HOSTILE}/headers/csp")

    assert sniff.get_all("X-Content-Type-Options") == ["nosniff"]
    assert sniff.get_all("X-Frame-Options") == ["DENY"]
    assert len(csp.get_all("Content-Security-Policy") or []) == 1
    assert _csp(csp)["default-src"] == ["'none'"]


@pytest.mark.parametrize(
    ("case", "header"),
    [
        ("redirect", "Location"),
        ("cors", "Access-Control-Allow-Origin"),
        ("worker", "Service-Worker-Allowed"),
        ("cookie", "Set-Cookie"),
        ("crlf", "X-Split"),
        ("lf", "X-Split"),
    ],
)
def test_a_plugin_header_off_the_allow_list_is_dropped(host, case, header):
    status, headers, body = _get(f"{host.url}{HOSTILE}/headers/{case}")

    assert status == 200 and body == f"headers {case}"
    assert headers[header] is None
    assert headers["X-Injected"] is None


def test_a_plugin_header_with_an_invalid_name_is_dropped(host):
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
        sock.sendall(f"GET {HOSTILE}/headers/bad-name HTTP/1.0\r\n\r\n".encode())
        raw = b"".join(iter(lambda: sock.recv(65536), b""))

    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert re.match(r"HTTP/1\.[01] 200 ", head)
    assert "X A" not in head and "x-ok" not in head.lower()


def test_allowed_plugin_headers_pass_through(host):
    _status, headers, _ = _get(f"{host.url}{HOSTILE}/headers/allowed")

    assert headers["Cache-Control"] == "no-store"
    assert headers["ETag"] == '"v1"'
    assert headers["Vary"] == "accept"
    assert headers["Content-Language"] == "en"


def test_dropped_plugin_headers_are_counted(host):
    _get(f"{host.url}{HOSTILE}/headers/cors")

    metrics = http_get(host.url + "/metrics")[1]

    counted = re.search(r'plugin_headers_dropped_total\{plugin="hostile-page"\} (\S+)', metrics)
    assert counted is not None and float(counted.group(1)) >= 1


@pytest.mark.parametrize("status", [100, 101, 199, 600, 999])
def test_a_status_outside_200_to_599_becomes_a_502_host_page_counted_as_a_plugin_error(
    host, status
):
    code, headers, body = _get(f"{host.url}{HOSTILE}/status/{status}")

    assert code == 502
    assert f"It answered {status}" in body
    assert headers["Content-Type"].startswith("text/html")
    metrics = http_get(host.url + "/metrics")[1]
    assert re.search(
        r'plugin_errors_total\{kind="bad-status",plugin="hostile-page"\} [1-9]', metrics
    )


def test_a_plugin_page_may_load_and_fetch_only_from_its_own_mount(host):
    _status, headers, _ = _get(f"{host.url}{HOSTILE}/")
    own = f"http://127.0.0.1:{host.port}{HOSTILE}/"

    csp = _csp(headers)

    assert csp["default-src"] == ["'none'"]
    assert csp["connect-src"] == [own]
    assert csp["script-src"] == [own, "'unsafe-inline'"]
    assert csp["img-src"] == [own, "data:"]


def test_the_dashboard_at_the_root_may_also_fetch_the_readings_api(host):
    _status, headers, _ = _get(f"{host.url}/")
    origin = f"http://127.0.0.1:{host.port}"

    assert _csp(headers)["connect-src"] == [f"{origin}{HOSTILE}/", f"{origin}/api/readings"]


def test_a_page_written_for_the_original_demo_may_also_fetch_api(host):
    _status, headers, _ = _get(f"{host.url}/plugins/demo-dashboard/")
    origin = f"http://127.0.0.1:{host.port}"

    assert f"{origin}/api" in _csp(headers)["connect-src"]


def test_a_host_header_that_is_not_a_host_gives_a_page_no_sources_at_all(host):
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
        sock.sendall(f"GET {HOSTILE}/ HTTP/1.0\r\nHost: x; script-src *\r\n\r\n".encode())
        raw = b"".join(iter(lambda: sock.recv(65536), b""))

    policy = re.search(rb"Content-Security-Policy: ([^\r]*)", raw)
    assert policy is not None
    assert b"x;" not in policy.group(1) and b"*" not in policy.group(1)
    assert b"connect-src 'none'" in policy.group(1)


def test_in_a_browser_a_plugin_page_cannot_read_the_host_or_another_plugin(host):
    dom = browse(f"{host.url}{HOSTILE}/spy", "hostile-page-spy.png", settle_ms=3000)

    assert "done" in dom
    for url in ("/healthz", "/metrics", "/api/readings", "/plugins/hello/"):
        assert f"{url} blocked" in dom
    assert "echo read" in dom


def test_a_plugins_header_faults_are_logged_once_per_kind_not_per_request(host):
    before = host.log_path.stat().st_size

    for case in ("redirect", "cors", "worker", "cookie") * 10:
        _get(f"{host.url}{HOSTILE}/headers/{case}")

    logged = [line for line in host.log()[before:].splitlines() if "not allowed" in line]
    assert len(logged) <= 1, logged

"""Request headers: malformed ones get a clean 400 and one log line; a plugin sees only the
client's end-to-end headers and the host's own X-Forwarded-Prefix."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from tests.support import HostProcess, http_get, place_plugin

MALFORMED = {
    "a CR inside a value": b"X-A: a\rb\r\n",
    "a LF inside a value": b"X-A: a\nb\r\n",
    "a space in a name": b"X A: b\r\n",
    "a colon-forged name": b"X A:B: c\r\n",
    "an obs-fold continuation": b"X-A: a\r\n b\r\n",
    "a NUL in a value": b"X-A: a\x00b\r\n",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:  # type: ignore[no-untyped-def]
    host = HostProcess(tmp_path_factory.mktemp("request-headers"), compiled_dir)
    host.settings = {"plugins": {"dashboard": "hostile-page"}}
    place_plugin(build("hostile-page"), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


def _raw(host: HostProcess, path: str, headers: bytes) -> bytes:
    """One request on its own connection; a server that answers 400 and closes before
    reading the rest may reset the connection after its answer, so keep what arrived."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + headers
    received = b""
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
        sock.sendall(request + b"Connection: close\r\n\r\n")
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def _echoed(host: HostProcess, path: str, headers: bytes) -> list[str]:
    answer = _raw(host, path, headers)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    return answer.split(b"\r\n\r\n", 1)[1].decode().splitlines()


def test_malformed_request_headers_get_a_400_and_one_log_line_not_a_traceback_each(host):
    before = host.log_path.stat().st_size

    answers = [_raw(host, "/echo", headers) for _ in range(50) for headers in MALFORMED.values()]

    assert all(re.match(rb"HTTP/1\.[01] 400 ", answer) for answer in answers)
    logged = host.log()[before:]
    assert "Traceback" not in logged
    assert len(logged.splitlines()) <= len(MALFORMED), logged


def test_a_plugin_header_with_cr_lf_is_dropped_and_the_reply_counted_as_sent(host):
    answer = _raw(host, "/headers/crlf", b"")

    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"x-injected" not in answer.lower()
    metrics = http_get(host.url + "/metrics")[1]
    assert not re.search(r'http_requests_total\{route="/\{tail\}",status="500"\}', metrics)


def test_a_client_sent_x_forwarded_prefix_is_dropped_in_any_case(host):
    at_root = _echoed(host, "/echo", b"X-Forwarded-Prefix: /evil\r\nx-FORWARDED-prefix: /evil2\r\n")
    mounted = _echoed(host, "/plugins/hostile-page/echo", b"X-Forwarded-Prefix: /evil\r\n")

    assert [h for h in at_root if h.startswith("x-forwarded-prefix")] == ["x-forwarded-prefix: "]
    assert [h for h in mounted if h.startswith("x-forwarded-prefix")] == [
        "x-forwarded-prefix: /plugins/hostile-page"
    ]


def test_hop_by_hop_reserved_and_credential_headers_are_not_forwarded_to_a_plugin(host):
    echoed = _echoed(
        host,
        "/echo",
        b"Authorization: Bearer device-secret\r\nX-Forwarded-For: 10.0.0.1\r\n"
        b"Forwarded: for=10.0.0.1\r\nTE: trailers\r\nUpgrade: websocket\r\n"
        b"Proxy-Authorization: Basic eA==\r\nAccept: text/html\r\n",
    )
    names = {line.split(":", 1)[0] for line in echoed}

    assert names == {"host", "accept", "x-forwarded-prefix"}

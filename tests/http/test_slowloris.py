"""Port 3000 holds against slow and numerous clients: bounded connections and read times.

Attacks run against 127.0.0.1 only, bounded in connections and seconds.
"""

from __future__ import annotations

import resource
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.attacks import PARTIAL_REQUEST, Slowloris
from tests.support import HostProcess, http_get, place_plugin, wait_until

MAX_CONNECTIONS = 256
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEPALIVE_S = 2.0
HALF_OPEN = 2000


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:  # type: ignore[no-untyped-def]
    host = HostProcess(tmp_path_factory.mktemp("slowloris"), compiled_dir)
    host.settings = {
        "server": {
            "max_connections": MAX_CONNECTIONS,
            "header_timeout_s": HEADER_TIMEOUT_S,
            "body_timeout_s": BODY_TIMEOUT_S,
            "keepalive_s": KEEPALIVE_S,
        },
        "plugins": {"dashboard": "hello"},
    }
    place_plugin(build("hello"), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


def _connect(host: HostProcess, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=5)
    sock.sendall(first_bytes)
    return sock


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return int(response.status)
    except OSError:
        return 0


def test_a_connection_that_never_finishes_its_request_headers_is_closed_after_the_header_timeout(
    host,
):
    sock = _connect(host, PARTIAL_REQUEST)
    started = time.monotonic()

    closed = _closed_by_server(sock, within_s=HEADER_TIMEOUT_S + 3)

    assert closed, "the server kept a connection that never sent its headers"
    assert time.monotonic() - started >= HEADER_TIMEOUT_S - 0.5
    sock.close()


def test_a_request_body_slower_than_the_body_timeout_is_answered_408(host):
    sock = _connect(
        host, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly part"
    )
    sock.settimeout(BODY_TIMEOUT_S + 5)

    answer = sock.recv(4096)

    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_s(host):
    sock = _connect(host, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")

    assert _closed_by_server(sock, within_s=KEEPALIVE_S + 3)
    sock.close()


def test_pages_and_healthz_keep_answering_through_2000_half_open_connections(host):
    log_before = host.log_path.stat().st_size
    statuses: list[int] = []

    with Slowloris(host.port, HALF_OPEN, seconds=60) as attack:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            statuses += [_fetch(host.url + "/"), _fetch(host.url + "/healthz")]

    failed = [s for s in statuses if s != 200]
    assert attack.opened >= HALF_OPEN
    assert attack.closed_by_server >= HALF_OPEN - MAX_CONNECTIONS
    assert len(statuses) > 20 and not failed, f"{len(failed)} of {len(statuses)} failed"
    logged = host.log_path.stat().st_size - log_before
    assert logged < 4096, host.log()[-4096:]


def test_healthz_answers_from_the_reserve_when_every_connection_is_busy(host):
    busy = [
        _connect(host, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n")
        for _ in range(MAX_CONNECTIONS)
    ]
    try:
        # The loop reads the busy requests as it gets CPU: until it has, a page still answers.
        wait_until(lambda: http_get(host.url + "/", timeout=5)[0] == 503, 20, "the page refused")
        health, _ = http_get(host.url + "/healthz", timeout=5)
    finally:
        for sock in busy:
            sock.close()

    assert health == 200


def test_running_out_of_open_files_is_logged_once_not_per_accept(
    tmp_path: Path, compiled_dir: Path
):
    host = HostProcess(tmp_path, compiled_dir)
    host.settings = {"server": {"max_connections": 4000, "header_timeout_s": 30.0}}
    host.start()
    try:
        assert host.process is not None
        resource.prlimit(host.process.pid, resource.RLIMIT_NOFILE, (200, 200))
        with Slowloris(host.port, 400, seconds=3):
            time.sleep(3)
        wait_until(lambda: http_get(host.url + "/healthz", timeout=2)[0] == 200, timeout=20)
        log = host.log()
    finally:
        host.stop()

    failing = [line for line in log.splitlines() if "too many open files" in line]
    assert 1 <= len(failing) <= 3, log[-3000:]
    assert "times since" in failing[0]
    assert len(log) < 20_000, log[-3000:]

"""What crosses the sandbox boundary is bounded and paid for by the right side."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import quote

import pytest

from tests.support import HostProcess, http_get, place_plugin


def _send(url: str, body: bytes, method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def lab_host(build, compiled_dir, tmp_path_factory):
    host = HostProcess(
        workdir=tmp_path_factory.mktemp("lab-host"),
        compiled_dir=compiled_dir,
        settings={"plugins": {"queue_limit": 8}},
    )
    place_plugin(build("lab"), host.plugins_dir)
    place_plugin(build("hello"), host.plugins_dir)
    huge_page = {
        "return PAGE.format(temperature=temperature, humidity=humidity)": 'return "x" * (5 << 20)'
    }
    place_plugin(build("demo-dashboard", replace=huge_page, label="demo-huge"), host.plugins_dir)
    host.start()
    yield host
    host.stop()


def test_large_request_bodies_are_not_charged_to_the_plugin(lab_host):
    url = f"{lab_host.url}/plugins/lab/echo"
    body = b"a" * (900 << 10)

    answers = [_send(url, body) for _ in range(4)]

    assert answers == [(200, f"lab POST /echo  {len(body)}")] * 4
    lab = lab_host.plugin("lab")
    assert lab["state"] == "running"
    assert lab["trap_count"] == 0


def test_a_binary_request_body_reaches_the_plugin_as_base64(lab_host):
    body = bytes(range(256)) * 4  # not UTF-8

    status, text = _send(f"{lab_host.url}/plugins/lab/echo", body)

    assert (status, text) == (200, "lab POST /echo  1368")  # base64 of 1,024 bytes


def test_a_binary_response_is_decoded_from_base64(lab_host):
    with urllib.request.urlopen(f"{lab_host.url}/plugins/lab/binary", timeout=10) as response:
        assert response.read() == bytes(range(256))


def test_an_oversized_response_is_refused_and_charged_to_the_plugin(lab_host):
    status, page = http_get(f"{lab_host.url}/plugins/lab/big/{(4 << 20) + 100_000}")

    assert status == 500
    assert "bad-output" in page
    assert "over the 4194304 limit" in page
    lab = lab_host.plugin("lab")
    assert lab["traps"].get("bad-output") == 1
    assert http_get(f"{lab_host.url}/plugins/lab/big/1000")[1] == "x" * 1000


def test_a_demo_page_over_the_response_limit_is_refused_before_it_is_copied(lab_host):
    status, page = http_get(f"{lab_host.url}/plugins/demo-dashboard/")

    assert status == 500
    assert "bad-output" in page
    assert "limit is 4194304" in page


def test_a_plugin_cannot_forge_host_log_lines(lab_host):
    forged = "2026-01-01 00:00:00,000 ERROR device_host.host: pwned"

    status, _ = http_get(f"{lab_host.url}/plugins/lab/say?hi%0A{quote(forged)}%0D%1B[2J")

    assert status == 200
    log = lab_host.log()
    assert f"hi\\n{forged}\\r\\x1b[2J" in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())


def test_a_flooded_plugin_answers_busy_at_once_and_others_keep_serving(lab_host):
    lab, hello = Counter[int](), Counter[tuple[int, str]]()
    lock = threading.Lock()
    traps_before = lab_host.plugin("lab")["trap_count"]

    def flood() -> None:
        answer = http_get(f"{lab_host.url}/plugins/lab/spin/150", timeout=60)
        with lock:
            lab[answer[0]] += 1

    threads = [threading.Thread(target=flood) for _ in range(48)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        answer = http_get(f"{lab_host.url}/plugins/hello/", timeout=10)
        hello[answer] += 1
    for thread in threads:
        thread.join(60)

    assert hello == {(200, "hello from version 1"): 10}
    assert lab[200] >= 2
    assert lab[503] >= 1, lab
    assert set(lab) <= {200, 503}
    assert lab_host.plugin("lab")["trap_count"] == traps_before

"""A broken release costs no failed request: the version it replaced answers for it."""

from __future__ import annotations

import time
import urllib.request

from tests.support import Hammer, http_get, place_plugin, wait_until

HANGING = {
    '        return Response(200, [("content-type", "text/plain")], Body_Text(GREETING))': (
        "        while True:\n            pass"
    )
}


def _post(url: str) -> int:
    request = urllib.request.Request(url, data=b"x", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_release_that_hangs_fails_no_request_and_is_reverted(host_process, build):
    good = build("hello")
    hanging = build("hello", replace=HANGING, version="2.0.0", label="hello-hangs")
    folder = place_plugin(good, host_process.plugins_dir)
    host_process.start()
    url = f"{host_process.url}/plugins/hello/"

    place_plugin(hanging, host_process.plugins_dir, folder=folder.name)
    wait_until(lambda: host_process.plugin("hello").get("version") == "2.0.0", 30, "v2 serving")
    post_status = _post(url)
    with Hammer(url) as hammer:
        wait_until(
            lambda: any(e["kind"] == "reverted" for e in host_process.healthz()["events"]),
            30,
            "the slot to go back to 1.0.0",
        )
        time.sleep(0.3)

    # Every GET while the bad release was serving was answered by version 1.
    assert set(hammer.answers) == {(200, "hello from version 1")}, hammer.answers
    assert sum(hammer.answers.values()) > 20
    # A POST is not safe to replay, so the trap it met on the new version is its answer.
    assert post_status == 500
    plugin = host_process.plugin("hello")
    assert plugin["version"] == "1.0.0"
    assert plugin["state"] == "running"
    assert plugin["traps"].get("timeout", 0) >= 3
    assert plugin["fallbacks"] >= 1
    assert http_get(url) == (200, "hello from version 1")

"""A failing or hung DHT22 reaches plugins as an error value, fast, and never stalls a request."""

from __future__ import annotations

import json
import time

from tests.support import http_get, place_plugin, wait_until


def _sensor_state(host):  # type: ignore[no-untyped-def]
    return host.healthz()["sensors"][0]


def test_checksum_failures_reach_the_plugin_as_an_error(host_process, build):
    host_process.settings = {"sensor": {"failure_rate": 1.0}}
    place_plugin(build("lab"), host_process.plugins_dir)
    host_process.start()

    wait_until(lambda: _sensor_state(host_process)["reads_failed"] > 0, what="a failed read")
    status, body = http_get(f"{host_process.url}/plugins/lab/sensor/4")

    assert status == 409
    assert body in {"error checksum", "error timeout"}
    assert _sensor_state(host_process)["last_error"] in {"checksum", "timeout"}


def test_a_hung_sensor_never_slows_a_plugin_call(host_process, build):
    host_process.settings = {"sensor": {"hang": True, "read_timeout_s": 0.5}}
    place_plugin(build("lab"), host_process.plugins_dir)
    host_process.start()

    wait_until(lambda: _sensor_state(host_process)["last_error"] == "timeout", what="timeout")
    started = time.monotonic()
    status, body = http_get(f"{host_process.url}/plugins/lab/sensor/4")

    assert (status, body) == (409, "error timeout")
    assert time.monotonic() - started < 0.5
    assert "hung" in _sensor_state(host_process)["last_error_message"]


def test_a_dead_sensor_is_reported_unavailable(host_process, build):
    host_process.settings = {"sensor": {"dead": True}}
    place_plugin(build("lab"), host_process.plugins_dir)
    host_process.start()

    wait_until(lambda: _sensor_state(host_process)["last_error"], what="an error")

    assert http_get(f"{host_process.url}/plugins/lab/sensor/4") == (409, "error unavailable")


def test_readings_are_served_as_json_with_their_age(host_process, build):
    place_plugin(build("hello"), host_process.plugins_dir)
    host_process.start()

    def fetch():  # type: ignore[no-untyped-def]
        return json.loads(http_get(f"{host_process.url}/api/readings")[1])

    wait_until(lambda: len(fetch()["history"].get("dht22:4", [])) > 3, what="4 readings")
    readings = fetch()

    assert readings["latest"]["source"] == "dht22:4"
    assert readings["latest"]["age_s"] < 5
    assert len(readings["history"]["dht22:4"]) > 3

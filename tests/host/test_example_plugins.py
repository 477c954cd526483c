"""The example plugins, as a person and the seed's demo would use them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.support import HostProcess, browse, http_get, place_plugin, wait_until

EXAMPLES = ("dashboard", "thermostat", "demo-sensor", "demo-dashboard")


def _start(host: HostProcess, build, **sensor: object) -> HostProcess:  # type: ignore[no-untyped-def]
    host.settings = {"sensor": {"interval_s": 0.5, **sensor}}
    for name in EXAMPLES:
        place_plugin(build(name), host.plugins_dir)
    host.start()
    return host


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:
    host = _start(HostProcess(tmp_path_factory.mktemp("examples"), compiled_dir), build)
    yield host
    assert host.stop() == 0, host.log()


def test_every_example_plugin_is_running(host):
    states = {p["name"]: p["state"] for p in host.healthz()["plugins"]}

    assert states == dict.fromkeys(EXAMPLES, "running")


def test_the_dashboard_shows_the_live_reading_and_a_history_chart_in_a_browser(host):
    wait_until(lambda: len(json.loads(http_get(f"{host.url}/api/readings")[1])["history"]) > 0)

    dom = browse(f"{host.url}/", "dashboard.png")

    assert "<h1>WASI Python Dashboard</h1>" in dom
    assert re.search(r"\d+\.\d\s*°C", dom), "no temperature on the page"
    assert re.search(r"\d+\.\d\s*%", dom), "no humidity on the page"
    points = re.search(r'<polyline[^>]*points="([^"]+)"', dom)
    assert points is not None and len(points.group(1).split()) >= 2, "no history chart"
    assert re.search(r"Temperature, last \d+ s: \d+\.\d to \d+\.\d °C", dom)


def test_the_dashboard_reading_endpoint_returns_json(host):
    status, body = http_get(f"{host.url}/plugins/dashboard/reading.json")
    reading = json.loads(body)

    assert status == 200
    assert reading["error"] is None
    assert 0 <= reading["age_s"] < 10


def test_an_unknown_dashboard_path_is_a_404(host):
    assert http_get(f"{host.url}/plugins/dashboard/nope")[0] == 404


def test_a_plugin_written_for_the_original_demo_renders_the_latest_reading(host):
    status, page = http_get(f"{host.url}/plugins/demo-dashboard/")

    assert status == 200
    assert "WASI Python Dashboard (demo contract)" in page
    assert re.search(r"\d+\.\d", page)


def test_a_sensor_plugin_of_the_original_demo_is_polled_into_the_readings(host):
    def demo_history():  # type: ignore[no-untyped-def]
        history = json.loads(http_get(f"{host.url}/api/readings")[1])["history"]
        return history.get("demo-sensor/dht22-gpio4")

    readings = wait_until(demo_history, timeout=15, what="a reading polled from demo-sensor")

    assert 5 < readings[-1]["temperature_c"] < 40


def test_the_dashboard_shows_a_failing_sensor_as_an_error(tmp_path, compiled_dir, build):
    host = _start(HostProcess(tmp_path, compiled_dir), build, dead=True)
    try:
        wait_until(lambda: host.healthz()["sensors"][0]["last_error"], what="a sensor error")
        dom = browse(f"{host.url}/", "dashboard-sensor-failing.png")
    finally:
        host.stop()

    assert "Sensor unavailable" in dom
    assert "No readings in the last 5 minutes" in dom


def test_the_thermostat_runs_the_fan_when_it_is_warm(tmp_path, compiled_dir, build):
    host = _start(HostProcess(tmp_path, compiled_dir), build, base_temperature_c=30.0)
    try:
        wait_until(lambda: host.healthz()["gpio"]["17"] is True, timeout=20, what="fan on")
        # The tick drives the pin first and logs the switch right after, on a low-priority
        # thread: give the line its moment instead of racing it.
        logged = wait_until(
            lambda: re.search(r"plugin.thermostat: fan on at \d+\.\d °C \(switch #1\)", host.log()),
            timeout=10,
            what="the fan switch in the log",
        )
    finally:
        host.stop()

    assert logged

"""The original demo, completely: plugins built with its own command, its data flow, ``/api``.

The host polls a demo sensor plugin every 3 s; demo dashboards render that plugin's reading
(the host's own sensor only when no sensor plugin has a fresh one); ``GET /api`` answers the
demo's JSON, which the demo's page fetches every 2 s.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, HostProcess, browse, build_against, http_get, wait_until

HERE = Path(__file__).parent
DEMO_WIT = REPO / "wit" / "demo"


def _demo_folder(
    plugins_dir: Path, name: str, world: str, source: Path, wasm: str, extra: str = ""
) -> None:
    """A folder as a demo author makes it: the demo's build wrote ``wasm``, not ``<name>.wasm``."""
    folder = plugins_dir / name
    folder.mkdir(parents=True)
    build_against(DEMO_WIT, world, source, folder / wasm)
    (folder / "manifest.toml").write_text(
        f'name = "{name}"\nversion = "0.1.0"\nworld = "demo:{world}"\ncomponent = "{wasm}"\n{extra}'
    )


def _api(host: HostProcess) -> dict[str, object]:
    status, body = http_get(f"{host.url}/api")
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def _sensor_ids(host: HostProcess) -> list[str]:
    return [r["sensor_id"] for r in _api(host)["readings"]]  # type: ignore[attr-defined, index]


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path_factory.mktemp("demo"), compiled_dir)
    host.settings = {"sensor": {"interval_s": 0.5, "base_temperature_c": 20.0}}
    plugins = host.plugins_dir
    _demo_folder(
        plugins,
        "greenhouse",
        "sensor-plugin",
        HERE / "demo_greenhouse",
        "sensor.wasm",
        "\n[capabilities]\ndht22 = [4]\n",
    )
    _demo_folder(
        plugins,
        "demo-dashboard",
        "dashboard-plugin",
        REPO / "plugins" / "demo-dashboard",
        "dashboard.wasm",
    )
    _demo_folder(plugins, "live", "dashboard-plugin", HERE / "demo_live_page", "dashboard.wasm")
    host.start()
    wait_until(lambda: "greenhouse-1" in _sensor_ids(host), timeout=15, what="a first poll")
    wait_until(lambda: "dht22-gpio4" in _sensor_ids(host), what="a host sample")
    yield host
    assert host.stop() == 0, host.log()


def test_api_answers_json_in_the_original_demos_shape(host):
    with urllib.request.urlopen(f"{host.url}/api") as response:
        content_type = response.headers["Content-Type"]
        answer = json.loads(response.read())

    assert content_type.startswith("application/json")
    assert set(answer) == {"readings", "last_update"}
    for reading in answer["readings"]:
        assert set(reading) == {"sensor_id", "temperature", "humidity", "timestamp_ms"}
        assert isinstance(reading["timestamp_ms"], int)


def test_api_lists_the_sensor_plugins_reading_first_then_the_hosts_own_sensor(host):
    readings = _api(host)["readings"]

    assert [r["sensor_id"] for r in readings] == ["greenhouse-1", "dht22-gpio4"]  # type: ignore[index]
    assert readings[0]["temperature"] == 33.4 and readings[0]["humidity"] == 61.0  # type: ignore[index]
    assert 5 < readings[1]["temperature"] < 35  # type: ignore[index]


def test_last_update_is_the_newest_timestamp_in_ms(host):
    answer = _api(host)

    assert answer["last_update"] == max(r["timestamp_ms"] for r in answer["readings"])  # type: ignore[attr-defined]


def test_a_demo_dashboard_renders_the_sensor_plugins_reading(host):
    status, page = http_get(f"{host.url}/plugins/demo-dashboard/")

    assert status == 200
    assert "33.4 °C" in page and "61.0 %" in page


def test_the_demo_page_fetching_api_every_2_s_shows_the_readings_in_a_browser(host):
    dom = browse(f"{host.url}/plugins/live/", "demo-live-page.png", settle_ms=5000)

    assert "Rendered with 33.4 °C" in dom
    assert "<li>greenhouse-1: 33.4 °C</li>" in dom
    assert re.search(r"<li>dht22-gpio4: \d+\.\d °C</li>", dom)


def test_without_the_sensor_plugin_demo_dashboards_render_the_hosts_sensor(host):
    shutil.rmtree(host.plugins_dir / "greenhouse")

    wait_until(lambda: _sensor_ids(host) == ["dht22-gpio4"], timeout=10, what="greenhouse gone")
    status, page = http_get(f"{host.url}/plugins/demo-dashboard/")

    assert status == 200
    assert "33.4 °C" not in page
    assert re.search(r"\d+\.\d °C", page)


def test_api_of_a_host_without_readings_has_a_null_last_update(tmp_path, compiled_dir):
    host = HostProcess(tmp_path, compiled_dir)
    host.settings = {"sensor": {"driver": "none"}}
    host.start()
    try:
        answer = _api(host)
    finally:
        host.stop()

    assert answer == {"readings": [], "last_update": None}

"""A hostile demo sensor plugin, in a real host: it cannot touch the host's own readings."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from device_host.readings import MAX_SERIES_PER_PLUGIN
from tests.support import REPO, HostProcess, build_against, http_get, wait_until

SPOOFER_SOURCE = Path(__file__).parent / "spoofer"
MANIFEST = """name = "dht22"
version = "1.0.0"
world = "demo:sensor-plugin"

[capabilities]
dht22 = [4]
"""


def _history(host: HostProcess) -> dict[str, list[dict[str, float]]]:
    return json.loads(http_get(f"{host.url}/api/readings")[1])["history"]  # type: ignore[no-any-return]


def _refused(host: HostProcess) -> dict[str, float]:
    text = http_get(f"{host.url}/metrics")[1]
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "plugin_readings_refused"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["plugin"] == "dht22"
    }


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path_factory.mktemp("spoofed"), compiled_dir)
    host.settings = {"sensor": {"interval_s": 0.5, "base_temperature_c": 20.0}}
    folder = host.plugins_dir / "dht22"
    folder.mkdir(parents=True)
    (folder / "manifest.toml").write_text(MANIFEST)
    build_against(REPO / "wit" / "demo", "sensor-plugin", SPOOFER_SOURCE, folder / "dht22.wasm")
    host.start()
    wait_until(lambda: "dht22/4" in _history(host), timeout=20, what="a poll of the spoofer")
    wait_until(lambda: len(_refused(host)) >= 4, timeout=10, what="refusals counted")
    yield host
    assert host.stop() == 0, host.log()


def test_a_plugin_named_dht22_writes_into_its_own_series_not_the_hosts(host):
    history = _history(host)

    assert [r["temperature_c"] for r in history["dht22/4"]][-1] == 30.5
    assert all(r["temperature_c"] < 40 for r in history["dht22:4"])


def test_the_host_keeps_recording_its_own_samples_despite_a_reading_from_the_future(host):
    before = _history(host)["dht22:4"][-1]["taken_at"]

    after = wait_until(
        lambda: _history(host)["dht22:4"][-1]["taken_at"] > before, what="a newer host sample"
    )

    assert after


def test_the_latest_reading_is_the_hosts_own_sensor(host):
    latest = json.loads(http_get(f"{host.url}/api/readings")[1])["latest"]

    assert latest["source"] == "dht22:4"
    assert latest["temperature_c"] < 40


def test_a_new_sensor_id_per_poll_does_not_grow_the_series(host):
    polled_twice = wait_until(
        lambda: _refused(host).get("too-many-series", 0) > 12, timeout=15, what="a second poll"
    )
    plugin_series = [name for name in _history(host) if name.startswith("dht22/")]

    assert polled_twice
    assert len(plugin_series) == MAX_SERIES_PER_PLUGIN


def test_every_refusal_is_counted_by_reason(host):
    refused = _refused(host)

    assert {"future-timestamp", "out-of-range", "bad-sensor-id", "too-many-series"} <= set(refused)


def test_refusals_are_logged_naming_the_plugin_but_not_once_per_reading(host):
    lines = [line for line in host.log().splitlines() if "reading of sensor" in line]

    assert lines and "plugin dht22: reading of sensor '4' refused: taken 3600 s" in lines[0]
    assert len(lines) < sum(_refused(host).values())


def test_removing_the_plugin_drops_its_series(host):
    shutil.rmtree(host.plugins_dir / "dht22")

    wait_until(
        lambda: not any(name.startswith("dht22/") for name in _history(host)),
        timeout=10,
        what="the plugin's series dropped",
    )

    assert "dht22:4" in _history(host)

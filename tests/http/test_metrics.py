"""``/metrics``: prometheus-client's own parser reads it; families whole, values exact."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from device_host.metrics import COUNTERS, GAUGES, HISTOGRAMS, Metrics
from tests.support import HostProcess, http_get, place_plugin, wait_until

MANIFEST = """name = "hello"
version = "1.0.0"
world = "dashboard"

[limits]
memory-mib = 64
"""
DECLARED = {**COUNTERS, **HISTOGRAMS, **GAUGES}


def _scrape(host: HostProcess) -> str:
    return http_get(f"{host.url}/metrics")[1]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path_factory.mktemp("metrics"), compiled_dir)
    place_plugin(build("hello"), host.plugins_dir, manifest=MANIFEST)
    host.start()
    wait_until(lambda: host.healthz()["sensors"][0]["reading"], what="a first sensor reading")
    http_get(f"{host.url}/plugins/hello/")
    yield host
    assert host.stop() == 0, host.log()


def test_the_scrape_is_served_as_prometheus_text_format_0_0_4(host):
    with urllib.request.urlopen(f"{host.url}/metrics") as response:
        content_type = response.headers["Content-Type"]

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_every_family_is_declared_once_with_its_help_and_its_lines_are_contiguous(host):
    text = _scrape(host)
    families = list(text_string_to_metric_families(text))
    current, seen = "", []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
            seen.append(current)
        elif line and not line.startswith("#"):
            assert line.startswith(current), f"{line!r} is outside the {current} family"

    assert len(seen) == len(set(seen))
    assert len(families) == len(seen)
    for family in families:
        declared = DECLARED.get(family.name) or DECLARED[family.name + "_total"]
        assert family.documentation == declared.help


def test_a_64_mib_memory_limit_is_exactly_67108864(host):
    samples = _samples(_scrape(host))

    assert samples[("plugin_memory_limit_bytes", frozenset({("plugin", "hello")}))] == 67108864


def test_point_in_time_gauges_describe_the_running_host(host):
    samples = _samples(_scrape(host))

    assert samples[("plugin_up", frozenset({("plugin", "hello")}))] == 1
    assert samples[("plugin_instances", frozenset({("plugin", "hello")}))] >= 1
    assert samples[("plugin_memory_bytes", frozenset({("plugin", "hello")}))] > 1_000_000
    assert 0 <= samples[("sensor_reading_age_seconds", frozenset({("pin", "4")}))] < 5
    rss = samples[("process_rss_bytes", frozenset())]
    assert rss > 50_000_000 and rss == int(rss) and rss % 1024 == 0


def test_requests_are_counted_exactly_by_route_and_status(host):
    route = frozenset({("route", "/plugins/{name}/{tail}"), ("status", "200")})
    before = _samples(_scrape(host)).get(("http_requests_total", route), 0.0)

    for _ in range(3):
        assert http_get(f"{host.url}/plugins/hello/x")[0] == 200
    samples = _samples(_scrape(host))

    assert samples[("http_requests_total", route)] == before + 3
    calls = samples[("plugin_call_seconds_count", frozenset({("plugin", "hello")}))]
    assert calls == int(calls) and calls >= 4


def test_latency_histograms_have_cumulative_buckets_ending_in_the_count(host):
    samples = _samples(_scrape(host))
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "plugin_call_seconds_bucket"
    )

    assert [value for _, value in buckets] == sorted(value for _, value in buckets)
    assert buckets[-1] == (
        float("inf"),
        samples[("plugin_call_seconds_count", frozenset({("plugin", "hello")}))],
    )


def test_label_values_with_quotes_backslashes_and_newlines_are_escaped():
    metrics = Metrics()
    hostile = 'a "quoted" C:\\path\nsecond_line 1'

    metrics.inc("http_requests_total", route=hostile, status="200")
    text = metrics.exposition().decode()

    assert 'route="a \\"quoted\\" C:\\\\path\\nsecond_line 1"' in text
    assert not any(line.startswith("second_line") for line in text.splitlines())
    samples = _samples(text)
    assert samples[("http_requests_total", frozenset({("route", hostile), ("status", "200")}))] == 1


def test_a_metric_that_is_not_declared_is_refused():
    with pytest.raises(KeyError):
        Metrics().inc("undeclared_total")


def test_forgetting_a_removed_plugin_drops_its_series_and_keeps_the_others():
    metrics = Metrics()
    for plugin in ("gone", "kept"):
        metrics.inc("plugin_traps_total", plugin=plugin, kind="timeout")
        metrics.observe("plugin_call_seconds", 0.01, plugin=plugin)
    metrics.inc("http_requests_total", route="/", status="200")

    metrics.forget_plugin("gone")
    labels = [
        sample.labels
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    ]

    assert not any(sample.get("plugin") == "gone" for sample in labels)
    assert {"plugin": "kept", "kind": "timeout"} in labels
    assert {"route": "/", "status": "200"} in labels

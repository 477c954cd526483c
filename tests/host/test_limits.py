"""A misbehaving plugin is stopped within its budget; the host and other plugins keep serving."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import HostProcess, http_get, place_plugin

BUDGET_S = 0.2  # lab's call-timeout-ms
SLACK_S = 1.0  # trap handling, a fresh Store, HTTP and a loaded 2-core machine


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, build) -> Iterator[HostProcess]:
    host = HostProcess(
        workdir=tmp_path_factory.mktemp("limits"),
        compiled_dir=compiled_dir,
        settings={"plugins": {"quarantine_traps": 1000}},
    )
    place_plugin(build("lab"), host.plugins_dir)
    place_plugin(build("hello"), host.plugins_dir)
    host.start()
    yield host
    assert host.stop() == 0, host.log()


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("loop", "timeout"),
        ("sleep", "blocking-call"),
        ("recurse", "crash"),
        ("alloc", "out-of-memory"),
        ("raise", "crash"),
        ("exit", "exit"),
    ],
)
def test_a_misbehaving_call_is_stopped_within_budget(host, action, kind):
    started = time.monotonic()
    status, page = http_get(f"{host.url}/plugins/lab/{action}")
    elapsed = time.monotonic() - started

    assert status == 500
    assert f"{kind}:" in page
    assert elapsed < BUDGET_S + SLACK_S


@pytest.mark.parametrize("action", ["loop", "sleep", "recurse", "alloc", "raise", "exit"])
def test_after_a_trap_the_host_and_the_plugin_keep_serving(host, action):
    http_get(f"{host.url}/plugins/lab/{action}")

    assert http_get(f"{host.url}/plugins/hello/")[0] == 200
    assert http_get(f"{host.url}/plugins/lab/ok") == (200, "lab GET /ok  0")


def test_traps_are_counted_by_kind_in_healthz(host):
    http_get(f"{host.url}/plugins/lab/raise")

    lab = host.plugin("lab")

    assert lab["state"] == "running"
    assert lab["traps"]["crash"] >= 1
    assert "ValueError: lab asked to raise" in lab["last_error"]


def test_a_raised_exception_reaches_the_host_log_with_its_line(host):
    http_get(f"{host.url}/plugins/lab/raise")

    assert 'File "/0/app.py"' in host.log()
    assert "ValueError: lab asked to raise" in host.log()


def test_traps_show_in_metrics(host):
    http_get(f"{host.url}/plugins/lab/loop")

    metrics = http_get(f"{host.url}/metrics")[1]

    assert 'plugin_traps_total{kind="timeout",plugin="lab"}' in metrics
    assert 'plugin_call_seconds_count{plugin="lab"}' in metrics
    assert "process_pss_bytes" in metrics


def test_metrics_report_the_resident_linear_memory_of_each_plugin(host):
    http_get(f"{host.url}/plugins/lab/ok")

    metrics = http_get(f"{host.url}/metrics")[1]
    values = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("plugin_memory_bytes")
    }

    assert values['plugin_memory_bytes{plugin="lab"}'] > 1_000_000
    assert values['plugin_memory_bytes{plugin="lab"}'] < 48 << 20

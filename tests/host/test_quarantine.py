"""A plugin that keeps crashing is quarantined with back-off, and comes back afterwards."""

from __future__ import annotations

from tests.support import http_get, place_plugin, wait_until


def test_repeated_traps_quarantine_the_plugin_then_it_is_released(host_process, build):
    host_process.settings = {
        "plugins": {"quarantine_traps": 2, "quarantine_window_s": 30, "quarantine_backoff_s": 2}
    }
    place_plugin(build("lab"), host_process.plugins_dir)
    place_plugin(build("hello"), host_process.plugins_dir)
    host_process.start()

    http_get(f"{host_process.url}/plugins/lab/raise")
    http_get(f"{host_process.url}/plugins/lab/raise")
    status, page = http_get(f"{host_process.url}/plugins/lab/ok")

    assert status == 503
    assert "quarantined" in page
    assert host_process.plugin("lab")["state"] == "quarantined"
    assert host_process.healthz()["status"] == "degraded"
    assert http_get(f"{host_process.url}/plugins/hello/")[0] == 200
    kinds = [e["kind"] for e in host_process.healthz()["events"] if e["plugin"] == "lab"]
    assert kinds[-1] == "quarantined"

    wait_until(lambda: host_process.plugin("lab")["state"] == "running", timeout=10)
    assert http_get(f"{host_process.url}/plugins/lab/ok")[0] == 200


def test_a_relapse_doubles_the_quarantine(host_process, build):
    host_process.settings = {
        "plugins": {"quarantine_traps": 1, "quarantine_window_s": 30, "quarantine_backoff_s": 1}
    }
    place_plugin(build("lab"), host_process.plugins_dir)
    host_process.start()

    http_get(f"{host_process.url}/plugins/lab/exit")
    first = host_process.plugin("lab")["quarantined_for_s"]
    wait_until(lambda: host_process.plugin("lab")["state"] == "running", timeout=10)
    http_get(f"{host_process.url}/plugins/lab/exit")
    second = host_process.plugin("lab")["quarantined_for_s"]

    assert 0 < first <= 1.0
    assert 1.0 < second <= 2.0
    assert host_process.plugin("lab")["times_quarantined"] == 2

"""A real host on a local plugins directory: output pins are not shared, a refusal is
cleared when the good file comes back, and a plugin's kv writes stop at its budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HostProcess, http_get, place_plugin, wait_until


@pytest.fixture(scope="module")
def built(build) -> dict[str, Path]:
    return {"hello": build("hello"), "lab": build("lab")}


@pytest.fixture(scope="module")
def host(tmp_path_factory, compiled_dir, built) -> Iterator[HostProcess]:
    host = HostProcess(workdir=tmp_path_factory.mktemp("host"), compiled_dir=compiled_dir)
    place_plugin(built["hello"], host.plugins_dir)
    budgeted = (built["lab"] / "manifest.toml").read_text() + "kv-write-bytes-per-min = 1024\n"
    place_plugin(built["lab"], host.plugins_dir, manifest=budgeted)
    host.start()
    yield host
    host.stop()


def test_a_second_plugin_asking_for_a_driven_output_pin_is_refused(host, built):
    rival = (built["lab"] / "manifest.toml").read_text()
    rival = rival.replace('"lab"', '"lab-two"\ncomponent = "lab.wasm"', 1)

    place_plugin(built["lab"], host.plugins_dir, folder="lab-two", manifest=rival)

    refused = wait_until(lambda: _reported(host, "lab-two"), timeout=30, what="lab-two")

    assert refused["state"] == "failed"
    assert refused["load_error"] == "gpio out pin 17 already granted to plugin lab 1.0.0"
    assert host.plugin("lab")["state"] == "running"


def test_restoring_the_serving_file_after_a_refusal_clears_the_load_error(host, built):
    component = host.plugins_dir / "hello" / "hello.wasm"
    component.unlink()
    component.write_bytes(b"not a component")
    wait_until(lambda: host.plugin("hello")["load_error"], timeout=30, what="the refusal")
    assert http_get(f"{host.url}/plugins/hello/")[1] == "hello from version 1"

    place_plugin(built["hello"], host.plugins_dir)

    wait_until(
        lambda: host.plugin("hello")["load_error"] is None, timeout=30, what="a cleared error"
    )
    assert host.plugin("hello")["state"] == "running"


def test_kv_writes_beyond_the_plugins_budget_are_refused_as_rate_limited(host):
    answers = [http_get(f"{host.url}/plugins/lab/kv/put/k/{40 + n % 2}") for n in range(40)]

    stored = answers.index((409, "error rate-limited"))
    assert set(answers[:stored]) == {(200, "stored")}
    assert 1024 // 42 <= stored <= 1024 // 41 + 1  # one minute's budget, and a little refill
    expected = 40 + (stored - 1) % 2
    assert http_get(f"{host.url}/plugins/lab/kv/get/k") == (200, str(expected))


def _reported(host: HostProcess, name: str) -> dict[str, object] | None:
    return next((p for p in host.healthz()["plugins"] if p["name"] == name), None)

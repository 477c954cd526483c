"""Hot swap: a changed component takes over without a restart and without a failed request."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support import Hammer, HostProcess, http_get, place_plugin, wait_until


def _replace_component(built: Path, folder: Path) -> None:
    """Swaps the file in with one rename, as a build or a deployment would."""
    staged = folder / ".incoming.wasm.tmp"
    shutil.copyfile(built / "hello.wasm", staged)
    shutil.copyfile(built / "manifest.toml", folder / "manifest.toml")
    os.replace(staged, folder / "hello.wasm")


def _wait_for_body(host: HostProcess, body: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(f"{host.url}/plugins/hello/")[1] == body:
            return
        time.sleep(0.05)
    raise AssertionError(f"never served {body!r}\n{host.log()}")


@pytest.fixture
def versions(build):
    return {
        1: build("hello"),
        2: build("hello", replace={"version 1": "version 2"}, version="2.0.0", label="hello-v2"),
        3: build("hello", replace={"version 1": "version 3"}, version="3.0.0", label="hello-v3"),
    }


def test_a_new_version_takes_over_under_load_with_no_failed_request(host_process, versions):
    folder = place_plugin(versions[1], host_process.plugins_dir)
    host_process.start()

    with Hammer(f"{host_process.url}/plugins/hello/") as hammer:
        time.sleep(0.5)
        _replace_component(versions[2], folder)
        _wait_for_body(host_process, "hello from version 2")
        _replace_component(versions[3], folder)
        _wait_for_body(host_process, "hello from version 3")
        time.sleep(0.5)

    assert set(hammer.answers) == {
        (200, "hello from version 1"),
        (200, "hello from version 2"),
        (200, "hello from version 3"),
    }
    assert sum(hammer.answers.values()) > 50
    assert host_process.plugin("hello")["version"] == "3.0.0"


def test_a_version_failing_its_self_check_never_replaces_the_working_one(
    host_process, versions, build
):
    folder = place_plugin(versions[1], host_process.plugins_dir)
    host_process.start()

    with Hammer(f"{host_process.url}/plugins/hello/") as hammer:
        _replace_component(build("bad-self-check"), folder)
        wait_until(lambda: host_process.plugin("hello")["load_error"], what="the refusal")
        time.sleep(0.5)

    assert set(hammer.answers) == {(200, "hello from version 1")}
    hello = host_process.plugin("hello")
    assert hello["version"] == "1.0.0"
    assert hello["load_error"] == "self-check failed: calibration table missing"
    assert any(
        e["kind"] == "refused" and e["version"] == "2.0.0" for e in host_process.healthz()["events"]
    )


def test_garbage_in_place_of_the_component_keeps_the_working_version(host_process, versions):
    folder = place_plugin(versions[1], host_process.plugins_dir)
    host_process.start()

    staged = folder / ".incoming.tmp"
    staged.write_bytes(b"\x7fELF not a component at all")
    os.replace(staged, folder / "hello.wasm")
    wait_until(lambda: host_process.plugin("hello")["load_error"], what="the refusal")

    assert http_get(f"{host_process.url}/plugins/hello/") == (200, "hello from version 1")
    assert "is not WebAssembly" in host_process.plugin("hello")["load_error"]


def test_a_new_plugin_folder_is_picked_up_without_restart(host_process, versions, build):
    place_plugin(versions[1], host_process.plugins_dir)
    host_process.start()

    place_plugin(build("lab"), host_process.plugins_dir)
    deadline = time.monotonic() + 60
    while http_get(f"{host_process.url}/plugins/lab/x")[0] != 200:
        assert time.monotonic() < deadline, host_process.log()
        time.sleep(0.1)

    assert {p["name"] for p in host_process.healthz()["plugins"]} == {"hello", "lab"}

"""What survives a restart: compiled components (no recompile) and each plugin's key-value store."""

from __future__ import annotations

from tests.support import HostProcess, http_get, place_plugin, wait_until


def _installed_detail(host: HostProcess, plugin: str) -> str:
    details = [
        e["detail"]
        for e in host.healthz()["events"]
        if e["plugin"] == plugin and e["kind"] == "installed"
    ]
    return details[-1]


def test_a_restart_loads_from_the_compiled_cache_without_compiling(tmp_path, build):
    host = HostProcess(workdir=tmp_path, compiled_dir=tmp_path / "compiled")
    place_plugin(build("hello"), host.plugins_dir)
    host.start()
    first = _installed_detail(host, "hello")
    assert host.stop() == 0

    host.start()
    second = _installed_detail(host, "hello")

    assert "fresh compile" in first
    assert "compiled cache" in second
    assert int(second.split("loaded in ")[1].split(" ms")[0]) < 1000
    assert http_get(f"{host.url}/plugins/hello/") == (200, "hello from version 1")
    assert len(list((tmp_path / "compiled").glob("*.cwasm"))) == 1


def test_a_corrupt_compiled_artifact_is_recompiled(tmp_path, build):
    host = HostProcess(workdir=tmp_path, compiled_dir=tmp_path / "compiled")
    place_plugin(build("hello"), host.plugins_dir)
    host.start()
    assert host.stop() == 0
    (artifact,) = (tmp_path / "compiled").glob("*.cwasm")
    artifact.write_bytes(artifact.read_bytes()[:4096])

    host.start()

    assert "fresh compile" in _installed_detail(host, "hello")
    assert http_get(f"{host.url}/plugins/hello/") == (200, "hello from version 1")


def test_the_key_value_store_survives_a_hot_swap_and_a_restart(host_process, build):
    place_plugin(build("lab"), host_process.plugins_dir)
    host_process.start()
    assert http_get(f"{host_process.url}/plugins/lab/kv/put/kept/12") == (200, "stored")

    newer = build("lab", replace={"lab served": "lab v2 served"}, version="1.1.0", label="lab-v2")
    place_plugin(newer, host_process.plugins_dir, folder="lab")
    host_process.wait_for_status("ok")
    wait_until(lambda: host_process.plugin("lab")["version"] == "1.1.0", what="lab 1.1.0")
    assert http_get(f"{host_process.url}/plugins/lab/kv/get/kept") == (200, "12")

    assert host_process.stop() == 0
    host_process.start()
    assert http_get(f"{host_process.url}/plugins/lab/kv/get/kept") == (200, "12")


def test_sigterm_stops_the_host_cleanly(host_process, build):
    place_plugin(build("hello"), host_process.plugins_dir)
    host_process.start()
    http_get(f"{host_process.url}/plugins/hello/")

    assert host_process.stop() == 0
    assert "panicked" not in host_process.log()

"""Loading a plugin version: what is refused, and the message that says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wasmtime

from device_host.runtime import GuestLog, LoadContext, load_version
from device_host.runtime._exports import HttpRequest
from fleet_common.errors import PluginLoadError
from fleet_common.manifest import load_manifest, parse_manifest
from tests.support import REPO, TEST_PLUGINS, build_against

WIT = REPO / "wit"


def _manifest(world: str = "dashboard", **capabilities: object):  # type: ignore[no-untyped-def]
    return parse_manifest(
        {"name": "probe", "version": "1.0.0", "world": world, "capabilities": capabilities}
    )


def _load(context: LoadContext, wasm: Path, manifest=None):  # type: ignore[no-untyped-def]
    manifest = manifest or _manifest()
    return load_version(context, manifest, wasm, GuestLog(manifest.name))


def _refusal(context: LoadContext, wasm: Path, manifest=None) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(PluginLoadError) as refused:
        _load(context, wasm, manifest)
    return refused.value.reason


def test_a_built_plugin_loads_and_answers(load_context, build):
    folder = build("hello")
    version = _load(load_context, folder / "hello.wasm", load_manifest(folder / "manifest.toml"))

    reply = version.respond(HttpRequest("GET", "/"), lambda: None)

    assert (reply.status, reply.body) == (200, b"hello from version 1")
    version.retire()


def test_text_is_refused_as_not_webassembly(load_context, tmp_path):
    fake = tmp_path / "fake.wasm"
    fake.write_text("def render(): return 'hi'\n")

    assert (
        _refusal(load_context, fake) == "is not WebAssembly (starts with 64 65 66 20 72 65 6e 64)"
    )


def test_an_empty_file_is_refused(load_context, tmp_path):
    empty = tmp_path / "empty.wasm"
    empty.write_bytes(b"")

    assert _refusal(load_context, empty) == "the component file is empty"


def test_a_core_module_is_refused_as_not_a_component(load_context, tmp_path):
    module = tmp_path / "core.wasm"
    module.write_bytes(wasmtime.wat2wasm('(module (func (export "render")))'))

    assert "core WebAssembly module, not a component" in _refusal(load_context, module)


def test_a_truncated_component_is_refused(load_context, build, tmp_path):
    whole = (build("hello") / "hello.wasm").read_bytes()
    truncated = tmp_path / "truncated.wasm"
    truncated.write_bytes(whole[: len(whole) // 3])

    assert _refusal(load_context, truncated).startswith("not a valid component")


def test_a_component_of_another_world_is_refused(load_context, build):
    wasm = build("hello") / "hello.wasm"

    reason = _refusal(load_context, wasm, _manifest(world="automation"))

    assert (
        "does not export fleet:plugin/control-loop@0.1.0, which world automation requires" in reason
    )
    assert "exports fleet:plugin/http-handler@0.1.0, which world automation does not have" in reason


def test_an_import_the_manifest_does_not_grant_is_refused_by_name(load_context, build):
    wasm = build("lab") / "lab.wasm"

    reason = _refusal(load_context, wasm, _manifest(dht22=[4], **{"kv-quota-bytes": 64}))

    assert reason == (
        "imports fleet:plugin/gpio@0.1.0, which its manifest does not grant "
        "(that needs [capabilities] gpio-out = [<pin>])"
    )


def test_a_failing_self_check_keeps_the_version_out(load_context, build):
    folder = build("bad-self-check")

    reason = _refusal(load_context, folder / "hello.wasm", load_manifest(folder / "manifest.toml"))

    assert reason == "self-check failed: calibration table missing"


@pytest.fixture(scope="module")
def impostor(tmp_path_factory) -> Path:
    source = TEST_PLUGINS / "impostor"
    output = tmp_path_factory.mktemp("impostor") / "impostor.wasm"
    return build_against(source / "wit", "fleet:plugin/impostor", source, output)


def test_an_export_with_the_wrong_signature_is_refused(load_context, impostor):
    reason = _refusal(load_context, impostor)

    assert (
        "exports fleet:plugin/http-handler@0.1.0#handle as func(path: string) -> string, "
        "but the contract says func(request: record{method: string"
    ) in reason


def test_an_import_the_host_does_not_provide_is_refused_by_name(load_context, impostor):
    reason = _refusal(load_context, impostor)

    assert "imports fleet:plugin/camera@0.1.0, which this host does not provide" in reason


def test_a_plugin_built_against_an_older_minor_contract_still_loads(load_context, tmp_path):
    """An interface that gained a function (dht22.last-good) still serves older plugins."""
    wit = tmp_path / "wit"
    shutil.copytree(WIT / "fleet", wit)
    sensors = (wit / "sensors.wit").read_text()
    start = sensors.index("    /// The most recent good reading")
    (wit / "sensors.wit").write_text(sensors[:start] + "}\n")
    (wit / "older.wit").write_text("world older { include dashboard; import dht22; }\n")
    source = TEST_PLUGINS / "older-reader"
    wasm = build_against(wit, "fleet:plugin/older", source, tmp_path / "older.wasm")

    version = _load(load_context, wasm, _manifest(dht22=[4]))
    reply = version.respond(HttpRequest("GET", "/"), lambda: None)

    assert reply.status == 200
    assert 5.0 < float(reply.body) < 40.0
    version.retire()

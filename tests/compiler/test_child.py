"""The compiler process: the artifact, its engine key, the limits on it, and what it answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from wasmtime.component import Component

from device_host.runtime import create_engine
from fleet_common.compiler.engines import ArtifactFormatError, elf_section, engine_key, section_key
from fleet_common.compiler.run import (
    CompileFailed,
    CompileJob,
    Interpreter,
    compile_in_child,
    engine_key_in_child,
)
from fleet_common.compiler.settings import EngineSettings, SettingsError
from tests.runtime.wat_components import memory_hog


@pytest.fixture(scope="module")
def hello_wasm(build) -> Path:  # type: ignore[no-untyped-def]
    return Path(build("hello") / "hello.wasm")


def _job(
    source: Path, artifact: Path | None, *, data_limit: int = 2 << 30, timeout_s: float = 600.0
) -> CompileJob:
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    return CompileJob(
        source, sha256, artifact, EngineSettings(), Interpreter(), data_limit, timeout_s
    )


def test_the_child_writes_an_artifact_and_reports_the_surface(tmp_path):
    source = memory_hog(tmp_path / "hog.wasm", memories=1, pages=1)

    compiled = compile_in_child(_job(source, tmp_path / "hog.cwasm"))

    assert compiled.surface.exports == {"test:memory/grow": {"grow": "func(pages: u32) -> u32"}}
    assert compiled.surface.imports == {}
    artifact = (tmp_path / "hog.cwasm").read_bytes()
    assert compiled.artifact_size == len(artifact)
    assert compiled.artifact_sha256 == hashlib.sha256(artifact).hexdigest()
    assert compiled.peak_rss_kib > 0 and compiled.cpu_seconds > 0


def test_the_engine_key_is_the_same_in_the_child_in_the_artifact_and_in_a_device(tmp_path):
    """What the control plane compiles for is exactly what a device reports it loads."""
    source = memory_hog(tmp_path / "hog.wasm", memories=1, pages=1)
    settings = EngineSettings()

    compiled = compile_in_child(_job(source, tmp_path / "hog.cwasm"))
    device = create_engine(settings)

    assert compiled.engine_key == engine_key(device)
    assert compiled.engine_key == engine_key_in_child(settings, Interpreter())
    assert section_key((tmp_path / "hog.cwasm").read_bytes()) == compiled.engine_key
    assert Component.deserialize_file(device, str(tmp_path / "hog.cwasm")) is not None


def test_a_cpu_feature_or_an_opt_level_is_part_of_the_key():
    baseline = engine_key(create_engine(EngineSettings()))

    assert engine_key(create_engine(EngineSettings(opt_level="none"))) != baseline
    assert engine_key(create_engine(EngineSettings(features=("has_sse3",)))) != baseline


def test_settings_that_no_engine_has_are_refused():
    with pytest.raises(SettingsError, match="unknown target"):
        EngineSettings(target="riscv64gc-unknown-linux-gnu")
    with pytest.raises(SettingsError, match="not an ISA feature flag"):
        EngineSettings(features=("opt_level=none",))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x7fELF\x01\x01" + bytes(60), b"\x7fELF\x02\x01" + bytes(58), b"\x00asm" * 20],
)
def test_bytes_that_are_no_artifact_have_no_engine_section(data):
    with pytest.raises(ArtifactFormatError):
        elf_section(data, b".wasmtime.engine")


def test_bytes_that_changed_since_they_were_hashed_are_not_compiled(tmp_path):
    source = memory_hog(tmp_path / "hog.wasm", memories=1, pages=1)
    job = CompileJob(source, "0" * 64, tmp_path / "hog.cwasm", EngineSettings())

    with pytest.raises(CompileFailed, match="is not the component with sha256") as failed:
        compile_in_child(job)

    assert failed.value.invalid
    assert not (tmp_path / "hog.cwasm").exists()


def test_a_compile_over_its_memory_ceiling_fails_in_the_child_only(hello_wasm, tmp_path):
    job = _job(hello_wasm, tmp_path / "hello.cwasm", data_limit=64 << 20)

    with pytest.raises(CompileFailed, match=r"its memory ceiling is 64 MiB") as failed:
        compile_in_child(job)

    assert not failed.value.invalid, "running out of compile memory is not the plugin's fault"
    assert not (tmp_path / "hello.cwasm").exists()


def test_a_compile_past_its_deadline_is_killed(hello_wasm, tmp_path):
    with pytest.raises(CompileFailed, match=r"compiling took longer than 0\.2 s"):
        compile_in_child(_job(hello_wasm, tmp_path / "hello.cwasm", timeout_s=0.2))

    assert not (tmp_path / "hello.cwasm").exists()

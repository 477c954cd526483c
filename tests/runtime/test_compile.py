"""Compiling in a child process: the artifact, the limits on the child, and what it answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from device_host.runtime._compile import CompileFailed, CompileJob, compile_in_child
from device_host.runtime._engine import EngineSettings
from tests.runtime.wat_components import memory_hog


@pytest.fixture(scope="module")
def hello_wasm(build) -> Path:  # type: ignore[no-untyped-def]
    return Path(build("hello") / "hello.wasm")


def _job(
    source: Path, artifact: Path | None, *, data_limit: int = 2 << 30, timeout_s: float = 600.0
) -> CompileJob:
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    return CompileJob(source, sha256, artifact, EngineSettings(), data_limit, timeout_s)


def test_the_child_writes_an_artifact_and_reports_the_surface(tmp_path):
    source = memory_hog(tmp_path / "hog.wasm", memories=1, pages=1)

    surface = compile_in_child(_job(source, tmp_path / "hog.cwasm"))

    assert surface.exports == {"test:memory/grow": {"grow": "func(pages: u32) -> u32"}}
    assert surface.imports == {}
    assert (tmp_path / "hog.cwasm").stat().st_size > 0


def test_bytes_that_changed_since_they_were_hashed_are_not_compiled(tmp_path):
    source = memory_hog(tmp_path / "hog.wasm", memories=1, pages=1)
    job = CompileJob(source, "0" * 64, tmp_path / "hog.cwasm", EngineSettings())

    with pytest.raises(CompileFailed, match="changed while it was being loaded") as failed:
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

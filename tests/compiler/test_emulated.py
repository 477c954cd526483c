"""A Pi artifact compiled here under qemu loads and serves on emulated Pis without a compile."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from fleet_common.compiler.emulation import arm64_sysroot, emulated_python
from fleet_common.compiler.run import CompileJob, Interpreter, compile_in_child
from fleet_common.compiler.settings import EngineSettings

BASELINE = EngineSettings(target="aarch64-unknown-linux-gnu")
DRIVER = Path(__file__).with_name("emulated_serve.py")


def _aarch64_artifact(wasm: Path, compiled_dir: Path) -> Path:
    """The dashboard compiled for the Pis, shared by content: a rerun costs no compile.

    The name covers the component, the settings and the sysroot (which is keyed by the
    pinned wasmtime wheel), so any change to one compiles afresh.
    """
    sha256 = hashlib.sha256(wasm.read_bytes()).hexdigest()
    key = hashlib.sha256((BASELINE.to_json() + arm64_sysroot().name).encode()).hexdigest()
    artifact = compiled_dir / "aarch64" / f"{sha256}-{key[:16]}.cwasm"
    if not artifact.exists():
        artifact.parent.mkdir(parents=True, exist_ok=True)
        argv, env = emulated_python("cortex-a53")
        compile_in_child(
            CompileJob(wasm, sha256, artifact, BASELINE, interpreter=Interpreter(tuple(argv), env))
        )
    return artifact


def _serve_on(cpu: str, artifact: Path, plugin_dir: Path) -> dict[str, object]:
    argv, env = emulated_python(cpu)
    wasm = plugin_dir / "dashboard.wasm"
    done = subprocess.run(
        [*argv, str(DRIVER), str(artifact), str(wasm), str(plugin_dir), BASELINE.to_json()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_baseline_artifact_serves_on_a_pi_3_and_a_pi_4_without_compiling(build, compiled_dir):
    plugin_dir = build("dashboard")
    artifact = _aarch64_artifact(plugin_dir / "dashboard.wasm", compiled_dir)

    answers = {cpu: _serve_on(cpu, artifact, plugin_dir) for cpu in ("cortex-a53", "cortex-a72")}

    for cpu, answer in answers.items():
        assert (answer["status"], answer["how"], answer["compiles"]) == (200, "delivered", 0), cpu
        assert int(str(answer["body_bytes"])) > 1000, cpu
        assert "<html" in str(answer["body_start"]).lower(), cpu
